"""Handlers that feed the replicas and the ledger from auth's and tasks' events.

Events may arrive in any order across topics (``task.assigned`` before ``task.created``,
``account.role_changed`` before ``account.updated``): replica handlers apply a state only
when it is newer than the one held, and every task event prices the task if it is the
first one accounting sees. Task events are handled in runs (a reshuffle sends one
``task.assigned`` per open task) and written in bulk.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from accounting.domain import TaskDescription, task_facts
from accounting.ledger_sql import Books, TaskCharge
from accounting.service import LedgerCommands
from auth_client import replica
from event_schemas import Event
from messaging.consumer import HandlerRegistry
from platform_kit.settings import catalog_topics

CONSUMER_NAME = "accounting"
CONSUMED_TOPICS = catalog_topics(CONSUMER_NAME)


def _charge(event: Event) -> TaskCharge:
    # the ids stay text: the ledger binds them as text (the schema checked them)
    return TaskCharge(
        source_event_id=event.id,
        task_id=event.data["task_id"],
        account_id=event.data["assignee_id"],
        traceparent=event.traceparent,
    )


def on_account_states(session: Session, events: list[Event]) -> None:
    LedgerCommands.apply_account_states(
        session, [(event.data["account_id"], replica.account_state(event)) for event in events]
    )


def on_account_deleted(session: Session, event: Event) -> None:
    LedgerCommands.apply_account_deleted(session, replica.account_id(event), event.data["version"])


def on_role_changed(session: Session, event: Event) -> None:
    LedgerCommands.apply_role_change(
        session, replica.account_id(event), event.data["new_role"], event.data["version"]
    )


def make_handlers(books: Books) -> HandlerRegistry:
    """The handlers of the accounting consumer, writing through ``books``."""
    ledger = LedgerCommands(books)
    handlers = HandlerRegistry()
    handlers.register_batch("account.created", [1], on_account_states)
    handlers.register_batch("account.updated", [1], on_account_states)
    handlers.register("account.deleted", [1], on_account_deleted)
    handlers.register("account.role_changed", [1], on_role_changed)

    def on_task_states(session: Session, events: list[Event]) -> None:
        states = [task_facts(e.data, e.dataversion) for e in events]
        traceparents: dict[uuid.UUID, str | None] = {}
        for state, event in zip(states, events, strict=True):
            traceparents.setdefault(state.task_id, event.traceparent)
        ledger.apply_task_states(session, states, traceparents)

    def on_tasks_added(session: Session, events: list[Event]) -> None:
        added = [
            TaskDescription(
                uuid.UUID(e.data["task_id"]), e.data["title"], e.data["jira_id"],
                e.data["description"],
            )
            for e in events
        ]
        traceparents: dict[uuid.UUID, str | None] = {}
        for task, event in zip(added, events, strict=True):
            traceparents.setdefault(task.task_id, event.traceparent)
        ledger.apply_tasks_added(session, added, traceparents)

    def on_assigned(session: Session, events: list[Event]) -> None:
        ledger.apply_task_assigned(session, [_charge(e) for e in events], report=False)

    def on_completed(session: Session, events: list[Event]) -> None:
        ledger.apply_task_completed(session, [_charge(e) for e in events], report=False)

    handlers.register_batch("task.created", [1, 2], on_task_states)
    handlers.register_batch("task.updated", [1, 2], on_task_states)
    handlers.register_batch("task.added", [1], on_tasks_added)
    handlers.register_batch("task.assigned", [1], on_assigned)
    handlers.register_batch("task.completed", [1], on_completed)
    return handlers
