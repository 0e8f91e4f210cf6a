"""Outbox rows may be deferred: rendered into events by the relay when it publishes them
(``outbox.renderer`` names what renders them; the payload then holds its arguments).

Some services' first revisions made the outbox from the models of the day it ran, so a
database they made after this column was added has it already.

Revision ID: messaging_0002
Revises: messaging_0001
"""

from __future__ import annotations

from alembic import op

revision = "messaging_0002"
down_revision = "messaging_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE outbox ADD COLUMN IF NOT EXISTS renderer text")


def downgrade() -> None:
    op.drop_column("outbox", "renderer")
