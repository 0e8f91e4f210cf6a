"""Handlers that keep the accounts replica in step with auth's events.

Events of one account may arrive in any order (two topics, redeliveries, replays); each
handler applies its event only when it is newer than what the replica holds, so the
replica ends in the same state whatever the order.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from event_schemas import Event
from messaging.consumer import HandlerRegistry
from tasks import service

CONSUMER_NAME = "tasks"
CONSUMED_TOPICS = ("accounts-stream", "accounts-lifecycle")

handlers = HandlerRegistry()


def _account_id(event: Event) -> uuid.UUID:
    return uuid.UUID(event.data["account_id"])


@handlers.on("account.created", 1)
@handlers.on("account.updated", 1)
def on_account_state(session: Session, event: Event) -> None:
    data = event.data
    service.apply_account_state(
        session,
        _account_id(event),
        email=data["email"],
        full_name=data["full_name"],
        role=data["role"],
        active=data["active"],
        version=data["version"],
    )


@handlers.on("account.deleted", 1)
def on_account_deleted(session: Session, event: Event) -> None:
    service.apply_account_deleted(session, _account_id(event), event.data["version"])


@handlers.on("account.role_changed", 1)
def on_account_role_changed(session: Session, event: Event) -> None:
    service.apply_role_change(
        session, _account_id(event), event.data["new_role"], event.data["version"]
    )
