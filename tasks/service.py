"""Use cases of the tasks service that change state: create, complete, reshuffle.

A :class:`TasksService` is handed everything it works with (sessions, the outbox, the
clock, the random source) and reaches for nothing else. Each command changes the database
and writes the events of the change to the outbox in the same transaction; on any error
nothing is stored. Reads are in :mod:`tasks.queries`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from random import Random
from typing import cast

from psycopg import Cursor
from sqlalchemy import BigInteger, bindparam, func, select, text
from sqlalchemy.orm import aliased

from auth_client.replica import AccountMayNotAct, refusal_of_standing, standing_query
from event_schemas import Event
from messaging.outbox import INSERT_FROM_ARRAYS, Outbox
from platform_kit.db import DriverStatement, driver_transaction, engine_of
from tasks import domain
from tasks.events import TaskEvents, TaskState
from tasks.live import CHANNEL, announce, announcement
from tasks.models import Account, AssigneeSlot, Task, TaskHistory
from tasks.queries import Sessions, TaskView
from tasks.reshuffle import lock_against_reshuffle, reshuffle_open_tasks
from tasks.settings import DEFAULT_TASK_EVENT_VERSION, TasksSettings

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Actor:
    """Who is acting: an account public id and its role."""

    id: uuid.UUID
    role: str


class TasksService:
    """The commands of the task tracker.

    ``event_version`` is the schema version of the ``task.created``/``task.updated``
    events written (see :class:`tasks.settings.TasksSettings`).
    """

    def __init__(
        self,
        sessions: Sessions,
        outbox: Outbox,
        *,
        clock: Clock,
        random: Random,
        event_version: int = DEFAULT_TASK_EVENT_VERSION,
    ) -> None:
        self.sessions = sessions
        self.outbox = outbox
        self.clock = clock
        self.random = random
        self.event_version = event_version

    @classmethod
    def from_settings(
        cls, sessions: Sessions, settings: TasksSettings, *, clock: Clock, random: Random
    ) -> TasksService:
        """The service writing to the outbox of ``settings``' platform, in its event version."""
        return cls(sessions, Outbox(settings.platform), clock=clock, random=random,
                   event_version=settings.task_event_version)

    def _events(self, traceparent: str | None) -> TaskEvents:
        return TaskEvents(self.event_version, traceparent)

    def create_task(
        self,
        actor: Actor,
        title: str,
        jira_id: str | None = None,
        description: str | None = None,
        *,
        traceparent: str | None = None,
    ) -> TaskView:
        """Store a new open task, assigned to a uniformly random eligible assignee.

        An actor the accounts replica knows deleted or deactivated is refused
        (``AccountMayNotAct``), checked in the same statement as the pick.
        """
        title = domain.validate_title(title)
        jira_id = domain.validate_jira_id(jira_id)
        description = domain.validate_description(description)
        events = self._events(traceparent)
        with driver_transaction(engine_of(self.sessions)) as cursor:
            task = TaskView(
                public_id=uuid.uuid4(),
                title=title,
                jira_id=jira_id,
                description=description,
                status=domain.OPEN,
                assignee_id=lock_random_assignee(cursor, self.random, actor.id),
                created_at=self.clock(),
                completed_at=None,
                version=1,
                created_by=actor.id,
            )
            store_new_task(cursor, self.outbox, task, events.on_creation(task, actor.id))
            return task

    def complete_task(
        self, actor: Actor, task_id: uuid.UUID, *, traceparent: str | None = None
    ) -> TaskView:
        """Mark the actor's open task done (see ``tasks.reshuffle`` for the locking)."""
        events = self._events(traceparent)
        with self.sessions() as session, session.begin():
            lock_against_reshuffle(session)
            task = session.scalar(
                select(Task).where(Task.public_id == task_id).with_for_update())
            if task is None:
                raise domain.TaskNotFound(task_id)
            domain.ensure_may_complete(task.public_id, task.status, task.assignee_id, actor.id)
            task.status = domain.DONE
            task.completed_at = self.clock()
            task.version += 1
            session.flush()
            session.add(TaskHistory(task_id=task.id, kind="completed",
                                    assignee_id=task.assignee_id, actor_id=actor.id,
                                    at=task.completed_at))
            self.outbox.publish_many(session, events.on_completion(TaskState.of(task)))
            announce(session, "completed", task=task.public_id)
            return TaskView.of(task)

    def reshuffle(self, actor: Actor, *, traceparent: str | None = None) -> int:
        """Reassign every open task at random; returns how many were reassigned.

        The draws are the database's own (``random()`` per row, see ``tasks.reshuffle``).
        """
        domain.ensure_may_reshuffle(actor.role)
        events = self._events(traceparent)
        with self.sessions() as session, session.begin():
            count = reshuffle_open_tasks(session, self.outbox, events, self.clock(), actor.id)
            if count:
                announce(session, "reshuffled", count=count)
            return count


_POOL_SIZE = select(func.max(AssigneeSlot.slot))  # None when nobody is eligible
_CALLER = aliased(Account)
_CALLER_MAY_NOT_ACT = select(_CALLER.public_id).where(
    _CALLER.public_id == bindparam("caller"), _CALLER.may_not_act())
# One random slot of ``assignee_slots`` and its account, if still eligible, share-locked:
# ``draw`` reduced to a slot of the pool as ``domain.slot_of`` does. Nothing either when
# the caller may no longer act.
_PICK = (
    select(Account.public_id)
    .join(AssigneeSlot, AssigneeSlot.account_id == Account.public_id)
    .where(
        AssigneeSlot.slot
        == 1 + bindparam("draw", type_=BigInteger) % _POOL_SIZE.scalar_subquery(),
        Account.is_eligible_assignee(),
        ~_CALLER_MAY_NOT_ACT.exists(),
    )
    .with_for_update(read=True, of=Account)
)


# Task creation, the hottest write, runs on the driver's cursor (see driver_transaction).
_PICK_ON_DRIVER = DriverStatement(_PICK)
_STANDING_ON_DRIVER = DriverStatement(standing_query(Account))
_POOL_SIZE_ON_DRIVER = DriverStatement(_POOL_SIZE)


def lock_random_assignee(cursor: Cursor, rng: Random, caller: uuid.UUID) -> uuid.UUID:
    """A uniformly random eligible account, share-locked until commit: one random slot
    of ``assignee_slots``, whatever the number of accounts, read in one statement with
    the pool's size and whether ``caller`` may still act.

    The lock makes a concurrent deactivation wait; one that won the race (or moved the
    slot) is seen by the locking read, and the pick is drawn again.
    """
    while True:
        chosen = _PICK_ON_DRIVER.run(cursor, draw=domain.draw(rng), caller=caller).fetchone()
        if chosen is not None:
            return cast(uuid.UUID, chosen[0])
        refusal = refusal_of_standing(_STANDING_ON_DRIVER.run(cursor, account_id=caller)
                                      .fetchone())
        if refusal is not None:
            raise AccountMayNotAct(refusal)
        if _POOL_SIZE_ON_DRIVER.run(cursor).fetchone() == (None,):
            raise domain.NoEligibleAssignee()


# A new task, its history's first line, its events and the board's announcement, in one
# statement (one round trip); the events' parameters are those of the outbox's insert.
_CREATE_TASK = text(f"""
WITH task AS (
    INSERT INTO tasks (public_id, title, jira_id, description, status, assignee_id,
                       created_by, created_at, completed_at, version)
    VALUES (:public_id, :title, :jira_id, :description, :status, :assignee_id,
            :created_by, :created_at, NULL, :version)
    RETURNING id, assignee_id, created_by, created_at
), history AS (
    INSERT INTO task_history (task_id, kind, assignee_id, actor_id, at)
    SELECT id, 'created', assignee_id, created_by, created_at FROM task
), events AS (
    {INSERT_FROM_ARRAYS}
)
SELECT pg_notify(:channel, :announcement) FROM task
""")


_CREATE_TASK_ON_DRIVER = DriverStatement(_CREATE_TASK)


def store_new_task(cursor: Cursor, outbox: Outbox, task: TaskView,
                   events: Iterable[Event]) -> None:
    """Insert ``task`` (open, not completed yet) with its creation in its history, write
    its ``events`` to the outbox and tell the boards, in ``cursor``'s transaction."""
    _CREATE_TASK_ON_DRIVER.run(cursor, **{
        "public_id": task.public_id, "title": task.title, "jira_id": task.jira_id,
        "description": task.description, "status": task.status,
        "assignee_id": task.assignee_id, "created_by": task.created_by,
        "created_at": task.created_at, "version": task.version,
        "channel": CHANNEL, "announcement": announcement("created", task=task.public_id),
        **outbox.arrays(events),
    })
