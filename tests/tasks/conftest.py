"""One migrated tasks database for the package, emptied before every test; one auth
provider and one tasks app served over HTTP for the tests that need them."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from deploy.embedded import free_port
from platform_kit.db import make_session_factory
from platform_kit.settings import Settings
from tasks import consumers, service
from tasks.models import Task
from tasks.service import TasksService
from tasks.settings import TasksSettings
from tests.auth.support import People, RunningProvider
from tests.helpers import add_replica_account, database_fixtures, settings_on
from tests.helpers import stored_events as stored_events  # for the test modules
from tests.tasks.support import running_provider_for_board, running_tasks_app

TABLES = ("accounts", "assignee_slots", "tasks", "task_history", "open_task_counts", "outbox",
          "inbox")


tasks_database_url, tasks_engine, engine, sessions = database_fixtures(
    "tasks", f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY"
)


@pytest.fixture
def tasks_settings(postgres_server, tasks_database_url) -> TasksSettings:
    platform = Settings(
        database_url=postgres_server.url, service_database_urls={"tasks": tasks_database_url}
    )
    return TasksSettings(platform)


def commands(sessions: sessionmaker[Session], settings: TasksSettings,
             rng: random.Random | None = None) -> TasksService:
    """The commands over the test database: the real clock, and ``rng``'s draws (the
    system's when none is given)."""
    return TasksService.from_settings(sessions, settings, clock=lambda: datetime.now(UTC),
                                      random=rng or random.SystemRandom())


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
    return add_replica_account(consumers, sessions, uuid.uuid4(), role, f"Popug {role}", active)


def delete_account(sessions: sessionmaker[Session], account_id: uuid.UUID) -> None:
    with sessions() as session, session.begin():
        consumers.apply_account_deleted(session, account_id, version=2)


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


def last_outbox_row(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT coalesce(max(id), 0) FROM outbox")).scalar_one()


def count_rows(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def assignee_slots(engine: Engine) -> dict[int, uuid.UUID]:
    with engine.connect() as connection:
        return dict(connection.execute(text("SELECT slot, account_id FROM assignee_slots")).all())


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
    platform = settings_on(postgres_server, kafka_broker, tasks=tasks_database_url)
    with running_tasks_app(auth_provider, platform, board_port) as url:
        yield url
