"""Handlers that keep the accounts replica in step with auth's events.

Events of one account may arrive in any order (two topics, redeliveries, replays); the
replica takes an event only when it is newer than what it holds (see ``auth.replica``),
so it ends in the same state whatever the order.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from auth import replica
from event_schemas import Event
from messaging.consumer import HandlerRegistry
from tasks import service

CONSUMER_NAME = "tasks"
CONSUMED_TOPICS = ("accounts-stream", "accounts-lifecycle")

handlers = HandlerRegistry()


def on_account_states(session: Session, events: list[Event]) -> None:
    service.apply_account_states(
        session, [(event.data["account_id"], replica.account_state(event)) for event in events]
    )


handlers.register_batch("account.created", [1], on_account_states)
handlers.register_batch("account.updated", [1], on_account_states)


@handlers.on("account.deleted", 1)
def on_account_deleted(session: Session, event: Event) -> None:
    service.apply_account_deleted(session, replica.account_id(event), event.data["version"])


@handlers.on("account.role_changed", 1)
def on_account_role_changed(session: Session, event: Event) -> None:
    service.apply_role_change(
        session, replica.account_id(event), event.data["new_role"], event.data["version"]
    )
