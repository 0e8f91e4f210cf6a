"""How long a reshuffle takes, next to the raw cost of the same amount of database work.

    python -m bench.reshuffle [--tasks 100000] [--workers 1000] [--rounds 3]

Starts its own embedded PostgreSQL in a temporary directory, creates the tasks database,
seeds the workers and the open tasks, then alternates, ``--rounds`` times:

- the raw baseline: one set-based ``UPDATE`` giving every open task a random worker, plus
  a ``COPY`` of as many outbox rows (prepared beforehand, each with a real ``task.updated``
  payload), in one transaction;
- a real reshuffle (``TasksService.reshuffle``): the same ``UPDATE`` returning what the
  events need, and a ``task.updated`` and a ``task.assigned`` event per task in the outbox.

Between rounds the outbox is emptied and the tasks vacuumed, so each round starts alike.
It prints the median of each and their ratio.
"""

from __future__ import annotations

import json
import random
import struct
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import psycopg

from bench.common import Result, Stopwatch, command_line, postgres_server
from deploy.embedded import EmbeddedPostgres
from platform_kit.db import make_engine, make_session_factory
from platform_kit.migrations import upgrade
from platform_kit.settings import Settings
from tasks import service
from tasks.events import TaskEvents, TaskState
from tasks.settings import TasksSettings

COPY_OUTBOX = (
    "COPY outbox (event_id, topic, key, event_type, dataversion, payload, headers)"
    " FROM STDIN (FORMAT BINARY)"
)


def run(tasks: int = 100_000, workers: int = 1_000, rounds: int = 3) -> list[Result]:
    with postgres_server() as server:
        rounds_measured = _measure(server, tasks, workers, rounds)
    for number, (raw, real) in enumerate(rounds_measured, 1):
        print(f"round {number}: raw baseline {raw:.3f} s, reshuffle {real:.3f} s")
    return [
        Result.median_of(
            "reshuffle",
            f"reshuffle {tasks:,} open tasks, {workers:,} workers (ms)",
            "ms",
            f"UPDATE {tasks:,} rows + COPY {tasks:,} rows (ms)",
            rounds_measured,
            scale=1000,
        )
    ]


def _measure(
    server: EmbeddedPostgres, tasks: int, workers: int, rounds: int
) -> list[tuple[float, float]]:
    """(raw baseline, reshuffle) seconds for each round."""
    settings = TasksSettings(Settings(database_url=server.url))
    url = settings.platform.database_for("tasks")
    upgrade("tasks.migrations", url)
    connection = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    admin = service.Actor(id=uuid.uuid4(), role="admin")
    try:
        worker_ids = _seed(connection, tasks, workers)
        copy_data = _outbox_copy_data(tasks)
        return [
            (
                _timed(connection, lambda: _raw_baseline(connection, worker_ids, copy_data)),
                _timed(connection, lambda: _reshuffle_all(sessions, settings, admin, tasks)),
            )
            for _ in range(rounds)
        ]
    finally:
        engine.dispose()
        connection.close()


def _reshuffle_all(sessions, settings: TasksSettings, admin: service.Actor, tasks: int) -> None:
    commands = service.TasksService.from_settings(
        sessions, settings, clock=partial(datetime.now, UTC), random=random.SystemRandom())
    reassigned = commands.reshuffle(admin)
    if reassigned != tasks:
        raise RuntimeError(f"reshuffle reassigned {reassigned} tasks, not {tasks}")


def _seed(connection: psycopg.Connection, tasks: int, workers: int) -> list[uuid.UUID]:
    worker_ids = [uuid.uuid4() for _ in range(workers)]
    created_at = datetime.now(UTC)
    with connection.transaction():
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
    _vacuum(connection, "accounts, tasks")
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


def _raw_baseline(
    connection: psycopg.Connection, workers: list[uuid.UUID], outbox_copy_data: bytes
) -> None:
    with connection.transaction():
        connection.execute(
            "UPDATE tasks SET assignee_id = (%s::uuid[])[1 + floor(random() * %s)::int],"
            " version = version + 1 WHERE status = 'open'",
            (workers, len(workers)),
        )
        with connection.cursor().copy(COPY_OUTBOX) as copy:
            copy.write(outbox_copy_data)


def _timed(connection: psycopg.Connection, action: Callable[[], object]) -> float:
    """Seconds ``action`` took; then the outbox is emptied and the tasks vacuumed."""
    with Stopwatch() as stopwatch:
        action()
    connection.execute("TRUNCATE outbox")
    connection.commit()
    _vacuum(connection, "tasks")
    return stopwatch.seconds


def _vacuum(connection: psycopg.Connection, table: str) -> None:
    connection.autocommit = True
    try:
        connection.execute(f"VACUUM ANALYZE {table}")
    finally:
        connection.autocommit = False


def main(argv: list[str] | None = None) -> None:
    command_line(run, argv, tasks="open tasks to reshuffle", workers="eligible assignees",
                 rounds="measurements of each kind")


if __name__ == "__main__":
    main()
