"""Reads of the tasks service: a task, pages of tasks and their totals, a task's history,
the open-task count and account names. Nothing here changes the database; the commands
are in :mod:`tasks.service`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, literal_column, select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from platform_kit.cursor import InvalidCursor, decode_id, encode_id
from platform_kit.db import driver_of
from tasks import domain
from tasks.events import TaskState
from tasks.models import SEARCH_DOCUMENT, Account, OpenTaskCount, Task, TaskHistory

Sessions = sessionmaker[Session]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
QUERY_MAX_LENGTH = 200
# A filter by name looks at this many matching accounts at most.
NAME_MATCHES = 100
# Totals are counted exactly up to this many tasks, estimated by the planner beyond.
COUNT_EXACTLY_UP_TO = 1000

NEWEST, OLDEST, TITLE = "newest", "oldest", "title"
SORTS = (NEWEST, OLDEST, TITLE)

Condition = str | uuid.UUID | None


@dataclass(frozen=True)
class TaskView(TaskState):
    """A task as the service shows it: its state, and who created it."""

    created_by: uuid.UUID | None = None

    @property
    def id(self) -> uuid.UUID:
        return self.public_id


@dataclass(frozen=True)
class TaskFilter:
    """Which tasks a list shows: every given condition holds (None: any).

    ``q`` is looked for in the title, Jira id and description (case-insensitive);
    ``assignee_name`` and ``creator_name`` in the accounts' full names.
    """

    assignee: uuid.UUID | None = None
    status: str | None = None
    q: str | None = None
    creator: uuid.UUID | None = None
    assignee_name: str | None = None
    creator_name: str | None = None

    def validated(self) -> TaskFilter:
        return replace(
            self,
            status=domain.validate_status(self.status),
            q=_search_text(self.q, "search"),
            assignee_name=_search_text(self.assignee_name, "assignee name"),
            creator_name=_search_text(self.creator_name, "creator name"),
        )

    @property
    def is_everything_of_a_status(self) -> bool:
        return (self.assignee, self.q, self.creator, self.assignee_name,
                self.creator_name) == (None,) * 5

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.assignee is not None:
            query = query.where(Task.assignee_id == self.assignee)
        if self.status is not None:
            query = query.where(Task.status == self.status)
        if self.creator is not None:
            query = query.where(Task.created_by == self.creator)
        if self.q is not None:
            query = query.where(literal_column(SEARCH_DOCUMENT).ilike(_contains(self.q)))
        if self.assignee_name is not None:
            query = query.where(Task.assignee_id.in_(_accounts_named(self.assignee_name)))
        if self.creator_name is not None:
            query = query.where(Task.created_by.in_(_accounts_named(self.creator_name)))
        return query


@dataclass(frozen=True)
class Total:
    """How many tasks a filter matches: exact, or the planner's estimate."""

    count: int
    exact: bool


@dataclass(frozen=True)
class HistoryEntry:
    kind: str
    assignee_id: uuid.UUID
    previous_assignee_id: uuid.UUID | None
    actor_id: uuid.UUID | None
    at: datetime


class TaskQueries:
    """The reads of the task tracker, over ``sessions``."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    def get_task(self, task_id: uuid.UUID) -> TaskView:
        with self.sessions() as session:
            task = session.scalar(select(Task).where(Task.public_id == task_id))
            if task is None:
                raise domain.TaskNotFound(task_id)
            return TaskView.of(task)

    def list_tasks(
        self,
        *,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        sort: str = NEWEST,
        **conditions: Condition,
    ) -> tuple[list[TaskView], str | None]:
        """A page of tasks in ``sort`` order (newest first by default) and the cursor of
        the next page (None at the end); ``conditions`` are fields of ``TaskFilter``.

        Pages are keyset pages: the cursor names the last task shown, and the next page
        starts right after its place in the order, through an index whatever the page
        number. A cursor this list did not issue raises ``InvalidCursor``.
        """
        where = _filter(conditions)
        if sort not in SORTS:
            raise domain.ValidationError(f"sort must be one of {', '.join(SORTS)}")
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise domain.ValidationError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
        with self.sessions() as session:
            query = where.apply(select(Task)).limit(limit + 1)
            after = None if cursor is None else _position_of(session, cursor)
            if sort == NEWEST:
                query = query.order_by(Task.id.desc())
                if after is not None:
                    query = query.where(Task.id < after.id)
            elif sort == OLDEST:
                query = query.order_by(Task.id)
                if after is not None:
                    query = query.where(Task.id > after.id)
            else:
                query = query.order_by(Task.title, Task.id)
                if after is not None:
                    query = query.where(
                        tuple_(Task.title, Task.id) > tuple_(after.title, after.id))
            tasks = list(session.scalars(query))
        page = [TaskView.of(task) for task in tasks[:limit]]
        return page, encode_id(page[-1].id) if len(tasks) > limit else None

    def count_tasks(self, **conditions: Condition) -> Total:
        """How many tasks ``list_tasks`` would page through, at a bounded cost.

        Open tasks without other conditions: the maintained ``open_task_counts`` (exact).
        Otherwise the planner's estimate first: when it promises many more than
        ``COUNT_EXACTLY_UP_TO`` tasks, that estimate is the answer; else the tasks are
        counted, stopping after ``COUNT_EXACTLY_UP_TO + 1`` (beyond that, the estimate
        again).
        """
        where = _filter(conditions)
        if where.is_everything_of_a_status and where.status == domain.OPEN:
            return Total(self.count_open_tasks(), exact=True)
        matching = where.apply(select(Task.id))
        with self.sessions() as session:
            estimate = _estimated_rows(session, matching)
            if estimate > 10 * COUNT_EXACTLY_UP_TO:
                return Total(estimate, exact=False)
            counted = session.execute(
                select(func.count()).select_from(
                    matching.limit(COUNT_EXACTLY_UP_TO + 1).subquery())).scalar_one()
        if counted <= COUNT_EXACTLY_UP_TO:
            return Total(counted, exact=True)
        return Total(max(estimate, counted), exact=False)

    def task_history(self, task_id: uuid.UUID, limit: int = MAX_PAGE_SIZE
                     ) -> list[HistoryEntry]:
        """The task's latest ``limit`` assignments and its completion, oldest first."""
        position = select(Task.id).where(Task.public_id == task_id).scalar_subquery()
        query = (select(TaskHistory).where(TaskHistory.task_id == position)
                 .order_by(TaskHistory.id.desc()).limit(limit))
        with self.sessions() as session:
            rows = list(session.scalars(query))
        return [HistoryEntry(row.kind, row.assignee_id, row.previous_assignee_id, row.actor_id,
                             row.at) for row in reversed(rows)]

    def count_open_tasks(self) -> int:
        """How many tasks are open: a sum over the few rows of ``open_task_counts``."""
        with self.sessions() as session:
            return session.scalar(select(func.coalesce(func.sum(OpenTaskCount.open), 0))) or 0

    def account_names(self, account_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
        """Full names of the given accounts, as far as the replica knows them."""
        wanted = set(account_ids)
        if not wanted:
            return {}
        query = select(Account.public_id, Account.full_name).where(
            Account.public_id.in_(wanted), Account.full_name.is_not(None)
        )
        with self.sessions() as session:
            return {account_id: name for account_id, name in session.execute(query)
                    if name is not None}


def _filter(conditions: dict[str, Condition]) -> TaskFilter:
    return TaskFilter(**conditions).validated()  # type: ignore[arg-type]


def _search_text(value: str | None, what: str) -> str | None:
    value = (value or "").strip()
    if not value:
        return None
    if len(value) > QUERY_MAX_LENGTH:
        raise domain.ValidationError(f"the {what} must be at most {QUERY_MAX_LENGTH} characters")
    return value


def _contains(value: str) -> str:
    """An ``ILIKE`` pattern matching ``value`` anywhere, its own wildcards taken literally."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _accounts_named(name: str) -> Select[uuid.UUID]:
    """Up to ``NAME_MATCHES`` accounts whose full name contains ``name`` (trigram index)."""
    return (select(Account.public_id).where(Account.full_name.ilike(_contains(name)))
            .order_by(Account.public_id).limit(NAME_MATCHES))


def _estimated_rows(session: Session, query: Select[Any]) -> int:
    """The planner's row estimate for ``query`` (planned, never run).

    The values are rendered into the statement (``EXPLAIN`` takes no parameters), quoted
    by the dialect, and the statement goes to the driver as it is: nothing in a search
    text (``:name``, ``%``) is read as a placeholder.
    """
    compiled = query.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
    [[[plan]]] = driver_of(session).execute(f"EXPLAIN (FORMAT JSON) {compiled}").fetchall()
    return int(plan["Plan"]["Plan Rows"])


def _position_of(session: Session, cursor: str) -> Task:
    position = session.scalar(select(Task).where(Task.public_id == decode_id(cursor)))
    if position is None:
        raise InvalidCursor()
    return position
