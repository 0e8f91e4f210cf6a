"""End-of-day balances become the net amount of each account's day.

The balance of the latest transaction of a day could not be told apart when accounting
booked several transactions of one account with the same ``applied_at``; a day's net adds
up in any order, and the balance at the end of a day is the running sum of the nets.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("account_day_balances", sa.Column("net", sa.BigInteger(), nullable=True))
    # A day's net is its closing balance minus the account's previous closing balance;
    # before its first day an account had nothing, so the first net is the balance itself.
    op.execute(
        """
        UPDATE account_day_balances AS b
        SET net = b.balance - p.previous
        FROM (
            SELECT account_id, day,
                   coalesce(lag(balance) OVER (PARTITION BY account_id ORDER BY day), 0)
                       AS previous
            FROM account_day_balances
        ) AS p
        WHERE p.account_id = b.account_id AND p.day = b.day
        """
    )
    op.alter_column("account_day_balances", "net", existing_type=sa.BigInteger(),
                    nullable=False)
    for column in ("balance", "applied_at", "transaction_id"):
        op.drop_column("account_day_balances", column)
    op.rename_table("account_day_balances", "account_day_nets")
    op.execute("ALTER INDEX account_day_balances_pkey RENAME TO account_day_nets_pkey")


def downgrade() -> None:
    op.execute("ALTER INDEX account_day_nets_pkey RENAME TO account_day_balances_pkey")
    op.rename_table("account_day_nets", "account_day_balances")
    op.add_column("account_day_balances", sa.Column("balance", sa.BigInteger()))
    op.add_column("account_day_balances",
                  sa.Column("applied_at", sa.DateTime(timezone=True)))
    op.add_column("account_day_balances", sa.Column("transaction_id", sa.UUID()))
    # The closing balance is the running sum of the nets. Which transaction closed the
    # day is not known any more: applied_at and transaction_id get placeholders (midnight
    # UTC of the day before and the nil UUID), earlier than any real transaction of the
    # day in any time zone, so the next one the old projector applies to it replaces them.
    op.execute(
        """
        UPDATE account_day_balances AS b
        SET balance = r.balance,
            applied_at = (b.day - 1)::timestamp AT TIME ZONE 'UTC',
            transaction_id = '00000000-0000-0000-0000-000000000000'
        FROM (
            SELECT account_id, day,
                   sum(net) OVER (PARTITION BY account_id ORDER BY day) AS balance
            FROM account_day_balances
        ) AS r
        WHERE r.account_id = b.account_id AND r.day = b.day
        """
    )
    for column, kind in (("balance", sa.BigInteger()),
                         ("applied_at", sa.DateTime(timezone=True)),
                         ("transaction_id", sa.UUID())):
        op.alter_column("account_day_balances", column, existing_type=kind, nullable=False)
    op.drop_column("account_day_balances", "net")
