"""One migrated analytics database for the package, emptied before every test; builders
of the events analytics consumes, and ways to deliver them (real topics or directly)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any

import pytest
from confluent_kafka import Producer
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from analytics.models import PROJECTION_TABLES
from analytics.queries import projection_rows
from analytics.stream import Projector, ReceivedMessage, run_projector
from event_schemas import Event, default_registry
from messaging.kafka import ensure_topics, producer_config
from messaging.tables import inbox
from platform_kit.settings import Settings
from tests.helpers import database_fixtures, settings_on

DAY = date(2026, 11, 22)


TABLES = [m.__tablename__ for m in PROJECTION_TABLES] + ["inbox"]
analytics_database_url, analytics_engine, engine, sessions = database_fixtures(
    "analytics", f"TRUNCATE {', '.join(TABLES)}"
)


def settings_for(postgres_url: str, bootstrap: str, database_url: str, **changes) -> Settings:
    """Own topics (created here) and the package's analytics database."""
    tag = uuid.uuid4().hex[:10]
    settings = Settings(
        database_url=postgres_url,
        kafka_bootstrap=bootstrap,
        topic_prefix=f"tn{tag}.",
        database_prefix=f"tn{tag}_",
        kafka_session_timeout_ms=2000,
        service_database_urls={"analytics": database_url},
    ).with_(**changes)
    ensure_topics(settings)
    return settings


# -- building events ----------------------------------------------------------------------


def new_id() -> str:
    return str(uuid.uuid4())


def at(day: date, hour: int = 12, minute: int = 0, second: int = 0) -> str:
    moment = datetime.combine(day, clock_time(hour, minute, second), tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build(event_type: str, data: dict[str, Any], version: int | None = None) -> Event:
    source = "accounting" if event_type in ACCOUNTING_TYPES else "tasks"
    return default_registry().build(event_type, data, source=source, version=version)


ACCOUNTING_TYPES = {"transaction.applied", "task.priced", "payment.made", "billing_cycle.closed"}


def transaction(account_id: str, kind: str, amount: int, balance_after: int, day: date = DAY,
                applied_at: str | None = None, task_id: str | None = None,
                transaction_id: str | None = None) -> Event:
    signed = -abs(amount) if kind in ("fee", "payout") else abs(amount)
    return build("transaction.applied", {
        "transaction_id": transaction_id or new_id(), "account_id": account_id, "type": kind,
        "amount": signed,
        "balance_after": balance_after,
        "task_id": None if kind == "payout" else (task_id or new_id()),
        "day": day.isoformat(), "applied_at": applied_at or at(day),
    })


def priced(task_id: str, reward: int, fee: int = 1500, day: date = DAY) -> Event:
    return build("task.priced", {"task_id": task_id, "fee": fee, "reward": reward,
                                 "priced_at": at(day, 8)})


def completed(task_id: str, completed_at: str, assignee_id: str | None = None) -> Event:
    return build("task.completed", {"task_id": task_id, "assignee_id": assignee_id or new_id(),
                                    "completed_at": completed_at})


def task_state(task_id: str, title: str, jira_id: str | None = None, version: int = 1,
               event_type: str = "task.created", dataversion: int = 2) -> Event:
    data: dict[str, Any] = {
        "task_id": task_id, "title": title, "description": None, "status": "open",
        "assignee_id": new_id(), "created_at": at(DAY, 9), "completed_at": None,
        "version": version,
    }
    if dataversion == 1:
        data["title"] = f"[{jira_id}] {title}" if jira_id else title
    else:
        data["jira_id"] = jira_id
    return build(event_type, data, version=dataversion)


def day_closed(day: date, accounts_paid: int = 0, total_paid: int = 0,
               closed_at: str | None = None) -> Event:
    """By default closed by the scheduler just after the day ended."""
    return build("billing_cycle.closed", {
        "day": day.isoformat(), "closed_at": closed_at or at(day + timedelta(days=1), 0, 0, 4),
        "accounts_paid": accounts_paid, "total_paid": total_paid,
    })


def topic_of(event: Event) -> str:
    return default_registry().topic_of(event.type)


def key_of(event: Event) -> str:
    return default_registry().key_of(event)


# -- delivering events -------------------------------------------------------------------


class Topics:
    """Produces events to the real topics, keyed as their producers key them."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.producer = Producer(producer_config(settings))

    def publish(self, *events: Event) -> None:
        for event in events:
            self.send(topic_of(event), key_of(event), event.to_json())
        self.flush()

    def send(self, logical_topic: str, key: str, value: bytes) -> None:
        self.producer.produce(self.settings.topic(logical_topic), key=key.encode(), value=value)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0


def handled_ids(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return {str(i) for i in connection.scalars(select(inbox.c.event_id))}


def poll_until(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def wait_handled(engine: Engine, events: list[Event], timeout: float = 30.0) -> None:
    wanted = {e.id for e in events}
    poll_until(lambda: wanted <= handled_ids(engine), timeout,
               f"{len(wanted - handled_ids(engine))} event(s) to be projected")


def inbox_size(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(inbox))


def snapshot(sessions: sessionmaker[Session]) -> dict[str, list]:
    with sessions() as session:
        return {name: [tuple(row) for row in rows]
                for name, rows in projection_rows(session).items()}


def received(events: list[Event], topic: str = "direct") -> list[ReceivedMessage]:
    return [ReceivedMessage(topic, 0, offset, key_of(e).encode(), e.to_json())
            for offset, e in enumerate(events)]


class DirectDelivery:
    """Applies events with the projector itself, without the broker (fast query tests)."""

    def __init__(self, projector: Projector):
        self.projector = projector

    def __call__(self, *events: Event) -> None:
        self.projector.project(received(list(events)), threading.Event())


@pytest.fixture
def direct_settings(postgres_server, kafka_broker, analytics_database_url) -> Settings:
    """Settings of the package's database; the topics are not used."""
    return settings_on(postgres_server, kafka_broker, analytics=analytics_database_url)


@pytest.fixture
def project(engine, direct_settings) -> DirectDelivery:
    return DirectDelivery(Projector.create(engine, direct_settings))


class RunningProjector:
    """The ``stream`` worker in a thread, as ``deploy.serve`` runs it."""

    def __init__(self, engine: Engine, settings: Settings):
        self.stop = threading.Event()
        self.failures: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(engine, settings),
                                       name="analytics-stream", daemon=True)

    def _run(self, engine: Engine, settings: Settings) -> None:
        try:
            run_projector(engine, settings, self.stop)
        except BaseException as exc:  # reported by the test that stops it
            self.failures.append(exc)

    def __enter__(self) -> RunningProjector:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the projector did not stop"
        assert not self.failures, self.failures
