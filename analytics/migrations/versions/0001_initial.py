"""Daily earnings, end-of-day balances, tasks, closed days (the outbox and inbox come from
the messaging branch, which this revision depends on).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = "messaging_0001"


def upgrade() -> None:
    op.create_table(
        "daily_earnings",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("fees", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("rewards", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )
    op.create_table(
        "account_day_balances",
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("transaction_id", sa.UUID(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "day"),
    )
    op.create_table(
        "tasks",
        sa.Column("task_id", sa.UUID(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("jira_id", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("fee", sa.Integer(), nullable=True),
        sa.Column("reward", sa.Integer(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_day", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("task_id"),
    )
    op.create_index("tasks_completed", "tasks", ["completed_day", "reward"])
    op.create_table(
        "closed_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accounts_paid", sa.Integer(), nullable=False),
        sa.Column("total_paid", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )


def downgrade() -> None:
    op.drop_table("closed_days")
    op.drop_index("tasks_completed", table_name="tasks")
    op.drop_table("tasks")
    op.drop_table("account_day_balances")
    op.drop_table("daily_earnings")
