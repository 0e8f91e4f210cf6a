"""The ledger under load, next to raw baselines measured in the same run.

    python -m bench.ledger [--events 20000] [--accounts 100000] [--rounds 1]

1. ``task.assigned`` events/s booked by the accounting consumer: the events wait in
   Kafka (as after a reshuffle, for tasks priced at their creation); the clock runs while
   the real consumer runtime reads them, validates them, records them in its inbox, books
   a fee per event (balances, transactions, both entries) and writes a
   ``transaction.applied`` per event to the outbox. Baseline: psycopg ``executemany`` of
   one row per event into a plain table, in transactions of the same size.
2. Closing a day for ``--accounts`` accounts (three in four with a positive balance, the
   others in debt): ``AccountingService.close_day``, which writes per paid account a
   payout, its ledger transaction with both entries, two events and a mail. Two
   baselines, as raw set-based SQL on plain tables holding the same balances and entries:
   - the payouts from a balances table: insert them, zero the positive balances;
   - the double-entry close: sum each account's entries, insert a payout for each positive
     sum and the two entries that move it to the company.
3. Publishing the close's payout events: the close stores them as one deferred outbox row,
   which the relay renders and publishes (two events per payout, acks=all). Baseline:
   confluent-kafka producing the same messages, rendered beforehand.
"""

from __future__ import annotations

import random
import statistics
import uuid
from datetime import UTC, date, datetime

import psycopg
from confluent_kafka import Producer
from sqlalchemy import select

from accounting.app import consumer_runtime
from accounting.closing import RENDERERS
from accounting.domain import COMPANY_ACCOUNT_ID
from accounting.ledger_sql import Books, TaskCharge, ensure_priced
from accounting.service import AccountingService, LedgerCommands
from accounting.settings import AccountingSettings
from bench.common import Result, Stopwatch, command_line, kafka_broker, postgres_server
from event_schemas import Event, default_registry
from messaging.kafka import ensure_topics, produce_waiting, producer_config
from messaging.outbox import events_of
from messaging.relay import Relay
from messaging.tables import outbox
from platform_kit.db import make_engine, make_session_factory
from platform_kit.migrations import upgrade
from platform_kit.settings import Settings

BATCH = 500
DAY = date(2026, 11, 22)


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _books(settings: Settings, seed: int = 1) -> Books:
    return Books.create(
        AccountingSettings(settings),
        rng=random.Random(seed),
        clock=lambda: datetime(DAY.year, DAY.month, DAY.day, 12, tzinfo=UTC),
    )


# -- 1. task.assigned through Kafka -----------------------------------------------------


def assignment_events(count: int, tasks: int, accounts: int) -> list[Event]:
    registry = default_registry()
    task_ids = [str(uuid.uuid4()) for _ in range(tasks)]
    account_ids = [str(uuid.uuid4()) for _ in range(accounts)]
    rng = random.Random(3)
    return [
        registry.build(
            "task.assigned",
            {
                "task_id": task_ids[i % tasks],
                "assignee_id": rng.choice(account_ids),
                "previous_assignee_id": rng.choice(account_ids),
                "reason": "reshuffle",
                "assigned_at": "2026-11-22T12:00:00Z",
            },
            source="tasks",
        )
        for i in range(count)
    ]


def raw_executemany_rate(dsn: str, events: list[Event], rounds: int = 3) -> float:
    """Rows/s of the baseline, the median of ``rounds`` runs (each on a new table): one
    run lasts about half a second, short enough for a busy moment to halve it."""
    rows = [(e.id, e.data["task_id"], e.data["assignee_id"], -1500, DAY) for e in events]
    rates = []
    with psycopg.connect(dsn) as conn:
        for number in range(rounds):
            table = f"raw_fees_{number}"
            conn.execute(
                f"CREATE TABLE {table} (event_id uuid, task_id uuid, account_id uuid,"
                " amount bigint, day date)"
            )
            conn.commit()
            with Stopwatch() as watch:
                for start in range(0, len(rows), BATCH):
                    with conn.cursor() as cur:
                        cur.executemany(
                            f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s)",
                            rows[start : start + BATCH],
                        )
                    conn.commit()
            rates.append(len(rows) / watch.seconds)
    return statistics.median(rates)


def _produce(settings: Settings, events: list[Event]) -> None:
    registry = default_registry()
    producer = Producer(producer_config(settings))
    topic = settings.topic("tasks-lifecycle")
    for event in events:
        producer.produce(topic, key=registry.key_of(event).encode(), value=event.to_json())
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("not every event reached the broker")


def _price_tasks(sessions, books: Books, events: list[Event]) -> None:
    """Tasks are priced when they are created, long before a reshuffle."""
    with sessions() as session, session.begin():
        task_ids = [uuid.UUID(e.data["task_id"]) for e in events]
        ensure_priced(session, books, dict.fromkeys(task_ids), books.clock())


def ledger_rate(url: str, settings: Settings, events: list[Event]) -> float:
    upgrade("accounting.migrations", url)
    engine = make_engine(url)
    books = _books(settings.with_(service_database_urls={"accounting": url}))
    _price_tasks(make_session_factory(engine), books, events)
    _produce(settings, events)
    runtime = consumer_runtime(engine, books, batch_size=BATCH)
    runtime.wait_for_assignment()
    booked = 0
    with Stopwatch() as watch:
        while booked < len(events):
            booked += runtime.poll_once(1.0)
    runtime.close()
    engine.dispose()
    return len(events) / watch.seconds


# -- 2. closing a day -------------------------------------------------------------------


def _seed_day(sessions, books: Books, accounts: int) -> None:
    """Every account earns a reward; one in four also pays a fee (and ends in debt)."""
    account_ids = [uuid.uuid4() for _ in range(accounts)]
    rewards = [TaskCharge(uuid.uuid4(), uuid.uuid4(), a) for a in account_ids]
    fees = [
        TaskCharge(uuid.uuid4(), uuid.uuid4(), a)
        for i, a in enumerate(account_ids)
        for _ in range(3 if i % 4 == 0 else 0)
    ]
    for start in range(0, len(rewards), 5000):
        with sessions() as session, session.begin():
            LedgerCommands(books).apply_task_completed(session, rewards[start : start + 5000])
    for start in range(0, len(fees), 5000):
        with sessions() as session, session.begin():
            LedgerCommands(books).apply_task_assigned(session, fees[start : start + 5000])


_RAW_TABLES = (
    "CREATE TABLE raw_balances (account_id uuid PRIMARY KEY, balance bigint)",
    "CREATE TABLE raw_entries (transaction_id bigint, account_id uuid, amount bigint)",
    "CREATE TABLE raw_payouts (account_id uuid, day date, amount bigint,"
    " UNIQUE (account_id, day))",
    "CREATE TABLE raw_entry_payouts (LIKE raw_payouts INCLUDING ALL)",
    "INSERT INTO raw_balances SELECT account_id, balance FROM balances",
    "INSERT INTO raw_entries SELECT transaction_id, account_id, amount FROM entries",
    "ANALYZE raw_balances, raw_entries",
)
# Pay every positive balance of a balances table and zero it.
PAYOUTS_FROM_BALANCES = (
    "INSERT INTO raw_payouts SELECT account_id, %(day)s, balance FROM raw_balances"
    " WHERE balance > 0",
    "UPDATE raw_balances SET balance = 0 WHERE balance > 0",
)
# The double-entry close: each balance as the sum of its entries, a payout for each
# positive one, and the two entries that move it to the company.
DOUBLE_ENTRY_CLOSE = (
    "CREATE TEMPORARY TABLE due ON COMMIT DROP AS"
    " SELECT account_id, sum(amount) AS amount FROM raw_entries"
    " WHERE account_id <> %(company)s GROUP BY account_id HAVING sum(amount) > 0",
    "INSERT INTO raw_entry_payouts SELECT account_id, %(day)s, amount FROM due",
    "INSERT INTO raw_entries SELECT 0, leg.account_id, leg.amount FROM due"
    " CROSS JOIN LATERAL (VALUES (due.account_id, -due.amount), (%(company)s, due.amount))"
    " AS leg (account_id, amount)",
)


def _timed_sql(conn: psycopg.Connection, statements: tuple[str, ...]) -> float:
    params = {"day": DAY, "company": COMPANY_ACCOUNT_ID}
    conn.execute("CHECKPOINT")
    with Stopwatch() as watch:
        with conn.transaction():
            for statement in statements:
                conn.execute(statement, params)
    return watch.seconds


def _timed_close(sessions, books: Books, url: str) -> float:
    with psycopg.connect(_dsn(url), autocommit=True) as conn:
        conn.execute("UPDATE outbox SET sent_at = now()")  # the seeding's events
        conn.execute("CHECKPOINT")
    with Stopwatch() as watch:
        [closed] = AccountingService(sessions, books).close_day(DAY)
    print(f"  close_day paid {closed.accounts_paid:,} accounts", flush=True)
    return watch.seconds


def _rendered_events(engine) -> list:
    """(topic, key, payload) of every event the unsent outbox rows stand for."""
    with engine.connect() as conn:
        rows = conn.execute(select(outbox).where(outbox.c.sent_at.is_(None))).all()
        return [(row.topic, event.key, event.payload)
                for row in rows for event in events_of(conn, row, RENDERERS)]


def _timed_payout_events(engine, settings: Settings) -> dict[str, float]:
    """Seconds for the relay to publish the close's events, and for a bare producer to
    send the same messages (rendered before its clock starts)."""
    messages = _rendered_events(engine)
    producer = Producer(producer_config(settings))
    with Stopwatch() as raw:
        for topic, key, payload in messages:
            produce_waiting(producer, topic, key=key.encode(), value=payload)
        if producer.flush(60):
            raise RuntimeError("not every event reached the broker")
    relay = Relay(engine, settings, renderers=RENDERERS)
    published = 0
    with Stopwatch() as relayed:
        while count := relay.run_once():
            published += count
    relay.close()
    print(f"  relay published {published:,} events", flush=True)
    return {"publish": relayed.seconds, "produce": raw.seconds}


def close_day_times(settings: Settings, accounts: int, rounds: int) -> list[dict[str, float]]:
    """Seconds of each raw baseline and of close_day, each round on freshly seeded accounts."""
    times = []
    for number in range(rounds):
        url = settings.database_for(f"close{number}")
        upgrade("accounting.migrations", url)
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        books = _books(settings.with_(service_database_urls={"accounting": url}), number)
        _seed_day(sessions, books, accounts)
        with psycopg.connect(_dsn(url), autocommit=True) as conn:
            for statement in _RAW_TABLES:
                conn.execute(statement)
            conn.execute("VACUUM ANALYZE")
            measured = {
                "balances": _timed_sql(conn, PAYOUTS_FROM_BALANCES),
                "entries": _timed_sql(conn, DOUBLE_ENTRY_CLOSE),
            }
        measured["close"] = _timed_close(sessions, books, url)
        measured |= _timed_payout_events(engine, books.settings.platform)
        print(
            f"close day round {number + 1}: "
            + ", ".join(f"{name} {seconds:.3f} s" for name, seconds in measured.items()),
            flush=True,
        )
        times.append(measured)
        engine.dispose()
    return times


def run(events: int = 20_000, accounts: int = 100_000, rounds: int = 3) -> list[Result]:
    batch = assignment_events(events, tasks=max(1, events // 2), accounts=1000)
    with postgres_server() as pg, kafka_broker() as broker:
        settings = Settings(
            database_url=pg.url,
            kafka_bootstrap=broker.bootstrap,
            topic_prefix="bench.",
            database_prefix="bench_",
            kafka_session_timeout_ms=2000,
        )
        ensure_topics(settings)
        url = settings.database_for("accounting")
        upgrade("accounting.migrations", url)
        raw_rate = raw_executemany_rate(_dsn(url), batch)
        rate = ledger_rate(url, settings, batch)
        times = close_day_times(settings, accounts, rounds)
    name = f"close a day, {accounts:,} accounts (ms)"
    return [
        Result(
            "ledger",
            "task.assigned -> Kafka -> ledger+inbox+outbox",
            rate,
            "events/s",
            "psycopg executemany (rows/s)",
            raw_rate,
        ),
        *(
            Result.median_of("ledger", name, "ms", baseline_name,
                             [(t[baseline], t["close"]) for t in times], scale=1000)
            for baseline, baseline_name in (
                ("balances", "SQL: payouts from a balances table (ms)"),
                ("entries", "SQL: double-entry close from entries (ms)"),
            )
        ),
        Result.median_of(
            "ledger",
            "relay publishes a close's payout events (ms)",
            "ms",
            "confluent-kafka produce, same messages (ms)",
            [(t["produce"], t["publish"]) for t in times],
            scale=1000,
        ),
    ]


def main() -> None:
    command_line(run, events="task.assigned events", accounts="accounts to pay out",
                 rounds="close-day rounds (median)")


if __name__ == "__main__":
    main()
