"""Point-in-time balances: an account's transactions by time.

The balance of an account at a moment is the ``balance_after`` of its last transaction
recorded at or before that moment (transaction times grow with their ids, see
``ledger.lock_chain``): one descent of this index.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("transactions_account_time", "transactions", ["account_id", "created_at"])


def downgrade() -> None:
    op.drop_index("transactions_account_time", "transactions")
