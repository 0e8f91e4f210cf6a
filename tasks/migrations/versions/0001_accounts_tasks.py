"""Accounts replica and tasks (the outbox and inbox come from the messaging branch, which
this revision depends on).

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "messaging_0001"


def upgrade() -> None:
    _create_accounts()
    _create_tasks()


def _create_accounts() -> None:
    op.create_table(
        "accounts",
        sa.Column("public_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("email", sa.Text()),
        sa.Column("full_name", sa.Text()),
        sa.Column("role", sa.Text()),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("role_version", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def _create_tasks() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("public_id", postgresql.UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("jira_id", sa.Text()),
        sa.Column("description", sa.Text()),
        sa.Column("status", sa.Text(), nullable=False, server_default=sa.text("'open'")),
        sa.Column("assignee_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("created_by", postgresql.UUID(as_uuid=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.CheckConstraint("status IN ('open', 'done')", name="tasks_status_known"),
        sa.CheckConstraint(
            "char_length(title) BETWEEN 1 AND 200 AND title = btrim(title) "
            "AND strpos(title, '[') = 0 AND strpos(title, ']') = 0",
            name="tasks_title_valid",
        ),
        sa.CheckConstraint("jira_id ~ '^[A-Z][A-Z0-9]+-[0-9]+$'", name="tasks_jira_id_valid"),
        sa.CheckConstraint(
            "(status = 'done') = (completed_at IS NOT NULL)", name="tasks_completed_when_done"
        ),
        sa.CheckConstraint("version >= 1", name="tasks_version_positive"),
    )
    op.create_index("ix_tasks_open", "tasks", ["id"], postgresql_where=sa.text("status = 'open'"))
    op.create_index("ix_tasks_assignee_status_id", "tasks", ["assignee_id", "status", "id"])


def downgrade() -> None:
    op.drop_table("tasks")
    op.drop_table("accounts")
