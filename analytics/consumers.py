"""Which events analytics projects, in which schema versions, and what each asks of the
projection: events become the facts of ``analytics.domain``, handed to the commands of
``analytics.service`` a batch at a time. Every consumer of the projection (the stream
projector, a rebuild's replay) applies events with these handlers."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from analytics.domain import (
    DayClosed,
    TaskCompletion,
    TaskPrices,
    TaskTitle,
    Transaction,
    parse_instant,
)
from analytics.service import AnalyticsService
from auth_client import replica
from event_schemas import Event, task_v1_to_v2
from messaging.consumer import HandlerRegistry
from platform_kit.settings import catalog_topics

CONSUMER_NAME = "analytics"
CONSUMED_TOPICS = catalog_topics(CONSUMER_NAME)


def corrected_transaction(data: Mapping[str, Any]) -> Transaction:
    """``transaction.corrected`` (a reversal or an adjustment) is projected as a transaction
    of the type it counts as (``counts_as``), on the day it was booked: a reversed fee
    lowers that day's fees, a reversed reward its rewards, and the balance moves alike."""
    return Transaction.from_event_data({**data, "type": data["counts_as"]})


def task_title(event: Event) -> TaskTitle:
    """``task.created`` / ``task.updated`` v1 (Jira key in the title) or v2."""
    data = task_v1_to_v2(event.data) if event.dataversion == 1 else event.data
    return TaskTitle(uuid.UUID(data["task_id"]), data["title"], data["jira_id"],
                     data["version"])


def task_prices(data: Mapping[str, Any]) -> TaskPrices:
    return TaskPrices(uuid.UUID(data["task_id"]), data["fee"], data["reward"])


def task_completion(data: Mapping[str, Any]) -> TaskCompletion:
    return TaskCompletion(uuid.UUID(data["task_id"]), parse_instant(data["completed_at"]))


def day_closed(data: Mapping[str, Any]) -> DayClosed:
    return DayClosed(date.fromisoformat(data["day"]), parse_instant(data["closed_at"]),
                     data["accounts_paid"], data["total_paid"])


def make_handlers(projection: AnalyticsService) -> HandlerRegistry:
    """Batch handlers for the projected types; other types on the topics are skipped."""

    def on_transactions(session: Session, events: list[Event]) -> None:
        projection.apply_transactions(
            session, [Transaction.from_event_data(e.data) for e in events])

    def on_corrections(session: Session, events: list[Event]) -> None:
        projection.apply_transactions(session, [corrected_transaction(e.data) for e in events])

    def on_closed_days(session: Session, events: list[Event]) -> None:
        projection.apply_closed_days(session, [day_closed(e.data) for e in events])

    def on_task_prices(session: Session, events: list[Event]) -> None:
        projection.apply_task_prices(session, [task_prices(e.data) for e in events])

    def on_task_completions(session: Session, events: list[Event]) -> None:
        projection.apply_task_completions(session, [task_completion(e.data) for e in events])

    def on_task_states(session: Session, events: list[Event]) -> None:
        projection.apply_task_titles(session, [task_title(e) for e in events])

    def on_account_states(session: Session, events: list[Event]) -> None:
        projection.apply_account_states(
            session, [(e.data["account_id"], replica.account_state(e)) for e in events])

    handlers = HandlerRegistry()
    handlers.register_batch("transaction.applied", [1], on_transactions)
    handlers.register_batch("transaction.corrected", [1], on_corrections)
    handlers.register_batch("billing_cycle.closed", [1], on_closed_days)
    handlers.register_batch("task.priced", [1], on_task_prices)
    handlers.register_batch("task.completed", [1], on_task_completions)
    handlers.register_batch("task.created", [1, 2], on_task_states)
    handlers.register_batch("task.updated", [1, 2], on_task_states)
    handlers.register_batch("account.created", [1], on_account_states)
    handlers.register_batch("account.updated", [1], on_account_states)
    return handlers
