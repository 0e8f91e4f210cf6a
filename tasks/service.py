"""Use cases of the tasks service: one function per command or query.

Commands change the database and write the events of the change to the outbox in the
same transaction; on any error nothing is stored. Queries only read. The replica
functions at the end keep the accounts replica in step with auth's events.
"""

from __future__ import annotations

import base64
import binascii
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Unpack

from sqlalchemy import Select, func, literal_column, select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from auth import replica
from messaging.outbox import Outbox
from tasks import domain
from tasks.events import TaskEvents, TaskState
from tasks.live import announce
from tasks.models import SEARCH_DOCUMENT, Account, AssigneeSlot, OpenTaskCount, Task, TaskHistory
from tasks.reshuffle import lock_against_reshuffle, reshuffle_open_tasks
from tasks.settings import TasksSettings

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

_system_random = random.SystemRandom()


@dataclass(frozen=True)
class Actor:
    """Who is acting: an account public id and its role."""

    id: uuid.UUID
    role: str


@dataclass(frozen=True)
class TaskView(TaskState):
    """A task as the service shows it: its state, and who created it."""

    created_by: uuid.UUID | None = None

    @property
    def id(self) -> uuid.UUID:
        return self.public_id


def _now() -> datetime:
    return datetime.now(UTC)


def _task_events(settings: TasksSettings, traceparent: str | None) -> TaskEvents:
    return TaskEvents(settings.task_event_version, traceparent)


# -- commands ---------------------------------------------------------------------------


def create_task(
    sessions: Sessions,
    settings: TasksSettings,
    actor: Actor,
    title: str,
    jira_id: str | None = None,
    description: str | None = None,
    *,
    rng: random.Random | None = None,
    traceparent: str | None = None,
) -> TaskView:
    """Store a new open task, assigned to a uniformly random eligible assignee."""
    title = domain.validate_title(title)
    jira_id = domain.validate_jira_id(jira_id)
    description = domain.validate_description(description)
    events = _task_events(settings, traceparent)
    with sessions() as session, session.begin():
        assignee_id = _lock_random_assignee(session, rng or _system_random)
        task = Task(
            public_id=uuid.uuid4(),
            title=title,
            jira_id=jira_id,
            description=description,
            status=domain.OPEN,
            assignee_id=assignee_id,
            created_by=actor.id,
            created_at=_now(),
            completed_at=None,
            version=1,
        )
        session.add(task)
        session.flush()
        session.add(TaskHistory(task_id=task.id, kind="created", assignee_id=assignee_id,
                                actor_id=actor.id, at=task.created_at))
        Outbox(settings.platform).publish_many(
            session, events.on_creation(TaskState.of(task), actor.id)
        )
        announce(session, "created", task=task.public_id)
        return TaskView.of(task)


def _lock_random_assignee(session: Session, rng: random.Random) -> uuid.UUID:
    """A uniformly random eligible account, share-locked until commit: one random slot
    of ``assignee_slots``, whatever the number of accounts.

    The lock makes a concurrent deactivation wait; one that won the race (or moved the
    slot) is seen by the locking read, and the pick is drawn again.
    """
    while True:
        pool_size = session.scalar(select(func.max(AssigneeSlot.slot)))
        if pool_size is None:
            raise domain.NoEligibleAssignee()
        chosen = session.scalar(
            select(Account.public_id)
            .join(AssigneeSlot, AssigneeSlot.account_id == Account.public_id)
            .where(
                AssigneeSlot.slot == domain.choose_slot(pool_size, rng),
                Account.is_eligible_assignee(),
            )
            .with_for_update(read=True, of=Account)
        )
        if chosen is not None:
            return chosen


def complete_task(
    sessions: Sessions,
    settings: TasksSettings,
    actor: Actor,
    task_id: uuid.UUID,
    *,
    traceparent: str | None = None,
) -> TaskView:
    """Mark the actor's open task done (see ``tasks.reshuffle`` for the locking)."""
    events = _task_events(settings, traceparent)
    with sessions() as session, session.begin():
        lock_against_reshuffle(session)
        task = session.scalar(select(Task).where(Task.public_id == task_id).with_for_update())
        if task is None:
            raise domain.TaskNotFound(task_id)
        domain.ensure_may_complete(task.public_id, task.status, task.assignee_id, actor.id)
        task.status = domain.DONE
        task.completed_at = _now()
        task.version += 1
        session.flush()
        session.add(TaskHistory(task_id=task.id, kind="completed", assignee_id=task.assignee_id,
                                actor_id=actor.id, at=task.completed_at))
        Outbox(settings.platform).publish_many(session, events.on_completion(TaskState.of(task)))
        announce(session, "completed", task=task.public_id)
        return TaskView.of(task)


def reshuffle(
    sessions: Sessions,
    settings: TasksSettings,
    actor: Actor,
    *,
    traceparent: str | None = None,
) -> int:
    """Reassign every open task at random; returns how many were reassigned."""
    domain.ensure_may_reshuffle(actor.role)
    events = _task_events(settings, traceparent)
    with sessions() as session, session.begin():
        count = reshuffle_open_tasks(session, Outbox(settings.platform), events, _now(), actor.id)
        if count:
            announce(session, "reshuffled", count=count)
        return count


# -- queries ----------------------------------------------------------------------------


def get_task(sessions: Sessions, task_id: uuid.UUID) -> TaskView:
    with sessions() as session:
        task = session.scalar(select(Task).where(Task.public_id == task_id))
        if task is None:
            raise domain.TaskNotFound(task_id)
        return TaskView.of(task)


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

    def apply(self, query: Select) -> Select:
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


def _accounts_named(name: str) -> Select:
    """Up to ``NAME_MATCHES`` accounts whose full name contains ``name`` (trigram index)."""
    return (select(Account.public_id).where(Account.full_name.ilike(_contains(name)))
            .order_by(Account.public_id).limit(NAME_MATCHES))


def list_tasks(
    sessions: Sessions,
    assignee: uuid.UUID | None = None,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    *,
    sort: str = NEWEST,
    **conditions: str | uuid.UUID | None,
) -> tuple[list[TaskView], str | None]:
    """A page of tasks in ``sort`` order (newest first by default) and the cursor of the
    next page (None at the end); ``conditions`` are the other fields of ``TaskFilter``.

    Pages are keyset pages: the cursor names the last task shown, and the next page starts
    right after its place in the order, through an index whatever the page number.
    """
    where = TaskFilter(assignee, status, **conditions).validated()  # type: ignore[arg-type]
    if sort not in SORTS:
        raise domain.ValidationError(f"sort must be one of {', '.join(SORTS)}")
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise domain.ValidationError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    with sessions() as session:
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
                query = query.where(tuple_(Task.title, Task.id) > tuple_(after.title, after.id))
        tasks = list(session.scalars(query))
    page = [TaskView.of(task) for task in tasks[:limit]]
    return page, encode_cursor(page[-1].id) if len(tasks) > limit else None


def count_tasks(sessions: Sessions, assignee: uuid.UUID | None = None,
                status: str | None = None, **conditions: str | uuid.UUID | None) -> Total:
    """How many tasks ``list_tasks`` would page through, at a bounded cost.

    Open tasks without other conditions: the maintained ``open_task_counts`` (exact).
    Otherwise the planner's estimate first: when it promises many more than
    ``COUNT_EXACTLY_UP_TO`` tasks, that estimate is the answer; else the tasks are counted,
    stopping after ``COUNT_EXACTLY_UP_TO + 1`` (beyond that, the estimate again).
    """
    where = TaskFilter(assignee, status, **conditions).validated()  # type: ignore[arg-type]
    if where.is_everything_of_a_status and where.status == domain.OPEN:
        return Total(count_open_tasks(sessions), exact=True)
    matching = where.apply(select(Task.id))
    with sessions() as session:
        estimate = _estimated_rows(session, matching)
        if estimate > 10 * COUNT_EXACTLY_UP_TO:
            return Total(estimate, exact=False)
        counted = session.scalar(
            select(func.count()).select_from(
                matching.limit(COUNT_EXACTLY_UP_TO + 1).subquery()))
    if counted <= COUNT_EXACTLY_UP_TO:
        return Total(counted, exact=True)
    return Total(max(estimate, counted), exact=False)


def _estimated_rows(session: Session, query: Select) -> int:
    """The planner's row estimate for ``query`` (planned, never run).

    The values are rendered into the statement (``EXPLAIN`` takes no parameters), quoted
    by the dialect, and the statement goes to the driver as it is: nothing in a search
    text (``:name``, ``%``) is read as a placeholder.
    """
    compiled = query.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
    driver = session.connection().connection.driver_connection
    [[[plan]]] = driver.execute(f"EXPLAIN (FORMAT JSON) {compiled}").fetchall()
    return int(plan["Plan"]["Plan Rows"])


@dataclass(frozen=True)
class HistoryEntry:
    kind: str
    assignee_id: uuid.UUID
    previous_assignee_id: uuid.UUID | None
    actor_id: uuid.UUID | None
    at: datetime


def task_history(sessions: Sessions, task_id: uuid.UUID,
                 limit: int = MAX_PAGE_SIZE) -> list[HistoryEntry]:
    """The task's latest ``limit`` assignments and its completion, oldest first."""
    position = select(Task.id).where(Task.public_id == task_id).scalar_subquery()
    query = (select(TaskHistory).where(TaskHistory.task_id == position)
             .order_by(TaskHistory.id.desc()).limit(limit))
    with sessions() as session:
        rows = list(session.scalars(query))
    return [HistoryEntry(row.kind, row.assignee_id, row.previous_assignee_id, row.actor_id,
                         row.at) for row in reversed(rows)]


def count_open_tasks(sessions: Sessions) -> int:
    """How many tasks are open: a sum over the few rows of ``open_task_counts``."""
    with sessions() as session:
        return session.scalar(select(func.coalesce(func.sum(OpenTaskCount.open), 0))) or 0


def account_names(sessions: Sessions, account_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Full names of the given accounts, as far as the replica knows them."""
    wanted = set(account_ids)
    if not wanted:
        return {}
    query = select(Account.public_id, Account.full_name).where(
        Account.public_id.in_(wanted), Account.full_name.is_not(None)
    )
    with sessions() as session:
        return {account_id: name for account_id, name in session.execute(query)}


def encode_cursor(last_task_id: uuid.UUID) -> str:
    """Opaque to clients: the public id of the last task of the page."""
    return base64.urlsafe_b64encode(last_task_id.bytes).rstrip(b"=").decode()


def _position_of(session: Session, cursor: str) -> Task:
    task_id = _decode_cursor(cursor)
    position = session.scalar(select(Task).where(Task.public_id == task_id))
    if position is None:
        raise domain.ValidationError("invalid cursor")
    return position


def _decode_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise domain.ValidationError("invalid cursor") from None


# -- accounts replica -------------------------------------------------------------------


def apply_account_state(
    session: Session, account_id: uuid.UUID, **state: Unpack[replica.AccountState]
) -> None:
    """``account.created``/``account.updated`` (see :func:`auth.replica.apply_state`)."""
    replica.apply_state(session, Account, account_id, state)


def apply_account_states(
    session: Session, states: Iterable[tuple[uuid.UUID | str, replica.AccountState]]
) -> None:
    """A run of ``account.created``/``account.updated`` events at once."""
    replica.apply_states(session, Account, states)


def apply_role_change(session: Session, account_id: uuid.UUID, role: str, version: int) -> None:
    """``account.role_changed``: take the role unless a newer one is already known."""
    replica.apply_role_change(session, Account, account_id, role, version)


def apply_account_deleted(session: Session, account_id: uuid.UUID, version: int) -> None:
    """``account.deleted``: the account is gone for good (it never gets a task again)."""
    replica.apply_deleted(session, Account, account_id, version)
