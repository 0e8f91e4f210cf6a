"""The ledger under load, next to raw baselines measured in the same run.

    python -m bench.ledger [--events 20000] [--accounts 100000] [--rounds 1]

1. ``task.assigned`` events/s booked by the accounting consumer: the events wait in
   Kafka (as after a reshuffle, for tasks priced at their creation); the clock runs while
   the real consumer runtime reads them, validates them, records them in its inbox, books
   a fee per event (balances, transactions, both entries) and writes a
   ``transaction.applied`` per event to the outbox. Baseline: psycopg ``executemany`` of
   one row per event into a plain table, in transactions of the same size.
2. Closing a day for ``--accounts`` accounts (three in four with a positive balance, the
   others in debt): ``service.close_day``, with payouts, ledger entries, events and mails.
   Baseline: the same arithmetic as raw set-based SQL on a plain balances table (insert
   the payouts, zero the positive balances).
"""

from __future__ import annotations

import argparse
import random
import statistics
import uuid
from datetime import UTC, date, datetime

import psycopg
from confluent_kafka import Producer
from sqlalchemy import text

from accounting import service
from accounting.app import consumer_runtime
from accounting.ledger import Books, TaskCharge, ensure_priced
from accounting.settings import AccountingSettings
from bench.common import Result, Stopwatch, format_table, kafka_broker, postgres_server
from event_schemas import Event, default_registry
from messaging.db import make_engine, make_session_factory
from messaging.kafka import ensure_topics, producer_config
from messaging.migrations import upgrade
from messaging.settings import Settings

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


def raw_executemany_rate(dsn: str, events: list[Event]) -> float:
    rows = [(e.id, e.data["task_id"], e.data["assignee_id"], -1500, DAY) for e in events]
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "CREATE TABLE raw_fees (event_id uuid, task_id uuid, account_id uuid,"
            " amount bigint, day date)"
        )
        conn.commit()
        with Stopwatch() as watch:
            for start in range(0, len(rows), BATCH):
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO raw_fees VALUES (%s, %s, %s, %s, %s)",
                        rows[start : start + BATCH],
                    )
                conn.commit()
    return len(rows) / watch.seconds


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
        ensure_priced(session, books, task_ids, books.clock())


def ledger_rate(url: str, settings: Settings, events: list[Event]) -> float:
    upgrade("accounting", url)
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


def _seed_day(sessions, books: Books, accounts: int) -> list[tuple[uuid.UUID, int]]:
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
            service.apply_task_completed(session, books, rewards[start : start + 5000])
    for start in range(0, len(fees), 5000):
        with sessions() as session, session.begin():
            service.apply_task_assigned(session, books, fees[start : start + 5000])
    with sessions() as session:
        rows = session.execute(text("SELECT account_id, balance FROM balances")).all()
    return [(row.account_id, row.balance) for row in rows]


def _raw_close(dsn: str, balances: list[tuple[uuid.UUID, int]]) -> float:
    with psycopg.connect(dsn) as conn:
        conn.execute("DROP TABLE IF EXISTS raw_balances, raw_payouts")
        conn.execute("CREATE TABLE raw_balances (account_id uuid PRIMARY KEY, balance bigint)")
        conn.execute(
            "CREATE TABLE raw_payouts (account_id uuid, day date, amount bigint,"
            " UNIQUE (account_id, day))"
        )
        with conn.cursor().copy("COPY raw_balances FROM STDIN") as copy:
            for row in balances:
                copy.write_row(row)
        conn.commit()
        conn.execute("ANALYZE raw_balances")
        conn.commit()
        with Stopwatch() as watch:
            conn.execute(
                "INSERT INTO raw_payouts SELECT account_id, %s, balance FROM raw_balances"
                " WHERE balance > 0",
                (DAY,),
            )
            conn.execute("UPDATE raw_balances SET balance = 0 WHERE balance > 0")
            conn.commit()
    return watch.seconds


def close_day_times(settings: Settings, accounts: int, rounds: int) -> list[tuple]:
    """(raw baseline, close_day) seconds, each round on freshly seeded accounts."""
    times = []
    for number in range(rounds):
        url = settings.database_for(f"close{number}")
        upgrade("accounting", url)
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        books = _books(settings.with_(service_database_urls={"accounting": url}), number)
        balances = _seed_day(sessions, books, accounts)
        with psycopg.connect(_dsn(url), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        raw = _raw_close(_dsn(url), balances)
        with Stopwatch() as watch:
            [closed] = service.close_day(sessions, books, DAY)
        print(
            f"close day round {number + 1}: raw {raw:.3f} s, close_day {watch.seconds:.3f} s"
            f" ({closed.accounts_paid:,} payouts)",
            flush=True,
        )
        times.append((raw, watch.seconds))
        engine.dispose()
    return times


def run(events: int = 20_000, accounts: int = 100_000, rounds: int = 1) -> list[Result]:
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
        upgrade("accounting", url)
        raw_rate = raw_executemany_rate(_dsn(url), batch)
        rate = ledger_rate(url, settings, batch)
        times = close_day_times(settings, accounts, rounds)
    raw_close = statistics.median(raw for raw, _ in times)
    real_close = statistics.median(real for _, real in times)
    return [
        Result(
            "ledger",
            "task.assigned -> Kafka -> ledger+inbox+outbox",
            rate,
            "events/s",
            "psycopg executemany (rows/s)",
            raw_rate,
        ),
        Result(
            "ledger",
            f"close a day, {accounts:,} accounts (ms)",
            1000 * real_close,
            "ms",
            "raw set-based SQL (ms)",
            1000 * raw_close,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000, help="task.assigned events")
    parser.add_argument("--accounts", type=int, default=100_000, help="accounts to pay out")
    parser.add_argument("--rounds", type=int, default=1, help="close-day rounds (median)")
    args = parser.parse_args()
    print(format_table(run(args.events, args.accounts, args.rounds)))


if __name__ == "__main__":
    main()
