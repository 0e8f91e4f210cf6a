"""The engines' pools hand out working connections after the server dropped them."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from platform_kit.db import drop_database, ensure_database, make_engine
from platform_kit.settings import with_database

HOUR = 3600.0


@pytest.fixture
def database_url(postgres_server, test_id):
    url = with_database(postgres_server.url, f"t{test_id}_pool")
    ensure_database(url)
    yield url
    drop_database(url)


def backend_of(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def pooled_backends(engine: Engine, count: int) -> list[int]:
    """Check ``count`` connections out at once, give them back, and say whose they were."""
    connections = [engine.connect() for _ in range(count)]
    backends = [c.execute(text("SELECT pg_backend_pid()")).scalar_one() for c in connections]
    for connection in connections:
        connection.close()
    return backends


def drop_backends(database_url: str, backends: list[int]) -> None:
    """What a server restart does to the pooled connections: it ends their sessions."""
    killer = make_engine(database_url)
    try:
        with killer.connect() as connection:
            for backend in backends:
                connection.execute(text("SELECT pg_terminate_backend(:pid, 5000)"),
                                   {"pid": backend})
    finally:
        killer.dispose()


def test_an_idle_connection_the_server_dropped_is_replaced_before_use(database_url):
    engine = make_engine(database_url, ping_idle_after=0.0)  # every pooled one counts as idle
    try:
        dropped = pooled_backends(engine, 3)
        drop_backends(database_url, dropped)

        assert set(pooled_backends(engine, 3)).isdisjoint(dropped)
    finally:
        engine.dispose()


def test_a_connection_in_steady_use_is_not_pinged_and_one_failure_renews_the_whole_pool(
    database_url,
):
    engine = make_engine(database_url, ping_idle_after=HOUR)
    try:
        dropped = pooled_backends(engine, 3)
        drop_backends(database_url, dropped)

        with pytest.raises(OperationalError):  # the request under way meets the dead one
            backend_of(engine)
        assert set(pooled_backends(engine, 3)).isdisjoint(dropped)
    finally:
        engine.dispose()
