"""Account events into the tasks and accounting replicas, as their consumers apply them.

    python -m bench.replicas [--events 50000]

``--events`` ``account.created`` events of distinct accounts (one in ten a manager, the
rest workers) are produced beforehand onto ``accounts-stream``. Then, each with a fresh
migrated database and a fresh consumer group, the tasks consumer and the accounting
consumer (their own handlers, as ``ates serve <svc> --role workers --only consumer`` runs
them) apply them; the clock runs from the moment the consumer holds its partitions (the
time to join the group is printed apart) until every event is in the inbox.

Beside each rate it prints the rate as a ratio to the baseline of the same run, the CPU
time the consumer spent per event (of its own thread, and of the whole process: the
client library's threads too; unlike a rate, CPU time hardly changes when other work
shares the cores), the sizes of the batches the runtime handed over (a batch statement
pays off only when the batches are large) and the machine's load average.

The raw baseline is the same runtime on the same topic with a handler doing one plain
``INSERT`` per event into a table without indexes: what the consumer runtime itself
allows (validation, inbox, commits), measured in the same run.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Producer
from sqlalchemy import Column, MetaData, Table, Text, func, select

from bench.common import Result, command_line, kafka_broker, postgres_server
from event_schemas import default_registry
from messaging.consumer import ConsumerRuntime, HandlerRegistry
from messaging.kafka import ensure_topics, produce_waiting, producer_config
from messaging.tables import create_messaging_tables, inbox
from platform_kit.db import ensure_database, make_engine
from platform_kit.migrations import upgrade
from platform_kit.settings import Settings, with_database

TIMEOUT_SECONDS = 600.0
_plain = MetaData()
_plain_effects = Table("plain_effects", _plain, Column("account_id", Text))


def run(events: int = 50_000) -> list[Result]:
    with postgres_server() as pg, kafka_broker() as broker:
        settings = Settings(database_url=pg.url, kafka_bootstrap=broker.bootstrap,
                            topic_prefix="replicas.")
        ensure_topics(settings)
        _produce(settings, events)
        baseline = _rate(settings, _plain_database(pg.url), _plain_handlers(), events)
        print(f"plain INSERT per event: {baseline.rate:,.0f} events/s, "
              f"{baseline.cpu_text()}", flush=True)
        results = []
        for service in ("tasks", "accounting"):
            url = with_database(pg.url, f"bench_replicas_{service}")
            ensure_database(url)
            upgrade(f"{service}.migrations", url)
            measured = _rate(settings, url, _service_handlers(service), events)
            print(f"{service} replica: {measured.rate:,.0f} events/s "
                  f"({measured.rate / baseline.rate:.2f} of the baseline), "
                  f"{measured.cpu_text()} (baseline {baseline.cpu_text()})", flush=True)
            results.append(Result("replicas", f"{events:,} account.created into {service}",
                                  measured.rate, "events/s",
                                  "plain INSERT per event (events/s)", baseline.rate))
            results.append(Result("replicas", f"consumer thread CPU per event, {service}",
                                  measured.thread_us, "us", "plain INSERT per event (us)",
                                  baseline.thread_us))
    return results


def _produce(settings: Settings, count: int) -> None:
    registry = default_registry()
    producer = Producer(producer_config(settings))
    topic = settings.topic("accounts-stream")
    for n in range(count):
        account_id = str(uuid.uuid4())
        event = registry.build("account.created", {
            "account_id": account_id, "email": f"popug{n}@popug.inc",
            "full_name": f"Popug {n}", "role": "manager" if n % 10 == 0 else "worker",
            "active": True, "version": 1,
        }, source="auth")
        produce_waiting(producer, topic, key=account_id.encode(), value=event.to_json())
    producer.flush(120)


def _plain_database(server_url: str) -> str:
    url = with_database(server_url, "bench_replicas_plain")
    ensure_database(url)
    engine = make_engine(url)
    create_messaging_tables(engine)
    _plain.create_all(engine)
    engine.dispose()
    return url


def _plain_handlers() -> HandlerRegistry:
    handlers = HandlerRegistry()

    @handlers.on("account.created")
    def apply(session, event) -> None:
        session.execute(_plain_effects.insert().values(account_id=event.data["account_id"]))

    return handlers


def _service_handlers(service: str) -> HandlerRegistry:
    if service == "tasks":
        from tasks.consumers import handlers
        return handlers
    from accounting.consumers import make_handlers
    from accounting.ledger_sql import Books
    from accounting.settings import AccountingSettings
    return make_handlers(Books.create(AccountingSettings(Settings())))


@dataclass(frozen=True)
class Measured:
    """Events per second, and microseconds of CPU per event: of the consumer's thread (in
    ``poll_once``: fetching, parsing, validating, the database round trips) and of the
    whole process while it ran."""

    rate: float
    thread_us: float
    process_us: float

    def cpu_text(self) -> str:
        return f"CPU {self.thread_us:.1f} us/event (process {self.process_us:.1f})"


def _rate(settings: Settings, url: str, handlers: HandlerRegistry, events: int) -> Measured:
    engine = make_engine(url)
    group = f"replicas-{uuid.uuid4().hex[:8]}"
    runtime = ConsumerRuntime(group, engine, settings, handlers, ["accounts-stream"])
    batches, thread_cpu = _count_batches(runtime)
    stop = threading.Event()
    worker = threading.Thread(target=runtime.run, args=(stop,), daemon=True)
    joining = time.perf_counter()
    runtime.wait_for_assignment(60)
    started = time.perf_counter()
    process_cpu = time.process_time()
    worker.start()
    try:
        deadline = started + TIMEOUT_SECONDS
        while _applied(engine) < events:
            if time.perf_counter() > deadline or not worker.is_alive():
                raise RuntimeError(f"only {_applied(engine):,} of {events:,} events applied")
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        process_cpu = time.process_time() - process_cpu
    finally:
        stop.set()
        worker.join(60)
        engine.dispose()
    print(f"  joined the group in {started - joining:.1f} s; "
          f"{len(batches):,} batches, median {statistics.median(batches or [0]):,.0f} "
          f"events (largest {max(batches or [0]):,}); load average "
          f"{', '.join(f'{load:.1f}' for load in os.getloadavg())}", flush=True)
    return Measured(events / seconds, 1e6 * sum(thread_cpu) / events,
                    1e6 * process_cpu / events)


def _count_batches(runtime: ConsumerRuntime) -> tuple[list[int], list[float]]:
    """The number of events of each batch ``runtime`` handles from now on, and the CPU
    seconds its thread spent in each poll (waiting for messages costs none)."""
    sizes: list[int] = []
    cpu: list[float] = []
    poll_once = runtime.poll_once

    def counted(*args, **kwargs) -> int:
        before = time.thread_time()
        handled = poll_once(*args, **kwargs)
        cpu.append(time.thread_time() - before)
        if handled:
            sizes.append(handled)
        return handled

    runtime.poll_once = counted
    return sizes, cpu


def _applied(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(inbox)).scalar_one()


if __name__ == "__main__":
    command_line(run)
