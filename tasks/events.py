"""The events the tasks service emits, built from task rows and validated on the way.

``task.created``/``task.updated`` carry the full task state (schema v2 by default; v1,
with the Jira key folded into the title, when ``ATES_TASKS_EVENT_VERSION=1``);
``task.added``, ``task.assigned`` and ``task.completed`` say what happened.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self

from event_schemas import Event, SchemaRegistry, default_registry, task_v2_to_v1

SOURCE = "tasks"
TASK_CREATED = "task.created"
TASK_UPDATED = "task.updated"
TASK_ADDED = "task.added"
TASK_ASSIGNED = "task.assigned"
TASK_COMPLETED = "task.completed"
ASSIGNED_ON_CREATION = "created"
ASSIGNED_BY_RESHUFFLE = "reshuffle"

RFC3339_UTC = "%Y-%m-%dT%H:%M:%S.%fZ"


def rfc3339(moment: datetime) -> str:
    """``2026-11-22T10:15:00.123456Z``: the one time format of every task event."""
    return moment.astimezone(UTC).strftime(RFC3339_UTC)


def _id(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class TaskState:
    """What the CUD events say about a task (a row of ``tasks``, or what it became)."""

    public_id: uuid.UUID
    title: str
    jira_id: str | None
    description: str | None
    status: str
    assignee_id: uuid.UUID
    created_at: datetime
    completed_at: datetime | None
    version: int

    @classmethod
    def of(cls, task: Any) -> Self:
        return cls(**{name: getattr(task, name) for name in cls.__dataclass_fields__})


def _content(task: TaskState) -> dict[str, Any]:
    """The fields that say what a task is about, shared by several events."""
    return {
        "task_id": str(task.public_id),
        "title": task.title,
        "jira_id": task.jira_id,
        "description": task.description,
    }


def task_state_data(task: TaskState, dataversion: int) -> dict[str, Any]:
    """``data`` of ``task.created``/``task.updated`` in schema ``dataversion``."""
    data = _content(task) | {
        "status": task.status,
        "assignee_id": str(task.assignee_id),
        "created_at": rfc3339(task.created_at),
        "completed_at": None if task.completed_at is None else rfc3339(task.completed_at),
        "version": task.version,
    }
    return task_v2_to_v1(data) if dataversion == 1 else data


class TaskEvents:
    """Builds validated task events, all stamped with one trace context."""

    def __init__(
        self,
        state_version: int,
        traceparent: str | None = None,
        registry: SchemaRegistry | None = None,
    ):
        self.state_version = state_version
        self.traceparent = traceparent
        self.registry = registry or default_registry()

    def build(self, event_type: str, data: dict[str, Any], at: datetime, version: int = 1) -> Event:
        return self.registry.build(
            event_type,
            data,
            source=SOURCE,
            version=version,
            time=rfc3339(at),
            traceparent=self.traceparent,
        )

    def state(self, event_type: str, task: TaskState, at: datetime) -> Event:
        data = task_state_data(task, self.state_version)
        return self.build(event_type, data, at, self.state_version)

    def added(self, task: TaskState, created_by: uuid.UUID | None) -> Event:
        data = _content(task) | {
            "created_by": _id(created_by),
            "created_at": rfc3339(task.created_at),
        }
        return self.build(TASK_ADDED, data, task.created_at)

    def assigned(
        self, task: TaskState, previous_assignee_id: uuid.UUID | None, reason: str, at: datetime
    ) -> Event:
        data = {
            "task_id": str(task.public_id),
            "assignee_id": str(task.assignee_id),
            "previous_assignee_id": _id(previous_assignee_id),
            "reason": reason,
            "assigned_at": rfc3339(at),
        }
        return self.build(TASK_ASSIGNED, data, at)

    def completed(self, task: TaskState) -> Event:
        assert task.completed_at is not None
        data = {
            "task_id": str(task.public_id),
            "assignee_id": str(task.assignee_id),
            "completed_at": rfc3339(task.completed_at),
        }
        return self.build(TASK_COMPLETED, data, task.completed_at)

    def on_creation(self, task: TaskState, created_by: uuid.UUID | None) -> list[Event]:
        return [
            self.state(TASK_CREATED, task, task.created_at),
            self.added(task, created_by),
            self.assigned(task, None, ASSIGNED_ON_CREATION, task.created_at),
        ]

    def on_completion(self, task: TaskState) -> list[Event]:
        assert task.completed_at is not None
        return [self.state(TASK_UPDATED, task, task.completed_at), self.completed(task)]
