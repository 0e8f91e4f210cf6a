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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Unpack

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from auth import replica
from messaging.outbox import Outbox
from tasks import domain
from tasks.events import TaskEvents, TaskState
from tasks.models import Account, AssigneeSlot, OpenTaskCount, Task
from tasks.reshuffle import lock_against_reshuffle, reshuffle_open_tasks
from tasks.settings import TasksSettings

Sessions = sessionmaker[Session]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200

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
        Outbox(settings.platform).publish_many(
            session, events.on_creation(TaskState.of(task), actor.id)
        )
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
        Outbox(settings.platform).publish_many(session, events.on_completion(TaskState.of(task)))
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
        return reshuffle_open_tasks(session, Outbox(settings.platform), events, _now())


# -- queries ----------------------------------------------------------------------------


def get_task(sessions: Sessions, task_id: uuid.UUID) -> TaskView:
    with sessions() as session:
        task = session.scalar(select(Task).where(Task.public_id == task_id))
        if task is None:
            raise domain.TaskNotFound(task_id)
        return TaskView.of(task)


def list_tasks(
    sessions: Sessions,
    assignee: uuid.UUID | None = None,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
) -> tuple[list[TaskView], str | None]:
    """A page of tasks, newest first, and the cursor of the next page (None at the end)."""
    status = domain.validate_status(status)
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise domain.ValidationError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    with sessions() as session:
        query = select(Task).order_by(Task.id.desc()).limit(limit + 1)
        if assignee is not None:
            query = query.where(Task.assignee_id == assignee)
        if status is not None:
            query = query.where(Task.status == status)
        if cursor is not None:
            query = query.where(Task.id < _position_of(session, cursor))
        tasks = list(session.scalars(query))
    page = [TaskView.of(task) for task in tasks[:limit]]
    return page, encode_cursor(page[-1].id) if len(tasks) > limit else None


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


def _position_of(session: Session, cursor: str) -> int:
    task_id = _decode_cursor(cursor)
    position = session.scalar(select(Task.id).where(Task.public_id == task_id))
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
