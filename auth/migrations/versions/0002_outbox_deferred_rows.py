"""Outbox rows may be deferred: rendered into events by the relay when it publishes them.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

from messaging.tables import add_outbox_renderer, drop_outbox_renderer

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_renderer(op)


def downgrade() -> None:
    drop_outbox_renderer(op)
