"""The accounts replica: auth's accounts as their ``account.created`` and
``account.updated`` events say, so the dashboard shows names beside balances. It fills
as the accounts topic is read (``ates analytics rebuild`` replays it from the start).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("public_id", sa.UUID(), primary_key=True),
        sa.Column("email", sa.Text()),
        sa.Column("full_name", sa.Text()),
        sa.Column("role", sa.Text()),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("role_version", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("accounts")
