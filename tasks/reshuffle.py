"""Reshuffle: every open task gets a uniformly random eligible assignee.

Speed. ``UPDATE`` statements over chunks of ``CHUNK`` open tasks (in id order, through the
partial index of open tasks) draw each row's assignee from a random slot of
``assignee_slots`` (``1 + floor(random() * n)``, evaluated per row, one index lookup) and
return what the events need. The ``task.updated`` and ``task.assigned`` events of each
chunk are rendered from JSON templates (``messaging.bulk_events.event_template``) and
loaded into the outbox with ``COPY`` (``Outbox.copy_prepared``) before the next chunk is
reassigned, so memory stays bounded by the chunk whatever the number of tasks or accounts.

Validity. Every value in those events comes from a column whose CHECK constraints mirror
the schemas (title, Jira key, status), or is a UUID, a version >= 1 or a timestamp, so
each event is valid by construction. On top of that, the first task of every
``VALIDATE_EVERY`` has both its events parsed, validated against the schemas and
compared with what ``TaskEvents`` builds for it, before anything is committed.

Concurrency. The reshuffle takes ``RESHUFFLE_LOCK`` exclusively, ``complete_task`` takes
it shared; both are transaction-level advisory locks, released at commit or rollback.

- Two reshuffles never overlap: the second waits for the first to commit and, since
  every statement under READ COMMITTED takes a fresh snapshot, its ``UPDATE`` sees the
  first one's assignees (the ``previous_assignee_id`` it reports is the real one) and
  versions (each reshuffle raises a task's version by exactly one).
- A completion and a reshuffle never overlap either: a reshuffle starts only once every
  running completion has committed, so its ``UPDATE ... WHERE status = 'open'`` sees
  those tasks done and leaves them alone; a completion that comes during a reshuffle
  waits, then checks the assignee the reshuffle chose. No completed task is reassigned
  and no completion is lost.

Row locks alone would keep completions safe (an ``UPDATE`` that meets a row changed
since its snapshot re-checks ``status = 'open'`` on the newest version; that re-check
stays as a second line of defence) but not reshuffles: the previous assignee is read
from the statement's snapshot, which a reshuffle committing in between makes stale.
Creating a task needs no lock: a task that did not exist when the reshuffle began may or
may not be part of it (as if created just before or just after). The reshuffle holds
``ASSIGNEE_POOL_LOCK`` shared, which every change of the pool takes exclusively, so a
deactivation or role change that arrives meanwhile waits for the reshuffle instead of
racing it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from event_schemas import Event, task_v2_to_v1
from messaging.bulk_events import PreparedEvent, event_template, random_event_ids
from messaging.outbox import Outbox
from platform_kit.db import driver_of
from tasks.domain import OPEN, NoEligibleAssignee
from tasks.events import (
    ASSIGNED_BY_RESHUFFLE,
    SOURCE,
    TASK_ASSIGNED,
    TASK_UPDATED,
    TaskEvents,
    TaskState,
    rfc3339,
)
from tasks.models import ASSIGNEE_POOL_LOCK, AssigneeSlot, Task

# Any constant will do, as long as every process of the tasks service uses the same one.
RESHUFFLE_LOCK = 0x7461736B73  # "tasks"
VALIDATE_EVERY = 10_000

# Every table is bounded by the chunk's id range, so the planner reads each through an
# index whatever join it picks; the slot is drawn in a subquery (a column to the lookup).
# The chunk's history rows are inserted by the same statement, from what the UPDATE returns.
_REASSIGN_OPEN_TASKS = """
WITH moved AS (
UPDATE tasks AS t
SET assignee_id = (SELECT account_id FROM assignee_slots WHERE slot = pick.slot),
    version = t.version + 1
FROM (SELECT id, 1 + floor(random() * %(pool_size)s)::int AS slot FROM tasks
      WHERE status = 'open' AND id > %(after)s AND id <= %(last)s) AS pick,
     tasks AS before
WHERE t.id = pick.id AND before.id = t.id AND t.status = 'open'
  AND t.id > %(after)s AND t.id <= %(last)s AND before.id > %(after)s AND before.id <= %(last)s
RETURNING t.id, t.public_id, t.assignee_id, before.assignee_id AS previous_assignee_id,
          t.title, t.jira_id, t.description, t.created_at, t.version
), history AS (
INSERT INTO task_history (task_id, kind, assignee_id, previous_assignee_id, actor_id, at)
SELECT id, 'reassigned', assignee_id, previous_assignee_id, %(actor)s, %(at)s FROM moved
)
SELECT public_id::text, assignee_id::text, previous_assignee_id::text,
       title, jira_id, description,
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       version
FROM moved
"""
_LAST_OF_CHUNK = """
SELECT max(id) FROM (SELECT id FROM tasks WHERE status = 'open' AND id > %(after)s
                     ORDER BY id LIMIT %(chunk)s) AS chunk
"""
CHUNK = 20_000

_encode_json = json.JSONEncoder(ensure_ascii=False).encode


def lock_against_completions(session: Session) -> None:
    session.execute(select(func.pg_advisory_xact_lock(RESHUFFLE_LOCK)))


def lock_against_reshuffle(session: Session) -> None:
    session.execute(select(func.pg_advisory_xact_lock_shared(RESHUFFLE_LOCK)))


def reshuffle_open_tasks(session: Session, outbox: Outbox, events: TaskEvents, at: datetime,
                         actor_id: uuid.UUID | None = None) -> int:
    """Reassign every open task and write its events and history rows (done by
    ``actor_id``), inside ``session``'s transaction.

    Returns how many tasks were reassigned; raises ``NoEligibleAssignee`` (having changed
    nothing) when there are open tasks but nobody to give them to.
    """
    lock_against_completions(session)
    pool_size = _hold_assignee_pool(session)
    if not pool_size:
        if session.scalar(select(Task.id).where(Task.status == OPEN).limit(1)) is not None:
            raise NoEligibleAssignee()
        return 0
    renderer = ReshuffleEvents(events, at)
    reassigned, after = 0, 0
    cursor = driver_of(session).cursor()
    with cursor:
        while last := _last_of_chunk(cursor, after):
            rows = cursor.execute(
                _REASSIGN_OPEN_TASKS,
                {"pool_size": pool_size, "after": after, "last": last, "actor": actor_id,
                 "at": at},
            ).fetchall()
            outbox.copy_prepared(session, renderer.render(rows), traceparent=events.traceparent)
            reassigned += len(rows)
            after = last
    return reassigned


def _last_of_chunk(cursor: psycopg.Cursor[Any], after: int) -> int | None:
    """The id of the last of the next ``CHUNK`` open tasks after ``after`` (None: no more)."""
    row = cursor.execute(_LAST_OF_CHUNK, {"after": after, "chunk": CHUNK}).fetchone()
    assert row is not None
    last: int | None = row[0]
    return last


def _hold_assignee_pool(session: Session) -> int:
    """Keep every account in or out of the pool until commit; returns the pool's size.

    A deactivation or role change that arrives meanwhile waits for the reshuffle, so no
    task goes to an account that left the pool during it.
    """
    session.execute(select(func.pg_advisory_xact_lock_shared(ASSIGNEE_POOL_LOCK)))
    return session.scalar(select(func.max(AssigneeSlot.slot))) or 0


class RenderingError(RuntimeError):
    """A rendered event differs from what the regular builder makes of the same task."""


class ReshuffleEvents:
    """Renders the events of reassigned tasks from templates, a few microseconds each.

    A template (``messaging.bulk_events.event_template``) is the JSON of an event built
    the regular way (``Event.to_json``) with ``@name@`` placeholders turned into slots:
    strings stay in their quotes, values that arrive JSON-encoded (title, jira_id,
    description) and numbers replace the quoted placeholder.
    """

    JSON_SLOTS = ("title", "jira_id", "description")
    NUMBER_SLOTS = ("version",)

    def __init__(self, events: TaskEvents, at: datetime):
        self.events = events
        self.at = at
        self.time = rfc3339(at)
        self.state_version = events.state_version
        self.updated_template = self._template(
            TASK_UPDATED, self.state_version, self._state_placeholders()
        )
        self.assigned_template = self._template(
            TASK_ASSIGNED,
            1,
            {
                "task_id": "@task_id@",
                "assignee_id": "@assignee_id@",
                "previous_assignee_id": "@previous_assignee_id@",
                "reason": ASSIGNED_BY_RESHUFFLE,
                "assigned_at": self.time,
            },
        )

    def _state_placeholders(self) -> dict[str, Any]:
        data = {
            "task_id": "@task_id@",
            "title": "@title@",
            "jira_id": "@jira_id@",
            "description": "@description@",
            "status": OPEN,
            "assignee_id": "@assignee_id@",
            "created_at": "@created_at@",
            "completed_at": None,
            "version": "@version@",
        }
        if self.state_version == 1:
            data = task_v2_to_v1(data | {"jira_id": None})
        return data

    def _template(self, event_type: str, version: int, data: dict[str, Any]) -> str:
        event = Event(
            type=event_type,
            dataversion=version,
            data=data,
            source=SOURCE,
            id="@event_id@",
            time=self.time,
            traceparent=self.events.traceparent,
        )
        return event_template(event, self.JSON_SLOTS, self.NUMBER_SLOTS)

    def render(self, rows: Sequence[tuple[Any, ...]]) -> Iterator[PreparedEvent]:
        """``task.updated`` then ``task.assigned`` for each row of the reassigning UPDATE."""
        state_version = self.state_version
        event_ids = random_event_ids(2 * len(rows))
        for index, row in enumerate(rows):
            (
                task_id,
                assignee_id,
                previous_assignee_id,
                title,
                jira_id,
                description,
                created_at,
                version,
            ) = row
            updated_id, assigned_id = next(event_ids), next(event_ids)
            updated = self.updated_template % {
                "event_id": updated_id,
                "task_id": task_id,
                "title": _encode_json(self._title(title, jira_id)),
                "jira_id": _encode_json(jira_id),
                "description": _encode_json(description),
                "assignee_id": assignee_id,
                "created_at": created_at,
                "version": version,
            }
            assigned = self.assigned_template % {
                "event_id": assigned_id,
                "task_id": task_id,
                "assignee_id": assignee_id,
                "previous_assignee_id": previous_assignee_id,
            }
            if index % VALIDATE_EVERY == 0:
                self._check(row, updated, assigned)
            yield updated_id, TASK_UPDATED, task_id, state_version, updated.encode()
            yield assigned_id, TASK_ASSIGNED, task_id, 1, assigned.encode()

    def _title(self, title: str, jira_id: str | None) -> str:
        if self.state_version == 2 or jira_id is None:
            return title
        folded: str = task_v2_to_v1(_V1_TITLE_STUB | {"title": title, "jira_id": jira_id})["title"]
        return folded

    def _check(self, row: tuple[Any, ...], updated: str, assigned: str) -> None:
        """Validate a rendered pair and compare it with the regular builder's events."""
        task, previous_assignee_id = _state_of(row), uuid.UUID(row[2])
        expected = [
            self.events.state(TASK_UPDATED, task, self.at),
            self.events.assigned(task, previous_assignee_id, ASSIGNED_BY_RESHUFFLE, self.at),
        ]
        for payload, reference in zip((updated, assigned), expected, strict=True):
            parsed = self.events.registry.parse(payload)
            if (parsed.type, parsed.dataversion, parsed.data) != (
                reference.type,
                reference.dataversion,
                reference.data,
            ):
                raise RenderingError(f"rendered {parsed.type} {parsed.data} != {reference.data}")


_V1_TITLE_STUB = {
    "task_id": "",
    "description": None,
    "status": OPEN,
    "assignee_id": "",
    "created_at": "",
    "completed_at": None,
    "version": 1,
}


def _state_of(row: tuple[Any, ...]) -> TaskState:
    task_id, assignee_id, _, title, jira_id, description, created_at, version = row
    return TaskState(
        public_id=uuid.UUID(task_id),
        title=title,
        jira_id=jira_id,
        description=description,
        status=OPEN,
        assignee_id=uuid.UUID(assignee_id),
        created_at=datetime.fromisoformat(created_at),
        completed_at=None,
        version=version,
    )
