"""A tamper-evident ledger: every transaction carries a hash chained to the one before,
and the results of ``ates accounting verify`` are kept.

``hash`` = sha256(hash of the previous transaction || ``ledger_transaction_text`` of this
one), the first transaction chaining to the empty string. Transactions are chained in
the order of their ids: every writer takes ``ledger.CHAIN_LOCK`` before it draws ids, so
ids are drawn in the order the chain grows. ``ledger_chain(previous, text)`` is the
running aggregate that computes a run of hashes in the statement inserting the run.

The transactions recorded so far are chained here, in id order (with the append-only
trigger set aside for this one statement).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

CHAIN_FUNCTIONS = r"""
CREATE FUNCTION ledger_transaction_text(
    public_id uuid, type text, account_id uuid, task_id uuid, day date, amount bigint,
    balance_after bigint, created_at timestamptz, source_event_id uuid
) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT concat_ws('|', public_id::text, type, account_id::text,
                     coalesce(task_id::text, ''), to_char(day, 'YYYY-MM-DD'),
                     amount::text, balance_after::text,
                     (extract(epoch FROM created_at) * 1000000)::bigint::text,
                     coalesce(source_event_id::text, ''))
$$;

CREATE FUNCTION ledger_chain_step(state bytea, previous bytea, row_text text)
RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sha256(coalesce(state, previous, '\x'::bytea) || convert_to(row_text, 'UTF8'))
$$;

CREATE AGGREGATE ledger_chain(bytea, text) (SFUNC = ledger_chain_step, STYPE = bytea);
"""


def upgrade() -> None:
    op.execute(CHAIN_FUNCTIONS)
    op.add_column("transactions", sa.Column("hash", sa.LargeBinary(), nullable=True))
    op.execute("""
        ALTER TABLE transactions DISABLE TRIGGER transactions_append_only;
        UPDATE transactions t SET hash = c.hash
        FROM (
            SELECT id, ledger_chain(NULL::bytea, ledger_transaction_text(
                       public_id, type, account_id, task_id, day, amount, balance_after,
                       created_at, source_event_id)) OVER (ORDER BY id) AS hash
            FROM transactions
        ) c
        WHERE c.id = t.id;
        ALTER TABLE transactions ENABLE TRIGGER transactions_append_only;
    """)
    op.alter_column("transactions", "hash", nullable=False)
    op.create_table(
        "ledger_verifications",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("holds", sa.Boolean(), nullable=False),
        sa.Column("transactions", sa.BigInteger(), nullable=False),
        sa.Column("tip_id", sa.BigInteger(), nullable=True),
        sa.Column("tip_hash", sa.LargeBinary(), nullable=True),
        sa.Column("first_break", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("ledger_verifications")
    op.drop_column("transactions", "hash")
    op.execute("""
        DROP AGGREGATE ledger_chain(bytea, text);
        DROP FUNCTION ledger_chain_step(bytea, bytea, text);
        DROP FUNCTION ledger_transaction_text(uuid, text, uuid, uuid, date, bigint, bigint,
                                              timestamptz, uuid);
    """)
