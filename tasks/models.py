"""Tables of the tasks database: the accounts replica and the tasks themselves.

The CHECK constraints repeat the domain rules on purpose: reshuffle builds its events
straight from the rows, so every row has to satisfy the event schemas by construction.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    Integer,
    SmallInteger,
    Text,
    and_,
    literal_column,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from auth_client.replica import AccountReplica
from tasks.domain import ASSIGNABLE_ROLES, JIRA_ID_PATTERN, TITLE_MAX_LENGTH

# Taken by every change of ``assignee_slots`` (exclusively, in the triggers of migration
# 0003, which spell the same number) and by a reshuffle (shared).
ASSIGNEE_POOL_LOCK = 0x706F6F6C  # "pool"

# What a search looks through (``ILIKE``), indexed by trigrams (migration 0004).
SEARCH_DOCUMENT = (
    "((((title || ' ') || coalesce(jira_id, '')) || ' ') || coalesce(description, ''))"
)


class Base(DeclarativeBase):
    pass


class Account(AccountReplica, Base):
    """What tasks knows about an account, fed only by auth's events."""

    __tablename__ = "accounts"
    __table_args__ = (
        Index("ix_accounts_full_name_search", "full_name", postgresql_using="gin",
              postgresql_ops={"full_name": "gin_trgm_ops"}),
    )

    @classmethod
    def is_eligible_assignee(cls) -> ColumnElement[bool]:
        """``domain.is_eligible_assignee`` as a SQL condition."""
        return and_(cls.active, ~cls.deleted, cls.role.in_(ASSIGNABLE_ROLES))


class AssigneeSlot(Base):
    """The eligible assignees numbered 1..n without gaps, kept in step with ``accounts`` by
    triggers (migration 0003), so a uniform pick is one random slot: an index lookup.

    When an account stops being eligible, the last slot moves into the one it frees.
    Every change takes ``ASSIGNEE_POOL_LOCK``; a reshuffle takes it shared, so an account
    cannot leave or join the pool while a reshuffle is handing out tasks.
    """

    __tablename__ = "assignee_slots"

    slot: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)


class OpenTaskCount(Base):
    """How many tasks are open, as a sum over a few shards kept by triggers on ``tasks``
    (migration 0003): reading it costs the same at any size, and concurrent writers
    rarely wait on the same shard."""

    __tablename__ = "open_task_counts"

    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    open: Mapped[int] = mapped_column(BigInteger)


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    public_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    title: Mapped[str] = mapped_column(Text)
    jira_id: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default=text("'open'"))
    # An account public id; no foreign key, the replica may learn of accounts late.
    assignee_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))

    __table_args__ = (
        CheckConstraint("status IN ('open', 'done')", name="tasks_status_known"),
        CheckConstraint(
            f"char_length(title) BETWEEN 1 AND {TITLE_MAX_LENGTH} "
            "AND title = btrim(title) AND strpos(title, '[') = 0 AND strpos(title, ']') = 0",
            name="tasks_title_valid",
        ),
        CheckConstraint(f"jira_id ~ '{JIRA_ID_PATTERN}'", name="tasks_jira_id_valid"),
        CheckConstraint(
            "(status = 'done') = (completed_at IS NOT NULL)", name="tasks_completed_when_done"
        ),
        CheckConstraint("version >= 1", name="tasks_version_positive"),
        Index("ix_tasks_open", "id", postgresql_where=text("status = 'open'")),
        Index("ix_tasks_done", "id", postgresql_where=text("status = 'done'")),
        Index("ix_tasks_assignee_status_id", "assignee_id", "status", "id"),
        Index("ix_tasks_created_by_id", "created_by", "id"),
        Index("ix_tasks_title_id", "title", "id"),
        Index("ix_tasks_search", literal_column(SEARCH_DOCUMENT).label("document"),
              postgresql_using="gin", postgresql_ops={"document": "gin_trgm_ops"}),
    )


HISTORY_KINDS = ("created", "reassigned", "completed")


class TaskHistory(Base):
    """One assignment (on creation, by a reshuffle) or completion of a task: who got it,
    who had it before, who did it (None: nobody known) and when."""

    __tablename__ = "task_history"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    task_id: Mapped[int] = mapped_column(BigInteger)  # tasks.id, no foreign key (migration 0004)
    kind: Mapped[str] = mapped_column(Text)
    assignee_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    previous_assignee_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("kind IN ('created', 'reassigned', 'completed')",
                        name="task_history_kind_known"),
        Index("ix_task_history_task_id", "task_id", "id"),
    )
