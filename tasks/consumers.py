"""Handlers that keep the accounts replica in step with auth's events.

Events of one account may arrive in any order (two topics, redeliveries, replays); the
replica takes an event only when it is newer than what it holds (see ``auth_client.replica``),
so it ends in the same state whatever the order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Unpack

from sqlalchemy.orm import Session

from auth_client import replica
from event_schemas import Event
from messaging.consumer import HandlerRegistry
from platform_kit.settings import catalog_topics
from tasks.models import Account

CONSUMER_NAME = "tasks"
CONSUMED_TOPICS = catalog_topics(CONSUMER_NAME)

handlers = HandlerRegistry()


def apply_account_state(
    session: Session, account_id: uuid.UUID, **state: Unpack[replica.AccountState]
) -> None:
    """``account.created``/``account.updated`` (see :func:`auth_client.replica.apply_state`)."""
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


def on_account_states(session: Session, events: list[Event]) -> None:
    apply_account_states(
        session, [(event.data["account_id"], replica.account_state(event)) for event in events]
    )


handlers.register_batch("account.created", [1], on_account_states)
handlers.register_batch("account.updated", [1], on_account_states)


@handlers.on("account.deleted", 1)
def on_account_deleted(session: Session, event: Event) -> None:
    apply_account_deleted(session, replica.account_id(event), event.data["version"])


@handlers.on("account.role_changed", 1)
def on_account_role_changed(session: Session, event: Event) -> None:
    apply_role_change(
        session, replica.account_id(event), event.data["new_role"], event.data["version"]
    )
