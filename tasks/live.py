"""Live updates of the board, across every process of the tasks service.

A change (a new task, a completion, a reshuffle) sends a PostgreSQL ``NOTIFY`` on
``CHANNEL`` in the same transaction, so it is announced exactly when it commits and never
when it rolls back. Every web process keeps one ``LISTEN`` connection (:class:`LiveFeed`,
started by its first subscriber) and hands each notification to all of its subscribers:
the board's Server-Sent Events streams.

A subscriber that falls behind by ``QUEUE_SIZE`` messages loses the oldest ones; after a
lost connection the feed sends ``RESYNC``. Either way a page only needs to reload its list,
which is all the board does with any message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

CHANNEL = "tasks_changed"
RESYNC = {"kind": "resync"}
QUEUE_SIZE = 100

log = logging.getLogger(__name__)


def announce(session: Session, kind: str, **fields: Any) -> None:
    """Tell every board about a change, when (and if) ``session``'s transaction commits."""
    payload = json.dumps({"kind": kind, **fields}, default=str)
    session.execute(select(func.pg_notify(CHANNEL, payload)))


def conninfo_of(engine: Engine) -> str:
    """What psycopg needs to connect to ``engine``'s database."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class LiveFeed:
    """One ``LISTEN`` connection of this process, fanned out to its subscribers."""

    def __init__(self, conninfo: str, retry_seconds: float = 1.0):
        self.conninfo = conninfo
        self.retry_seconds = retry_seconds
        self._queues: set[asyncio.Queue[dict[str, Any]]] = set()
        self._task: asyncio.Task[None] | None = None
        self._listening: asyncio.Event | None = None

    @contextlib.asynccontextmanager
    async def subscribe(self, ready_within: float = 10.0
                        ) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        """A queue of every change announced from now on, while the block runs; it opens
        once the feed listens (or after ``ready_within`` seconds, still trying)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        try:
            listening = self._start()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(listening.wait(), ready_within)
            yield queue
        finally:
            self._queues.discard(queue)

    def _start(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._listening = asyncio.Event()
            self._task = loop.create_task(self._listen(self._listening), name="tasks-live-feed")
        assert self._listening is not None
        return self._listening

    async def _listen(self, listening: asyncio.Event) -> None:
        connected_before = False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self.conninfo, autocommit=True) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    listening.set()
                    if connected_before:
                        self._publish(RESYNC)
                    connected_before = True
                    async for notification in connection.notifies():
                        self._publish(json.loads(notification.payload))
            except psycopg.Error as error:
                listening.clear()
                log.warning("live updates: listening failed, retrying: %s", error)
                await asyncio.sleep(self.retry_seconds)

    def _publish(self, message: dict[str, Any]) -> None:
        for queue in list(self._queues):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(message)
