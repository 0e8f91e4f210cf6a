"""Which events analytics projects, in which schema versions, and with which use case."""

from __future__ import annotations

from functools import partial
from zoneinfo import ZoneInfo

from analytics import service
from messaging.consumer import HandlerRegistry

CONSUMER_NAME = "analytics"
# accounts-stream: the names of the accounts (account.created, account.updated)
CONSUMED_TOPICS = ("accounting-lifecycle", "tasks-lifecycle", "tasks-stream", "accounts-stream")

def make_handlers(zone: ZoneInfo) -> HandlerRegistry:
    """Batch handlers for the projected types; other types on the topics are skipped."""
    handlers = HandlerRegistry()
    handlers.register_batch("transaction.applied", [1], service.apply_transactions)
    handlers.register_batch("transaction.corrected", [1], service.apply_corrections)
    handlers.register_batch("billing_cycle.closed", [1], service.apply_closed_days)
    handlers.register_batch("task.priced", [1], service.apply_task_prices)
    handlers.register_batch(
        "task.completed", [1], partial(service.apply_task_completions, zone=zone)
    )
    handlers.register_batch("task.created", [1, 2], service.apply_task_states)
    handlers.register_batch("task.updated", [1, 2], service.apply_task_states)
    handlers.register_batch("account.created", [1], service.apply_account_states)
    handlers.register_batch("account.updated", [1], service.apply_account_states)
    return handlers
