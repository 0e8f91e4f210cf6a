"""Engines, sessions and databases: small helpers shared by every service."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import psycopg
from sqlalchemy import ClauseElement, Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler

# A pooled connection unused for longer than this is pinged before it is handed out.
PING_IDLE_AFTER_SECONDS = 1.0


def make_engine(url: str, *, ping_idle_after: float = PING_IDLE_AFTER_SECONDS,
                **options: Any) -> Engine:
    """An engine whose pool hands out connections that work, without a round trip each.

    A connection that sat in the pool for more than ``ping_idle_after`` seconds is pinged
    first and replaced if the server dropped it (a restart while the service was quiet).
    One in steady use is not: if the server went away meanwhile, the statement that meets
    the dead connection fails (a request answers 503), and every connection pooled
    before it is replaced at its next checkout, so only the requests already under way
    fail.
    """
    # As many kept connections as a web app's 40 request threads plus its workers can
    # hold at once: beyond ``pool_size``, every connection given back is closed, and the
    # next request pays for a new PostgreSQL backend (measured: bench/platform.py).
    options.setdefault("pool_size", 20)
    options.setdefault("max_overflow", 30)
    engine = create_engine(url, **options)
    if not options.get("pool_pre_ping"):
        _ping_idle_connections(engine, ping_idle_after)
    return engine


_CHECKED_IN_AT = "ates_checked_in_at"


def _ping_idle_connections(engine: Engine, idle_seconds: float) -> None:
    """Pessimistic disconnect handling for connections idle longer than ``idle_seconds``;
    a record's ``info`` is emptied when its connection is replaced, so a new connection is
    never pinged."""

    @event.listens_for(engine, "checkin")
    def remember_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry,
                     _proxy: PoolProxiedConnection) -> None:
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        if checked_in_at is None or time.monotonic() - checked_in_at <= idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # the pool replaces this connection and every one pooled before it
            raise InvalidatePoolError(f"idle connection dropped: {error}") from error


class DriverStatement:
    """A SQLAlchemy statement compiled once, to run on the driver's own cursor (see
    :func:`driver_transaction`): its SQL in psycopg's ``%(name)s`` style and the values it
    carries itself (constants of the construct, an ``IN`` list spelled out), to which
    :meth:`params` adds the rest.
    """

    _dialect = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]

    def __init__(self, statement: ClauseElement):
        compiled = cast(SQLCompiler, statement.compile(dialect=self._dialect))
        unset = {name: None for name, bind in compiled.binds.items()
                 if bind.value is None and bind.callable is None and not bind.expanding}
        expanded = compiled.construct_expanded_state(unset)
        self.sql = expanded.statement
        self.constants = dict(expanded.parameters)

    def params(self, **values: Any) -> dict[str, Any]:
        return {**self.constants, **values}

    def run(self, cursor: psycopg.Cursor[Any], **values: Any) -> psycopg.Cursor[Any]:
        """Execute on ``cursor`` with ``values``; the cursor, to fetch from."""
        return cursor.execute(self.sql, self.params(**values))


def driver_of(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection under ``session``'s transaction (begun if it was not)."""
    driver = session.connection().connection.driver_connection
    if not isinstance(driver, psycopg.Connection):
        raise TypeError("this session's connection is not psycopg's")
    return driver


@contextmanager
def driver_transaction(engine: Engine) -> Iterator[psycopg.Cursor[Any]]:
    """A transaction on a pooled connection's own psycopg cursor: committed when the block
    ends, rolled back on any error; a connection the server dropped leaves the pool.

    Only for the hottest statements: SQLAlchemy's session and execution around a statement
    cost as much CPU as the driver's own work (measured on task creation, bench/tasks_api.py).
    """
    pooled = engine.raw_connection()
    try:
        driver = cast("psycopg.Connection[Any]", pooled.driver_connection)
        with driver.cursor() as cursor:
            yield cursor
        driver.commit()
    except psycopg.OperationalError:
        pooled.invalidate()
        raise
    except BaseException:
        pooled.rollback()
        raise
    finally:
        pooled.close()


def array_literal(values: Iterable[object]) -> str:
    """A PostgreSQL array literal of ``values`` (their text; ``None`` is NULL), to bind as
    one text parameter and ``CAST`` to the array type.

    psycopg adapts a list element by element in Python, about 7x slower than this for the
    hundreds of ids a batch statement binds.
    """
    return "{" + ",".join("NULL" if v is None else _quoted(str(v)) for v in values) + "}"


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def engine_of(sessions: sessionmaker[Session]) -> Engine:
    """The engine ``sessions`` open their sessions on (see ``make_session_factory``)."""
    engine = sessions.kw["bind"]
    if not isinstance(engine, Engine):
        raise TypeError("these sessions are not bound to one engine")
    return engine


def _server_engine(database_url: str) -> Engine:
    url = make_url(database_url).set(database="postgres")
    return create_engine(url, isolation_level="AUTOCOMMIT", poolclass=None)


def ensure_database(database_url: str) -> bool:
    """Create the database named in ``database_url`` if it is missing; True if created."""
    name = make_url(database_url).database
    engine = _server_engine(database_url)
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).scalar()
            if exists:
                return False
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            return True
    finally:
        engine.dispose()


def drop_database(database_url: str) -> None:
    name = make_url(database_url).database
    engine = _server_engine(database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()
