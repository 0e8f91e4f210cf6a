"""The client side of auth's account events: keeping a replica of auth's accounts.

A service keeps the replica in a table of its own, a model with the columns of
:class:`AccountReplica`, and applies the events in its own use cases by calling the
functions here with that model.

Events of one account may arrive in any order (two topics, redeliveries, replays); each
is applied only when it is newer than what the replica holds, so the replica ends in the
same state whatever the order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypedDict

from sqlalchemy import ColumnElement, DateTime, Integer, Text, case, func, text
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from event_schemas import Event


class AccountReplica:
    """The columns of a replica (a mixin for the service's own model).

    ``version`` is the entity version of the last applied ``account.created/updated``;
    ``role_version`` the version the role comes from, which may be newer when an
    ``account.role_changed`` overtook the matching ``account.updated``. A row may exist
    before its ``account.created`` arrived (then ``version`` is 0 and it is inactive).
    """

    public_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    email: Mapped[str | None] = mapped_column(Text)
    full_name: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(server_default=text("false"))
    deleted: Mapped[bool] = mapped_column(server_default=text("false"))
    version: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    role_version: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AccountState(TypedDict):
    """The state ``account.created`` and ``account.updated`` carry."""

    email: str
    full_name: str
    role: str
    active: bool
    version: int


def account_id(event: Event) -> uuid.UUID:
    """The account any ``account.*`` event is about."""
    return uuid.UUID(event.data["account_id"])


def account_state(event: Event) -> AccountState:
    data = event.data
    return AccountState(
        email=data["email"],
        full_name=data["full_name"],
        role=data["role"],
        active=data["active"],
        version=data["version"],
    )


def apply_state(
    session: Session, table: type[AccountReplica], account_id: uuid.UUID, state: AccountState
) -> None:
    """``account.created``/``account.updated``: take the state unless it is stale."""
    apply_states(session, table, [(account_id, state)])


def apply_states(
    session: Session,
    table: type[AccountReplica],
    states: Iterable[tuple[uuid.UUID | str, AccountState]],
) -> None:
    """``account.created``/``account.updated`` of many accounts: each state is taken
    unless it is stale, in one round trip (one upsert a row, pipelined).

    The role is taken too, unless an ``account.role_changed`` newer than this state has
    already been applied. A deleted account stays deleted whatever comes later.
    """
    rows = [
        {"public_id": account_id, **state, "role_version": state["version"]}
        for account_id, state in states
    ]
    if not rows:
        return
    new = insert(table).excluded
    statement = insert(table).on_conflict_do_update(
        index_elements=[table.public_id],
        set_={
            "email": new.email,
            "full_name": new.full_name,
            "active": new.active,
            "version": new.version,
            "role": case((new.version >= table.role_version, new.role), else_=table.role),
            "role_version": func.greatest(table.role_version, new.version),
            "updated_at": func.now(),
        },
        where=table.version < new.version,
    )
    session.execute(statement, rows)


def apply_role_change(
    session: Session, table: type[AccountReplica], account_id: uuid.UUID, role: str, version: int
) -> None:
    """``account.role_changed``: take the role unless a newer one is already known."""
    new = insert(table).excluded
    _upsert(
        session,
        table,
        {"public_id": account_id, "role": role, "role_version": version},
        {"role": new.role, "role_version": new.role_version},
        where=table.role_version < new.role_version,
    )


def apply_deleted(
    session: Session,
    table: type[AccountReplica],
    account_id: uuid.UUID,
    version: int,
    *,
    deactivate: bool = False,
) -> None:
    """``account.deleted``: the account is gone for good; older states are ignored.

    ``deactivate`` also clears ``active`` of a known account (a new row is inactive anyway).
    """
    new = insert(table).excluded
    changes: dict[str, Any] = {
        "deleted": True,
        "version": func.greatest(table.version, new.version),
    }
    if deactivate:
        changes["active"] = False
    _upsert(session, table, {"public_id": account_id, "deleted": True, "version": version}, changes)


def _upsert(
    session: Session,
    table: type[AccountReplica],
    values: dict[str, Any],
    changes: dict[str, Any],
    where: ColumnElement[bool] | None = None,
) -> None:
    """Insert the account, or apply ``changes`` to it if it exists (and ``where`` holds)."""
    statement = insert(table).values(**values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[table.public_id],
            set_=changes | {"updated_at": func.now()},
            where=where,
        )
    )
