"""How long a reshuffle takes, next to the raw cost of the same amount of database work.

    python -m bench.reshuffle [--tasks 100000] [--workers 1000] [--rounds 3]

Starts its own embedded PostgreSQL in a temporary directory, creates the tasks database,
seeds the workers and the open tasks, then alternates, ``--rounds`` times:

- the raw baseline: one set-based ``UPDATE`` giving every open task a random worker, plus
  a ``COPY`` of as many outbox rows (prepared beforehand, each with a real ``task.updated``
  payload), in one transaction;
- a real reshuffle (``tasks.service.reshuffle``): the same ``UPDATE`` returning what the
  events need, and a ``task.updated`` and a ``task.assigned`` event per task in the outbox.

Between rounds the outbox is emptied and the tasks vacuumed, so each round starts alike.
It prints the median of each and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg

from bench.common import Result, Stopwatch, format_table, postgres_server
from deploy.embedded import EmbeddedPostgres
from messaging.db import make_engine, make_session_factory
from messaging.migrations import upgrade
from messaging.settings import Settings
from tasks import service
from tasks.events import TaskEvents, TaskState
from tasks.settings import TasksSettings

COPY_OUTBOX = (
    "COPY outbox (event_id, topic, key, event_type, dataversion, payload, headers)"
    " FROM STDIN (FORMAT BINARY)"
)


def run(tasks: int = 100_000, workers: int = 1_000, rounds: int = 3) -> list[Result]:
    with postgres_server() as server:
        baseline, reshuffle = _measure(server, tasks, workers, rounds)
    name = f"reshuffle {tasks:,} open tasks, {workers:,} workers (s)"
    return [
        Result(
            "reshuffle",
            name,
            statistics.median(reshuffle),
            "s",
            f"UPDATE {tasks:,} rows + COPY {tasks:,} rows (s)",
            statistics.median(baseline),
        )
    ]


def _measure(
    server: EmbeddedPostgres, tasks: int, workers: int, rounds: int
) -> tuple[list[float], list[float]]:
    settings = TasksSettings(Settings(database_url=server.url))
    url = settings.platform.database_for("tasks")
    upgrade("tasks", url)
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    worker_ids = _seed(dsn, tasks, workers)
    outbox_copy_data = _outbox_copy_data(tasks)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    admin = service.Actor(id=uuid.uuid4(), role="admin")
    baseline, reshuffle = [], []
    try:
        for _ in range(rounds):
            baseline.append(_timed(lambda: _raw_baseline(dsn, worker_ids, outbox_copy_data), dsn))
            reshuffled = _timed(lambda: service.reshuffle(sessions, settings, admin), dsn)
            reshuffle.append(reshuffled)
    finally:
        engine.dispose()
    return baseline, reshuffle


def _seed(dsn: str, tasks: int, workers: int) -> list[uuid.UUID]:
    worker_ids = [uuid.uuid4() for _ in range(workers)]
    created_at = datetime.now(UTC)
    with psycopg.connect(dsn, autocommit=True) as connection:
        with connection.cursor().copy(
            "COPY accounts (public_id, email, full_name, role, active, version, role_version)"
            " FROM STDIN"
        ) as copy:
            for number, worker_id in enumerate(worker_ids):
                copy.write_row(
                    (
                        worker_id,
                        f"worker{number}@popug.inc",
                        f"Worker {number}",
                        "worker",
                        True,
                        1,
                        1,
                    )
                )
        with connection.cursor().copy(
            "COPY tasks (public_id, title, jira_id, description, assignee_id, created_at)"
            " FROM STDIN"
        ) as copy:
            for number in range(tasks):
                copy.write_row(
                    (
                        uuid.uuid4(),
                        f"Feed the parrots of aviary {number}",
                        f"UBERPOP-{number}" if number % 2 else None,
                        "Millet, water and a kind word." if number % 3 else None,
                        worker_ids[number % workers],
                        created_at,
                    )
                )
        connection.execute("VACUUM ANALYZE")
    return worker_ids


def _outbox_copy_data(rows: int) -> bytes:
    """``rows`` outbox rows in COPY's binary format, each with a real ``task.updated``."""
    at = datetime.now(UTC)
    task = TaskState(
        public_id=uuid.uuid4(),
        title="Feed the parrots of aviary 12345",
        jira_id="UBERPOP-12345",
        description="Millet, water and a kind word.",
        status="open",
        assignee_id=uuid.uuid4(),
        created_at=at,
        completed_at=None,
        version=2,
    )
    payload = TaskEvents(2).state("task.updated", task, at).to_json()
    headers = b"\x01" + json.dumps({"content-type": "application/cloudevents+json"}).encode()
    fields_after_id = b"".join(
        _binary_field(value)
        for value in (
            b"tasks-stream",
            str(task.public_id).encode(),
            b"task.updated",
            struct.pack("!i", 2),
            payload,
            headers,
        )
    )
    row_start = struct.pack("!hi", 7, 16)
    body = b"".join(row_start + uuid.uuid4().bytes + fields_after_id for _ in range(rows))
    return b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0) + body + struct.pack("!h", -1)


def _binary_field(value: bytes) -> bytes:
    return struct.pack("!i", len(value)) + value


def _raw_baseline(dsn: str, workers: list[uuid.UUID], outbox_copy_data: bytes) -> None:
    with psycopg.connect(dsn) as connection, connection.transaction():
        connection.execute(
            "UPDATE tasks SET assignee_id = (%s::uuid[])[1 + floor(random() * %s)::int],"
            " version = version + 1 WHERE status = 'open'",
            (workers, len(workers)),
        )
        with connection.cursor().copy(COPY_OUTBOX) as copy:
            copy.write(outbox_copy_data)


def _timed(action: Callable[[], object], dsn: str) -> float:
    """Seconds ``action`` took; then the outbox is emptied and the tasks vacuumed."""
    with Stopwatch() as stopwatch:
        action()
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("TRUNCATE outbox")
        connection.execute("VACUUM ANALYZE tasks")
    return stopwatch.seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reshuffle",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tasks", type=int, default=100_000, help="open tasks to reshuffle")
    parser.add_argument("--workers", type=int, default=1_000, help="eligible assignees")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each kind")
    options = parser.parse_args(argv)
    print(format_table(run(options.tasks, options.workers, options.rounds)))


if __name__ == "__main__":
    main()
