"""Balances leave half of each page free, so that updating a balance adds no index entry.

Pages written from now on keep the room; ``VACUUM FULL balances`` rewrites the existing
ones (see docs/runbook.md).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE balances SET (fillfactor = 50)")


def downgrade() -> None:
    op.execute("ALTER TABLE balances RESET (fillfactor)")
