"""Outbox rows may be deferred: the messaging branch's revision that adds
``outbox.renderer``, which this one depends on, changes the schema.

Revision ID: 0003
Revises: 0002
"""

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = "messaging_0002"


def upgrade() -> None:
    """Nothing of its own."""


def downgrade() -> None:
    """Nothing of its own."""
