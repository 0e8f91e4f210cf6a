"""Helpers shared by the test suites: migrated databases and their fixtures, outbox
reading, settings on the test servers, and ASGI apps over real HTTP."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType

import pytest
import uvicorn
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from deploy.embedded import free_port
from event_schemas import Event, default_registry
from messaging.outbox import Renderer, events_of
from messaging.tables import outbox
from platform_kit.db import drop_database, make_engine, make_session_factory
from platform_kit.migrations import upgrade
from platform_kit.settings import Settings, with_database


@contextmanager
def migrated_database(server_url: str, service: str) -> Iterator[str]:
    """A fresh database of ``service`` on the server, migrated to head; dropped afterwards."""
    url = with_database(server_url, f"t{uuid.uuid4().hex[:10]}_{service}")
    upgrade(f"{service}.migrations", url)
    try:
        yield url
    finally:
        drop_database(url)


@contextmanager
def engine_of(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def database_fixtures(service: str, *emptying: str) -> tuple:
    """The fixtures of a package that tests against one migrated ``service`` database.

    ``<service>_database_url`` and ``<service>_engine`` last the package; ``engine`` (that
    engine, once the ``emptying`` statements ran in one transaction) and ``sessions`` are
    for one test. Assign all four in the package's conftest, where pytest finds them.
    """

    @pytest.fixture(scope="package", name=f"{service}_database_url")
    def database_url(postgres_server) -> Iterator[str]:
        with migrated_database(postgres_server.url, service) as url:
            yield url

    @pytest.fixture(scope="package", name=f"{service}_engine")
    def package_engine(request) -> Iterator[Engine]:
        with engine_of(request.getfixturevalue(f"{service}_database_url")) as engine:
            yield engine

    @pytest.fixture(name="engine")
    def emptied_engine(request) -> Engine:
        engine = request.getfixturevalue(f"{service}_engine")
        with engine.begin() as connection:
            for statement in emptying:
                connection.execute(text(statement))
        return engine

    @pytest.fixture
    def sessions(engine: Engine) -> sessionmaker[Session]:
        return make_session_factory(engine)

    return database_url, package_engine, emptied_engine, sessions


@dataclass(frozen=True)
class StoredEvent:
    """An outbox row, its payload parsed (and so validated) by the schema registry."""

    topic: str
    key: str
    headers: dict
    event: Event


def stored_events(
    engine: Engine,
    after_row: int = 0,
    event_type: str | None = None,
    renderers: Mapping[str, Renderer] | None = None,
) -> list[StoredEvent]:
    """The outbox's events in order (a deferred row's as ``renderers`` render them): those
    after row ``after_row``, of ``event_type`` if given."""
    query = select(outbox).where(outbox.c.id > after_row).order_by(outbox.c.id)
    registry = default_registry()
    with engine.connect() as connection:
        events = [
            StoredEvent(row.topic, event.key, row.headers, registry.parse(event.payload))
            for row in connection.execute(query).all()
            for event in events_of(connection, row, renderers or {})
        ]
    return [e for e in events if event_type is None or e.event.type == event_type]


def add_replica_account(service: ModuleType, sessions: sessionmaker[Session],
                        account_id: uuid.UUID, role: str, full_name: str,
                        active: bool = True) -> uuid.UUID:
    """An account in ``service``'s replica of auth's accounts, as its first event leaves it."""
    with sessions() as session, session.begin():
        service.apply_account_state(
            session,
            account_id,
            email=f"{role}-{account_id.hex[:8]}@popug.inc",
            full_name=full_name,
            role=role,
            active=active,
            version=1,
        )
    return account_id


def settings_on(postgres_server, kafka_broker, **database_urls: str) -> Settings:
    """Platform settings on the run's servers, with these services' databases."""
    return Settings(database_url=postgres_server.url, kafka_bootstrap=kafka_broker.bootstrap,
                    service_database_urls=database_urls)


@contextmanager
def serve_app(app, port: int | None = None, host: str = "127.0.0.1",
              startup_timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a background thread; yields its base URL.

    Pass ``port`` when the app must know its own URL before it starts (pick one with
    ``deploy.embedded.free_port``).
    """
    port = port or free_port(host)
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                            lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        _wait_until_started(server, thread, startup_timeout)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread,
                        timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the app server stopped during start-up")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the app server did not start within {timeout}s")
        time.sleep(0.02)


def read_server_sent_events(http, url: str) -> tuple[queue.Queue, threading.Thread]:
    """Read ``url``'s Server-Sent Events in a thread: the content type first, then
    ``(event, data)`` pairs, until the first ``change``."""
    events: queue.Queue[tuple[str, str]] = queue.Queue()

    def read() -> None:
        kind = ""
        with http.stream("GET", url) as stream:
            events.put(("content-type", stream.headers["content-type"]))
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.put((kind, line.removeprefix("data: ")))
                    if kind == "change":
                        return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return events, reader
