"""One migrated accounting database for the package, emptied before every test, and the
ledger invariants checked after every test that used it."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from confluent_kafka import Producer
from sqlalchemy import Engine, text

from accounting import verify
from accounting.closing import RENDERERS
from accounting.ledger_sql import Books, TaskCharge
from accounting.queries import AccountingQueries
from accounting.service import LedgerCommands
from accounting.settings import AccountingSettings
from event_schemas import Event, default_registry
from messaging.kafka import producer_config
from platform_kit.settings import Settings
from tests import helpers
from tests.helpers import StoredEvent, add_replica_account, database_fixtures

DAY = date(2026, 11, 22)

TABLES = (
    "accounts",
    "tasks",
    "task_prices",
    "entries",
    "transactions",
    "balances",
    "day_totals",
    "negative_balance_counts",
    "billing_days",
    "payout_emails",
    "payouts",
    "outbox",
    "inbox",
    "ledger_verifications",
    "correction_requests",
)


# The ledger refuses TRUNCATE; replication mode skips that trigger (tests only).
accounting_database_url, accounting_engine, engine, sessions = database_fixtures(
    "accounting",
    "SET LOCAL session_replication_role = replica",
    f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY",
    "DROP TABLE IF EXISTS scheduled_jobs",
)


class Clock:
    """A settable clock for ``Books``: transactions are dated by it."""

    def __init__(self, now: datetime | None = None):
        self.now = now

    def __call__(self) -> datetime:
        return self.now or datetime.now(UTC)

    def set(self, moment: datetime) -> None:
        self.now = moment

    def advance(self, **delta: float) -> None:
        self.now = self() + timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def accounting_settings_for(
    platform: Settings, database_url: str, smtp_url: str | None = None
) -> AccountingSettings:
    changes: dict = {"service_database_urls": {"accounting": database_url}}
    if smtp_url:
        changes["smtp_url"] = smtp_url
    return AccountingSettings(
        platform.with_(**changes), mail_retry_seconds=0.2, mail_retry_max_seconds=0.4
    )


@pytest.fixture
def accounting_settings(postgres_server, accounting_database_url) -> AccountingSettings:
    """Settings for tests without the broker (topics are only names here)."""
    return accounting_settings_for(
        Settings(database_url=postgres_server.url, topic_prefix="acct."), accounting_database_url
    )


@pytest.fixture
def books(accounting_settings, clock) -> Books:
    return Books.create(accounting_settings, rng=random.Random(7), clock=clock)


# -- ledger invariants ------------------------------------------------------------------

INVARIANT_VIOLATIONS = {
    **verify.INVARIANTS,
    "entries do not sum to zero": "SELECT 1 FROM entries HAVING coalesce(sum(amount), 0) <> 0",
    "a mail without its payout": """
        SELECT m.payout_id FROM payout_emails m LEFT JOIN payouts p ON p.id = m.payout_id
        WHERE p.id IS NULL
    """,
}


def ledger_violations(engine: Engine) -> dict[str, list]:
    with engine.connect() as connection:
        found = {
            name: connection.execute(text(query)).all()
            for name, query in INVARIANT_VIOLATIONS.items()
        }
        found["the hash chain"] = [b for b in [verify.first_chain_break(connection)] if b]
    return {name: rows for name, rows in found.items() if rows}


@pytest.fixture(autouse=True)
def ledger_invariants(request) -> Iterator[None]:
    engine = request.getfixturevalue("engine") if "engine" in request.fixturenames else None
    yield
    if engine is not None:
        assert ledger_violations(engine) == {}


# -- builders ---------------------------------------------------------------------------


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def queries_of(sessions, books: Books) -> AccountingQueries:
    """The reads, telling the current billing day by the clock and time zone of ``books``."""
    return AccountingQueries(sessions, books.clock, books.settings.timezone)


def charge(task_id: uuid.UUID, account_id: uuid.UUID) -> TaskCharge:
    return TaskCharge(source_event_id=new_id(), task_id=task_id, account_id=account_id)


def assign(sessions, books: Books, task_id: uuid.UUID, account_id: uuid.UUID):
    with sessions() as session, session.begin():
        return LedgerCommands(books).apply_task_assigned(session, [charge(task_id, account_id)])


def complete(sessions, books: Books, task_id: uuid.UUID, account_id: uuid.UUID):
    with sessions() as session, session.begin():
        return LedgerCommands(books).apply_task_completed(session, [charge(task_id, account_id)])


def add_account(sessions, account_id: uuid.UUID | None = None, role: str = "worker"):
    account_id = account_id or new_id()
    return add_replica_account(LedgerCommands, sessions, account_id, role,
                               f"Popug {account_id.hex[:4]}")


def price_of(engine: Engine, task_id: uuid.UUID) -> tuple[int, int]:
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT fee, reward FROM task_prices WHERE task_id = :t"), {"t": task_id}
        ).one()


def balance_of(engine: Engine, account_id: uuid.UUID) -> int:
    with engine.connect() as connection:
        found = connection.scalar(
            text("SELECT balance FROM balances WHERE account_id = :a"), {"a": account_id}
        )
    return found or 0


def count(engine: Engine, table: str, where: str = "true") -> int:
    with engine.connect() as connection:
        return connection.scalar(text(f"SELECT count(*) FROM {table} WHERE {where}"))


def stored_events(engine: Engine, event_type: str | None = None) -> list[StoredEvent]:
    return helpers.stored_events(engine, event_type=event_type, renderers=RENDERERS)


def moment(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


# -- events from the other services -----------------------------------------------------


def build(event_type: str, data: dict, version: int = 1, source: str = "tasks") -> Event:
    return default_registry().build(event_type, data, source=source, version=version)


def _iso(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def task_state_event(
    task_id: uuid.UUID,
    assignee_id: uuid.UUID,
    title: str = "Feed the parrots",
    jira_id: str | None = None,
    *,
    event_type: str = "task.created",
    version: int = 1,
    dataversion: int = 2,
    description: str | None = None,
    status: str = "open",
) -> Event:
    data = {
        "task_id": str(task_id),
        "title": title,
        "jira_id": jira_id,
        "description": description,
        "status": status,
        "assignee_id": str(assignee_id),
        "created_at": _iso(),
        "completed_at": _iso() if status == "done" else None,
        "version": version,
    }
    if dataversion == 1:
        data.pop("jira_id")
        if jira_id:
            data["title"] = f"[{jira_id}] {title}"
    return build(event_type, data, dataversion)


def task_assigned_event(task_id, assignee_id, previous=None) -> Event:
    return build(
        "task.assigned",
        {
            "task_id": str(task_id),
            "assignee_id": str(assignee_id),
            "previous_assignee_id": str(previous) if previous else None,
            "reason": "reshuffle" if previous else "created",
            "assigned_at": _iso(),
        },
    )


def task_completed_event(task_id, assignee_id) -> Event:
    return build(
        "task.completed",
        {"task_id": str(task_id), "assignee_id": str(assignee_id), "completed_at": _iso()},
    )


def account_event(account_id, role="worker", version=1, event_type="account.created") -> Event:
    data = {
        "account_id": str(account_id),
        "email": f"popug-{str(account_id)[:8]}@popug.inc",
        "full_name": f"Popug {str(account_id)[:4]}",
        "role": role,
        "active": True,
        "version": version,
    }
    return build(event_type, data, source="auth")


def publish(settings: Settings, events: list[Event]) -> None:
    """Write events to their topics as their producers' relays would."""
    registry = default_registry()
    producer = Producer(producer_config(settings))
    for event in events:
        producer.produce(
            settings.topic(registry.topic_of(event.type)),
            key=registry.key_of(event).encode(),
            value=event.to_json(),
        )
    assert producer.flush(30) == 0


def poll_until(runtime, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runtime.poll_once(0.3)
        if condition():
            return
    raise AssertionError("condition not reached in time")


# Fixtures that serve the accounting app behind a running auth provider (HTTP tests).
from tests.accounting.served import (  # noqa: E402, F401
    accounting_port,
    accounting_url,
    auth_provider,
    live_books,
    people,
)
