"""One migrated tasks database for the package, emptied before every test; one auth
provider and one tasks app served over HTTP for the tests that need them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from deploy.embedded import free_port
from event_schemas import Event, default_registry
from messaging.db import make_session_factory
from messaging.settings import Settings
from messaging.tables import outbox
from tasks import service
from tasks.models import Task
from tasks.settings import TasksSettings
from tests.auth.support import People, RunningProvider
from tests.helpers import engine_of, migrated_database
from tests.tasks.support import running_provider_for_board, running_tasks_app

TABLES = ("accounts", "tasks", "outbox", "inbox")


@pytest.fixture(scope="package")
def tasks_database_url(postgres_server) -> Iterator[str]:
    with migrated_database(postgres_server.url, "tasks") as url:
        yield url


@pytest.fixture(scope="package")
def tasks_engine(tasks_database_url) -> Iterator[Engine]:
    with engine_of(tasks_database_url) as engine:
        yield engine


@pytest.fixture
def engine(tasks_engine: Engine) -> Engine:
    with tasks_engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY"))
    return tasks_engine


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def tasks_settings(postgres_server, tasks_database_url) -> TasksSettings:
    platform = Settings(
        database_url=postgres_server.url, service_database_urls={"tasks": tasks_database_url}
    )
    return TasksSettings(platform)


@dataclass(frozen=True)
class Team:
    """Accounts of every kind: only ``workers`` and ``accountant`` may get tasks."""

    workers: list[uuid.UUID]
    accountant: uuid.UUID
    manager: uuid.UUID
    admin: uuid.UUID
    inactive_worker: uuid.UUID
    deleted_worker: uuid.UUID

    @property
    def eligible(self) -> list[uuid.UUID]:
        return [*self.workers, self.accountant]

    @property
    def never_assigned(self) -> list[uuid.UUID]:
        return [self.manager, self.admin, self.inactive_worker, self.deleted_worker]


def add_account(
    sessions: sessionmaker[Session], role: str = "worker", active: bool = True
) -> uuid.UUID:
    account_id = uuid.uuid4()
    with sessions() as session, session.begin():
        service.apply_account_state(
            session,
            account_id,
            email=f"{role}-{account_id.hex[:8]}@popug.inc",
            full_name=f"Popug {role}",
            role=role,
            active=active,
            version=1,
        )
    return account_id


def delete_account(sessions: sessionmaker[Session], account_id: uuid.UUID) -> None:
    with sessions() as session, session.begin():
        service.apply_account_deleted(session, account_id, version=2)


def make_team(sessions: sessionmaker[Session], workers: int = 2) -> Team:
    deleted_worker = add_account(sessions)
    delete_account(sessions, deleted_worker)
    return Team(
        workers=[add_account(sessions) for _ in range(workers)],
        accountant=add_account(sessions, "accountant"),
        manager=add_account(sessions, "manager"),
        admin=add_account(sessions, "admin"),
        inactive_worker=add_account(sessions, active=False),
        deleted_worker=deleted_worker,
    )


@pytest.fixture
def team(sessions) -> Team:
    return make_team(sessions)


def actor(account_id: uuid.UUID, role: str = "worker") -> service.Actor:
    return service.Actor(id=account_id, role=role)


@dataclass(frozen=True)
class StoredEvent:
    """An outbox row, its payload parsed (and so validated) by the schema registry."""

    topic: str
    key: str
    headers: dict
    event: Event


def stored_events(engine: Engine, after_row: int = 0) -> list[StoredEvent]:
    query = select(outbox).where(outbox.c.id > after_row).order_by(outbox.c.id)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    registry = default_registry()
    return [
        StoredEvent(row.topic, row.key, row.headers, registry.parse(bytes(row.payload)))
        for row in rows
    ]


def last_outbox_row(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT coalesce(max(id), 0) FROM outbox")).scalar_one()


def count_rows(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def all_tasks(engine: Engine) -> list[Task]:
    with make_session_factory(engine)() as session:
        return list(session.scalars(select(Task).order_by(Task.id)))


def insert_open_tasks(engine: Engine, count: int, assignee_id: uuid.UUID) -> None:
    """Many open tasks at once, straight into the table (setup for reshuffle tests)."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO tasks (public_id, title, assignee_id, created_at)"
                " SELECT gen_random_uuid(), 'Task ' || n, :assignee, now()"
                " FROM generate_series(1, :count) AS n"
            ),
            {"assignee": assignee_id, "count": count},
        )


# -- the service over HTTP, beside a real auth provider ---------------------------------


@pytest.fixture(scope="package")
def board_port() -> int:
    return free_port()


@pytest.fixture(scope="package")
def auth_provider(postgres_server, kafka_broker, board_port) -> Iterator[RunningProvider]:
    with running_provider_for_board(postgres_server.url, kafka_broker.bootstrap,
                                    board_port) as provider:
        yield provider


@pytest.fixture(scope="package")
def people(auth_provider) -> People:
    return People.create(auth_provider)


@pytest.fixture(scope="package")
def tasks_url(auth_provider, postgres_server, kafka_broker, tasks_database_url,
              board_port) -> Iterator[str]:
    platform = Settings(database_url=postgres_server.url, kafka_bootstrap=kafka_broker.bootstrap,
                        service_database_urls={"tasks": tasks_database_url})
    with running_tasks_app(auth_provider, platform, board_port) as url:
        yield url
