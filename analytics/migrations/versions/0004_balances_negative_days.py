"""The dashboard's questions read a few rows whatever the projection's size.

``account_balances`` holds each account's balance now (a partial index keeps the negative
ones deepest first), ``negative_balance_counts`` how many are below zero (a few shards),
``negative_count_changes`` a difference array of the negative balances per day; all three
start from the nets as they are. The completed tasks are indexed in the order of the most
expensive first, so each day's is the first entry of the day.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# +1 on the day an account's closing balance drops below zero, -1 on the day it stops.
_CHANGE = """CASE WHEN closing < 0 AND closing - net >= 0 THEN 1
                  WHEN closing >= 0 AND closing - net < 0 THEN -1
                  ELSE 0 END"""


def upgrade() -> None:
    op.create_table(
        "account_balances",
        sa.Column("account_id", sa.UUID(), primary_key=True),
        sa.Column("balance", sa.BigInteger(), nullable=False),
    )
    op.create_index("account_balances_negative", "account_balances",
                    ["balance", "account_id"], postgresql_where=sa.text("balance < 0"))
    op.create_table(
        "negative_balance_counts",
        sa.Column("shard", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("negative", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "negative_count_changes",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("change", sa.BigInteger(), nullable=False),
    )
    op.execute("""
        INSERT INTO account_balances (account_id, balance)
        SELECT account_id, sum(net) FROM account_day_nets GROUP BY account_id
    """)
    op.execute("""
        INSERT INTO negative_balance_counts (shard, negative)
        SELECT 0, count(*) FROM account_balances WHERE balance < 0
    """)
    op.execute(f"""
        INSERT INTO negative_count_changes (day, change)
        SELECT day, sum({_CHANGE})
        FROM (SELECT day, net, sum(net) OVER (PARTITION BY account_id ORDER BY day) AS closing
              FROM account_day_nets) AS timeline
        GROUP BY day HAVING sum({_CHANGE}) <> 0
    """)
    op.drop_index("tasks_completed", table_name="tasks")
    op.create_index("tasks_completed_ranked", "tasks",
                    ["completed_day", sa.text("reward DESC NULLS LAST"), "completed_at",
                     "task_id"])


def downgrade() -> None:
    op.drop_index("tasks_completed_ranked", table_name="tasks")
    op.create_index("tasks_completed", "tasks", ["completed_day", "reward"])
    op.drop_table("negative_count_changes")
    op.drop_table("negative_balance_counts")
    op.drop_index("account_balances_negative", table_name="account_balances")
    op.drop_table("account_balances")
