"""The engines' pools hand out working connections after the server dropped them."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import Engine, bindparam, literal_column, select, text
from sqlalchemy.exc import OperationalError

from platform_kit.db import (
    DriverStatement,
    driver_transaction,
    drop_database,
    ensure_database,
    make_engine,
)
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


@pytest.fixture
def engine_with_table(database_url):
    engine = make_engine(database_url, ping_idle_after=HOUR)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE notes (body text NOT NULL)"))
    yield engine
    engine.dispose()


def notes(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT body FROM notes ORDER BY body")).scalars())


NOTE = DriverStatement(text("INSERT INTO notes (body) VALUES (:body)"))


def test_a_driver_transaction_commits_when_its_block_ends(engine_with_table):
    with driver_transaction(engine_with_table) as cursor:
        cursor.execute(NOTE.sql, NOTE.params(body="a"))
        cursor.execute(NOTE.sql, NOTE.params(body="b"))

    assert notes(engine_with_table) == ["a", "b"]


def test_a_driver_transaction_stores_nothing_when_its_block_fails(engine_with_table):
    with pytest.raises(ValueError), driver_transaction(engine_with_table) as cursor:
        cursor.execute(NOTE.sql, NOTE.params(body="a"))
        raise ValueError("the use case changed its mind")

    with pytest.raises(psycopg.errors.NotNullViolation), \
            driver_transaction(engine_with_table) as cursor:
        cursor.execute(NOTE.sql, NOTE.params(body="b"))
        cursor.execute(NOTE.sql, NOTE.params(body=None))

    assert notes(engine_with_table) == []


def test_a_driver_transaction_on_a_dropped_connection_fails_once_and_leaves_the_pool(
        engine_with_table, database_url):
    [backend] = pooled_backends(engine_with_table, 1)
    drop_backends(database_url, [backend])

    with pytest.raises(psycopg.OperationalError), \
            driver_transaction(engine_with_table) as cursor:
        cursor.execute(NOTE.sql, NOTE.params(body="lost"))
    with driver_transaction(engine_with_table) as cursor:
        cursor.execute(NOTE.sql, NOTE.params(body="kept"))

    assert notes(engine_with_table) == ["kept"]
    assert backend not in pooled_backends(engine_with_table, 1)


def test_a_driver_statement_carries_its_own_constants_and_spells_out_in_lists(
        engine_with_table):
    statement = DriverStatement(select(literal_column("1")).where(
        bindparam("role").in_(["worker", "accountant"]), bindparam("version") > 0))

    with driver_transaction(engine_with_table) as cursor:
        answers = [cursor.execute(statement.sql, statement.params(**values)).fetchall()
                   for values in ({"role": "worker", "version": 2},
                                  {"role": "accountant", "version": 1},
                                  {"role": "admin", "version": 2},
                                  {"role": "worker", "version": 0})]

    assert answers == [[(1,)], [(1,)], [], []]
