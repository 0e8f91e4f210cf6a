"""Replicas, prices, the append-only double-entry ledger, billing days, payouts and their
mails (the outbox and inbox come from the messaging branch, which this revision depends on).

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

# UPDATE, DELETE and TRUNCATE are refused on the ledger tables; a statement that inserts
# entries must insert both legs of each transaction, summing to zero.
LEDGER_GUARDS = """
CREATE FUNCTION ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END
$$;

CREATE FUNCTION ledger_entries_are_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced bigint;
BEGIN
    SELECT transaction_id INTO unbalanced
    FROM new_entries
    GROUP BY transaction_id
    HAVING sum(amount) <> 0 OR count(*) <> 2
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transaction % must have two entries summing to zero', unbalanced
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER transactions_append_only BEFORE UPDATE OR DELETE ON transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only();
CREATE TRIGGER transactions_never_truncated BEFORE TRUNCATE ON transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_is_append_only();
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only();
CREATE TRIGGER entries_never_truncated BEFORE TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_is_append_only();
CREATE TRIGGER entries_balanced AFTER INSERT ON entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_are_balanced();
"""

DROP_LEDGER_GUARDS = """
DROP TRIGGER entries_balanced ON entries;
DROP TRIGGER entries_never_truncated ON entries;
DROP TRIGGER entries_append_only ON entries;
DROP TRIGGER transactions_never_truncated ON transactions;
DROP TRIGGER transactions_append_only ON transactions;
DROP FUNCTION ledger_entries_are_balanced();
DROP FUNCTION ledger_is_append_only();
"""


def _created_at(name: str = "updated_at") -> sa.Column:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def _replicas() -> None:
    op.create_table(
        "accounts",
        sa.Column("public_id", sa.UUID(), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("full_name", sa.Text(), nullable=True),
        sa.Column("role", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("deleted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("role_version", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("public_id"),
    )
    op.create_table(
        "tasks",
        sa.Column("public_id", sa.UUID(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("jira_id", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("assignee_id", sa.UUID(), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("public_id"),
    )
    op.create_table(
        "task_prices",
        sa.Column("task_id", sa.UUID(), nullable=False),
        sa.Column("fee", sa.Integer(), nullable=False),
        sa.Column("reward", sa.Integer(), nullable=False),
        sa.Column("priced_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("fee BETWEEN 1000 AND 2000", name="fee_in_range"),
        sa.CheckConstraint("reward BETWEEN 2000 AND 4000", name="reward_in_range"),
        sa.PrimaryKeyConstraint("task_id"),
    )


def _ledger() -> None:
    op.create_table(
        "transactions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("public_id", sa.UUID(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("task_id", sa.UUID(), nullable=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_event_id", sa.UUID(), nullable=True),
        sa.CheckConstraint("(type = 'payout') = (task_id IS NULL)", name="task_unless_payout"),
        sa.CheckConstraint(
            "account_id <> '00000000-0000-0000-0000-000000000000'", name="popug_account"
        ),
        sa.CheckConstraint("type IN ('fee', 'reward', 'payout')", name="type_known"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("public_id"),
    )
    op.create_index(
        "transactions_source_event",
        "transactions",
        ["source_event_id"],
        unique=True,
        postgresql_where=sa.text("source_event_id IS NOT NULL"),
    )
    op.create_index("transactions_account", "transactions", ["account_id", "id"])
    op.create_index("transactions_day", "transactions", ["day"])
    op.create_table(
        "entries",
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount <> 0", name="amount_not_zero"),
        sa.PrimaryKeyConstraint("transaction_id", "account_id"),
    )
    op.create_table(
        "balances",
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("balance", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.execute(LEDGER_GUARDS)


def _billing() -> None:
    op.create_table(
        "billing_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accounts_paid", sa.Integer(), nullable=False),
        sa.Column("total_paid", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )
    op.create_table(
        "payouts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("public_id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount > 0", name="payout_positive"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "day", name="one_payout_per_account_and_day"),
        sa.UniqueConstraint("public_id"),
        sa.UniqueConstraint("transaction_id"),
    )
    op.create_table(
        "payout_emails",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("payout_id", sa.BigInteger(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=False),
        sa.Column("html_body", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _created_at("next_attempt_at"),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("payout_id"),
    )
    op.create_index(
        "payout_emails_due",
        "payout_emails",
        ["next_attempt_at"],
        postgresql_where=sa.text("sent_at IS NULL"),
    )


def upgrade() -> None:
    _replicas()
    _ledger()
    _billing()


def downgrade() -> None:
    op.execute(DROP_LEDGER_GUARDS)
    for table in (
        "payout_emails",
        "payouts",
        "billing_days",
        "balances",
        "entries",
        "transactions",
        "task_prices",
        "tasks",
        "accounts",
    ):
        op.drop_table(table)
