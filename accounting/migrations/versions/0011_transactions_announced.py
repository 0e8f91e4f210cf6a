"""Every statement that books transactions announces it on ``accounting_booked``.

A statement-level trigger reads the statement's new rows (a transition table) and sends one
``NOTIFY`` when the statement's transaction commits: the accounts booked, when there are at
most ``FEW`` rows, else ``"all"``. Closing a day books a transaction per paid account in one
statement; it still sends one short message, after reading ``FEW + 1`` rows of it. The
dashboards' open account pages fetch themselves again on a message naming their account.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

FEW = 32

UPGRADE = f"""
CREATE FUNCTION transactions_announce() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    accounts jsonb;
BEGIN
    IF (SELECT count(*) FROM (SELECT 1 FROM booked LIMIT {FEW + 1}) AS first_rows) > {FEW} THEN
        accounts := '"all"';
    ELSE
        SELECT jsonb_agg(DISTINCT account_id) INTO accounts FROM booked;
    END IF;
    IF accounts IS NOT NULL THEN
        PERFORM pg_notify('accounting_booked',
                          jsonb_build_object('kind', 'booked', 'accounts', accounts)::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER transactions_announced AFTER INSERT ON transactions
    REFERENCING NEW TABLE AS booked
    FOR EACH STATEMENT EXECUTE FUNCTION transactions_announce();
"""

DOWNGRADE = """
DROP TRIGGER transactions_announced ON transactions;
DROP FUNCTION transactions_announce();
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
