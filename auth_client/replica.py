"""The client side of auth's account events: keeping a replica of auth's accounts.

A service keeps the replica in a table of its own, a model with the columns of
:class:`AccountReplica`, and applies the events in its own use cases by calling the
functions here with that model.

Events of one account may arrive in any order (two topics, redeliveries, replays); each
is applied only when it is newer than what the replica holds, so the replica ends in the
same state whatever the order.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    DateTime,
    Integer,
    Select,
    Text,
    TextClause,
    and_,
    bindparam,
    func,
    or_,
    select,
    text,
)
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

    if TYPE_CHECKING:
        __tablename__: str

    public_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    email: Mapped[str | None] = mapped_column(Text)
    full_name: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(server_default=text("false"))
    deleted: Mapped[bool] = mapped_column(server_default=text("false"))
    version: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    role_version: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    @classmethod
    def may_not_act(cls) -> ColumnElement[bool]:
        """``refusal_of`` the row is not None, as a SQL condition."""
        return or_(cls.deleted, and_(~cls.active, cls.version > 0))


class AccountMayNotAct(Exception):
    """The replica knows the acting account deleted or deactivated; the message says which."""


def refusal_of(deleted: bool, active: bool, version: int) -> str | None:
    """Why an account whose replica row reads so may no longer act; None when it may."""
    if deleted:
        return "the account is deleted"
    # A row created ahead of its account.created (version 0) is not known inactive yet.
    if not active and version > 0:
        return "the account is deactivated"
    return None


def refusal_of_standing(standing: Sequence[Any] | None) -> str | None:
    """``refusal_of`` a row of ``standing_query`` (None, no row: an account the replica has
    not heard of yet, which may act)."""
    return None if standing is None else refusal_of(*standing)


_standing_queries: dict[type[AccountReplica], Select[bool, bool, int]] = {}


def standing_query(model: type[AccountReplica]) -> Select[bool, bool, int]:
    """What the replica knows of ``:account_id``'s standing: its row's (deleted, active,
    version), for ``refusal_of``."""
    query = _standing_queries.get(model)
    if query is None:
        query = _standing_queries.setdefault(model, select(
            model.deleted, model.active, model.version
        ).where(model.public_id == bindparam("account_id")))
    return query


def account_refusal(connection: Connection, model: type[AccountReplica],
                    account_id: uuid.UUID) -> str | None:
    """Why the replica says ``account_id`` may no longer act (one primary-key read); None
    when it may, and for an account it has not heard of yet."""
    return refusal_of_standing(
        connection.execute(standing_query(model), {"account_id": account_id}).first())


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
    """``account.created``/``account.updated`` of many accounts in one statement: each
    state is taken unless it is stale.

    The role is taken too, unless an ``account.role_changed`` newer than this state has
    already been applied. A deleted account stays deleted whatever comes later. Of several
    states of one account only the newest can win, so only it is sent.
    """
    newest: dict[str, AccountState] = {}
    for account_id, state in states:
        key = str(account_id).lower()
        if key not in newest or newest[key]["version"] < state["version"]:
            newest[key] = state
    if not newest:
        return
    rows = orjson.dumps([{"id": key, **state} for key, state in newest.items()])
    session.execute(_upsert_states_sql(table.__tablename__), {"rows": rows.decode()})


@functools.cache
def _upsert_states_sql(table: str) -> TextClause:
    # The rows travel as one JSON array: serialising it is a single C call, where an array
    # literal per column quotes every value in Python.
    return text(f"""
        INSERT INTO {table} AS t (public_id, email, full_name, role, active, version, role_version)
        SELECT id, email, full_name, role, active, version, version
        FROM json_to_recordset(CAST(:rows AS json))
             AS s (id uuid, email text, full_name text, role text, active boolean, version int)
        ORDER BY id
        ON CONFLICT (public_id) DO UPDATE SET
            email = excluded.email,
            full_name = excluded.full_name,
            active = excluded.active,
            version = excluded.version,
            role = CASE WHEN excluded.version >= t.role_version THEN excluded.role
                        ELSE t.role END,
            role_version = greatest(t.role_version, excluded.version),
            updated_at = now()
        WHERE t.version < excluded.version
    """)


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
