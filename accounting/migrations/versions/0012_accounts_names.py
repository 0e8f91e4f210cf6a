"""A page of balances reads its accounts' names from a covering index.

The 50 accounts of a page are neighbours in ``accounts_names`` (by public id), so their
names come from one or two of its leaf pages; read from the table, they lay on as many
pages as accounts, and at a million accounts most of those were not in memory.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("accounts_names", "accounts", ["public_id"],
                    postgresql_include=["email", "full_name", "role", "active", "deleted"])


def downgrade() -> None:
    op.drop_index("accounts_names", table_name="accounts")
