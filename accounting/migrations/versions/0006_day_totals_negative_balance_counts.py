"""Management's totals per day, and the number of negative balances, kept as the ledger
is written: a report or a scrape then reads a few rows whatever the ledger's size.

``day_totals`` gets one row per (day, shard) from the statement that books fees and
rewards; ``negative_balance_counts`` is kept by a trigger that fires only when a balance
crosses zero. Both start from the ledger as it is.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SHARDS = 16


def upgrade() -> None:
    op.create_table(
        "day_totals",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("shard", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("fees_charged", sa.BigInteger(), nullable=False),
        sa.Column("rewards_paid", sa.BigInteger(), nullable=False),
    )
    op.execute("""
        INSERT INTO day_totals (day, shard, fees_charged, rewards_paid)
        SELECT day, 0, coalesce(-sum(amount) FILTER (WHERE type = 'fee'), 0),
               coalesce(sum(amount) FILTER (WHERE type = 'reward'), 0)
        FROM transactions WHERE type <> 'payout' GROUP BY day
    """)
    op.create_table(
        "negative_balance_counts",
        sa.Column("shard", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("negative", sa.BigInteger(), nullable=False),
    )
    op.execute(f"""
        CREATE FUNCTION negative_balance_counts_crossed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO negative_balance_counts AS c (shard, negative)
            VALUES (pg_backend_pid() % {SHARDS},
                    CASE WHEN NEW.balance < 0 THEN 1 ELSE 0 END
                    - CASE WHEN TG_OP = 'UPDATE' AND OLD.balance < 0 THEN 1 ELSE 0 END)
            ON CONFLICT (shard) DO UPDATE SET negative = c.negative + EXCLUDED.negative;
            RETURN NULL;
        END $$;

        CREATE TRIGGER balances_negative_inserted AFTER INSERT ON balances
        FOR EACH ROW WHEN (NEW.balance < 0) EXECUTE FUNCTION negative_balance_counts_crossed();

        CREATE TRIGGER balances_crossed_zero AFTER UPDATE OF balance ON balances
        FOR EACH ROW WHEN ((OLD.balance < 0) <> (NEW.balance < 0))
        EXECUTE FUNCTION negative_balance_counts_crossed();

        INSERT INTO negative_balance_counts (shard, negative)
        SELECT 0, count(*) FROM balances WHERE balance < 0;
    """)


def downgrade() -> None:
    op.execute("""
        DROP TRIGGER balances_negative_inserted ON balances;
        DROP TRIGGER balances_crossed_zero ON balances;
        DROP FUNCTION negative_balance_counts_crossed();
    """)
    op.drop_table("negative_balance_counts")
    op.drop_table("day_totals")
