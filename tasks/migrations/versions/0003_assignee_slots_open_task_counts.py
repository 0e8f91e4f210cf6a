"""Assignee slots (a uniform pick in one index lookup), open-task counts kept by triggers,
and an index for pages of done tasks.

Accounts inserted by one statement join the pool together (a statement trigger: one lock
and one look at the pool's size for a whole batch of ``account.created``); changes of
eligibility afterwards are rare and handled row by row.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

POOL_LOCK = 0x706F6F6C  # tasks.models.ASSIGNEE_POOL_LOCK
SHARDS = 16


def _eligible(row: str) -> str:
    return f"({row}.active AND NOT {row}.deleted AND {row}.role IN ('accountant', 'worker'))"


def upgrade() -> None:
    _create_assignee_slots()
    _create_open_task_counts()
    op.create_index("ix_tasks_done", "tasks", ["id"], postgresql_where=sa.text("status = 'done'"))


def _create_assignee_slots() -> None:
    op.create_table(
        "assignee_slots",
        sa.Column("slot", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("account_id", sa.dialects.postgresql.UUID(as_uuid=True), nullable=False),
        sa.UniqueConstraint("account_id"),
    )
    op.execute(f"""
        CREATE FUNCTION assignee_slots_join_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM added AS a WHERE {_eligible("a")}) THEN
                PERFORM pg_advisory_xact_lock({POOL_LOCK});
                INSERT INTO assignee_slots (slot, account_id)
                SELECT (SELECT coalesce(max(slot), 0) FROM assignee_slots)
                       + row_number() OVER (ORDER BY a.public_id), a.public_id
                FROM added AS a WHERE {_eligible("a")};
            END IF;
            RETURN NULL;
        END $$;

        CREATE FUNCTION assignee_slots_join() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock({POOL_LOCK});
            INSERT INTO assignee_slots (slot, account_id)
            SELECT coalesce(max(slot), 0) + 1, NEW.public_id FROM assignee_slots;
            RETURN NULL;
        END $$;

        CREATE FUNCTION assignee_slots_leave() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            freed integer;
        BEGIN
            PERFORM pg_advisory_xact_lock({POOL_LOCK});
            DELETE FROM assignee_slots WHERE account_id = OLD.public_id RETURNING slot INTO freed;
            UPDATE assignee_slots SET slot = freed
            WHERE slot = (SELECT max(slot) FROM assignee_slots) AND slot > freed;
            RETURN NULL;
        END $$;

        CREATE TRIGGER accounts_join_assignees AFTER INSERT ON accounts
        REFERENCING NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION assignee_slots_join_inserted();

        CREATE TRIGGER accounts_become_assignee AFTER UPDATE OF active, deleted, role ON accounts
        FOR EACH ROW WHEN ({_eligible("NEW")} AND NOT coalesce({_eligible("OLD")}, false))
        EXECUTE FUNCTION assignee_slots_join();

        CREATE TRIGGER accounts_stop_being_assignee
        AFTER UPDATE OF active, deleted, role ON accounts
        FOR EACH ROW WHEN ({_eligible("OLD")} AND NOT coalesce({_eligible("NEW")}, false))
        EXECUTE FUNCTION assignee_slots_leave();

        CREATE TRIGGER accounts_leave_assignees AFTER DELETE ON accounts
        FOR EACH ROW WHEN {_eligible("OLD")} EXECUTE FUNCTION assignee_slots_leave();

        INSERT INTO assignee_slots (slot, account_id)
        SELECT row_number() OVER (ORDER BY public_id), public_id
        FROM accounts AS a WHERE {_eligible("a")};
    """)


def _create_open_task_counts() -> None:
    op.create_table(
        "open_task_counts",
        sa.Column("shard", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("open", sa.BigInteger(), nullable=False),
    )
    # Inserts and deletes are counted per statement (one row per COPY or bulk insert),
    # status changes per row: a reshuffle, which never changes a status, fires nothing.
    op.execute(f"""
        CREATE FUNCTION open_task_counts_add(delta bigint) RETURNS void LANGUAGE sql AS $$
            INSERT INTO open_task_counts (shard, open)
            VALUES (pg_backend_pid() % {SHARDS}, delta)
            ON CONFLICT (shard) DO UPDATE SET open = open_task_counts.open + EXCLUDED.open
        $$;

        CREATE FUNCTION open_task_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            delta bigint;
        BEGIN
            SELECT count(*) INTO delta FROM added WHERE status = 'open';
            IF delta <> 0 THEN PERFORM open_task_counts_add(delta); END IF;
            RETURN NULL;
        END $$;

        CREATE FUNCTION open_task_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            delta bigint;
        BEGIN
            SELECT count(*) INTO delta FROM removed WHERE status = 'open';
            IF delta <> 0 THEN PERFORM open_task_counts_add(-delta); END IF;
            RETURN NULL;
        END $$;

        CREATE FUNCTION open_task_counts_status_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM open_task_counts_add(
                (NEW.status = 'open')::int - (OLD.status = 'open')::int);
            RETURN NULL;
        END $$;

        CREATE TRIGGER tasks_count_inserted AFTER INSERT ON tasks
        REFERENCING NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION open_task_counts_inserted();

        CREATE TRIGGER tasks_count_deleted AFTER DELETE ON tasks
        REFERENCING OLD TABLE AS removed
        FOR EACH STATEMENT EXECUTE FUNCTION open_task_counts_deleted();

        CREATE TRIGGER tasks_count_status_changed AFTER UPDATE OF status ON tasks
        FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
        EXECUTE FUNCTION open_task_counts_status_changed();

        INSERT INTO open_task_counts (shard, open)
        SELECT 0, count(*) FROM tasks WHERE status = 'open';
    """)


def downgrade() -> None:
    op.drop_index("ix_tasks_done", "tasks")
    op.execute("""
        DROP TRIGGER tasks_count_inserted ON tasks;
        DROP TRIGGER tasks_count_deleted ON tasks;
        DROP TRIGGER tasks_count_status_changed ON tasks;
        DROP FUNCTION open_task_counts_inserted();
        DROP FUNCTION open_task_counts_deleted();
        DROP FUNCTION open_task_counts_status_changed();
        DROP FUNCTION open_task_counts_add(bigint);
        DROP TRIGGER accounts_join_assignees ON accounts;
        DROP TRIGGER accounts_become_assignee ON accounts;
        DROP TRIGGER accounts_stop_being_assignee ON accounts;
        DROP TRIGGER accounts_leave_assignees ON accounts;
        DROP FUNCTION assignee_slots_join_inserted();
        DROP FUNCTION assignee_slots_join();
        DROP FUNCTION assignee_slots_leave();
    """)
    op.drop_table("open_task_counts")
    op.drop_table("assignee_slots")
