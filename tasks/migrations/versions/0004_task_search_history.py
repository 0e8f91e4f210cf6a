"""Search, filters, sorting and history of tasks.

- ``pg_trgm`` and a GIN trigram index over a task's title, Jira id and description, so a
  ``ILIKE '%words%'`` search reads the index instead of every task; the same on the
  accounts' full names, for the filter by assignee or creator name;
- indexes for the filter by creator and for sorting by title (keyset pages);
- ``task_history``: one row per assignment (creation, reshuffle) and completion, written in
  the same transaction as the change. It has no foreign key on purpose: a reshuffle
  writes a row for every open task and should not pay a key check per row.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# tasks.models.SEARCH_DOCUMENT
SEARCH_DOCUMENT = (
    "((((title || ' ') || coalesce(jira_id, '')) || ' ') || coalesce(description, ''))"
)


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(f"CREATE INDEX ix_tasks_search ON tasks USING gin ({SEARCH_DOCUMENT} gin_trgm_ops)")
    op.execute("CREATE INDEX ix_accounts_full_name_search ON accounts"
               " USING gin (full_name gin_trgm_ops)")
    op.create_index("ix_tasks_created_by_id", "tasks", ["created_by", "id"])
    op.create_index("ix_tasks_title_id", "tasks", ["title", "id"])
    op.create_table(
        "task_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("assignee_id", UUID(as_uuid=True), nullable=False),
        sa.Column("previous_assignee_id", UUID(as_uuid=True), nullable=True),
        sa.Column("actor_id", UUID(as_uuid=True), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('created', 'reassigned', 'completed')",
                           name="task_history_kind_known"),
    )
    op.create_index("ix_task_history_task_id", "task_history", ["task_id", "id"])
    # What happened before the history was kept: each task's creation, and its completion.
    op.execute("""
        INSERT INTO task_history (task_id, kind, assignee_id, actor_id, at)
        SELECT id, 'created', assignee_id, created_by, created_at FROM tasks ORDER BY id;
        INSERT INTO task_history (task_id, kind, assignee_id, actor_id, at)
        SELECT id, 'completed', assignee_id, assignee_id, completed_at FROM tasks
        WHERE status = 'done' ORDER BY id;
    """)


def downgrade() -> None:
    op.drop_index("ix_task_history_task_id", "task_history")
    op.drop_table("task_history")
    op.drop_index("ix_tasks_title_id", "tasks")
    op.drop_index("ix_tasks_created_by_id", "tasks")
    op.execute("DROP INDEX ix_accounts_full_name_search")
    op.execute("DROP INDEX ix_tasks_search")
