"""Corrections, never edits: reversals of fees and rewards, and manual adjustments.

A correction is a new transaction. ``corrects_id`` links a reversal to what it reverses
(unique: a transaction is reversed at most once); ``counts_as`` says under which of
management's columns it counts on the day it is booked (a reversal: the type it reverses,
taking back from that column; an adjustment: ``fee`` when it charges the popug, ``reward``
when it credits them); ``reason`` and ``booked_by`` (who asked for it) are required.
These are chained too: ``ledger_correction_text`` appends them to the contents hashed.

``correction_requests`` remembers each ``Idempotency-Key`` (per caller) with the request
it came with and the transaction it booked.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

CORRECTION_TEXT = """
CREATE FUNCTION ledger_correction_text(
    base text, corrects_id bigint, counts_as text, booked_by text, reason text
) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT concat_ws('|', base, coalesce(corrects_id::text, ''), counts_as, booked_by, reason)
$$;
"""


def upgrade() -> None:
    op.execute(CORRECTION_TEXT)
    op.add_column("transactions", sa.Column("corrects_id", sa.BigInteger(), nullable=True))
    op.add_column("transactions", sa.Column("counts_as", sa.Text(), nullable=True))
    op.add_column("transactions", sa.Column("reason", sa.Text(), nullable=True))
    op.add_column("transactions", sa.Column("booked_by", sa.Text(), nullable=True))
    op.drop_constraint("type_known", "transactions", type_="check")
    op.drop_constraint("task_unless_payout", "transactions", type_="check")
    op.create_check_constraint(
        "type_known", "transactions",
        "type IN ('fee', 'reward', 'payout', 'reversal', 'adjustment')",
    )
    op.create_check_constraint(
        "task_unless_payout_or_adjustment", "transactions",
        "(type IN ('payout', 'adjustment')) = (task_id IS NULL)",
    )
    op.create_check_constraint(
        "corrections_say_why", "transactions",
        "(type IN ('reversal', 'adjustment'))"
        " = (counts_as IS NOT NULL AND reason IS NOT NULL AND booked_by IS NOT NULL)",
    )
    op.create_check_constraint(
        "counts_as_fee_or_reward", "transactions", "counts_as IN ('fee', 'reward')"
    )
    op.create_check_constraint(
        "reversal_names_its_original", "transactions",
        "(type = 'reversal') = (corrects_id IS NOT NULL)",
    )
    op.create_index(
        "transactions_reversed_once", "transactions", ["corrects_id"], unique=True,
        postgresql_where=sa.text("corrects_id IS NOT NULL"),
    )
    op.create_table(
        "correction_requests",
        sa.Column("caller", sa.Text(), primary_key=True),
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("fingerprint", sa.LargeBinary(), nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("correction_requests")
    op.drop_index("transactions_reversed_once", "transactions")
    for name in ("reversal_names_its_original", "counts_as_fee_or_reward",
                 "corrections_say_why", "task_unless_payout_or_adjustment", "type_known"):
        op.drop_constraint(name, "transactions", type_="check")
    op.create_check_constraint(
        "type_known", "transactions", "type IN ('fee', 'reward', 'payout')"
    )
    op.create_check_constraint(
        "task_unless_payout", "transactions", "(type = 'payout') = (task_id IS NULL)"
    )
    for column in ("booked_by", "reason", "counts_as", "corrects_id"):
        op.drop_column("transactions", column)
    op.execute("DROP FUNCTION ledger_correction_text(text, bigint, text, text, text)")
