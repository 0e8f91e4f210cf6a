"""Live updates for the dashboards: PostgreSQL ``NOTIFY`` on a channel, streamed to browsers.

A service announces a change with ``NOTIFY`` (:func:`announce`, or a trigger) in the
transaction that makes it, so it is heard exactly when it commits and never when it rolls
back. Every web process keeps one ``LISTEN`` connection per channel (:class:`LiveFeed`,
started by its first subscriber) and hands each notification to all of its subscribers,
typically Server-Sent Events streams (:func:`event_stream`).

A subscriber that falls behind by ``QUEUE_SIZE`` messages loses the oldest ones; after a
lost connection the feed sends ``RESYNC``. Either way a page only needs to fetch itself
again, which is all the dashboards do with any message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

RESYNC = {"kind": "resync"}
QUEUE_SIZE = 100
# A stream ends after this long and the browser opens a new one (``retry``), so a server
# that stops waits no longer than this for its streams.
STREAM_SECONDS = 55.0
KEEP_ALIVE_SECONDS = 15.0
RETRY_MILLISECONDS = 1000

Message = dict[str, Any]

log = logging.getLogger(__name__)


def announce(session: Session, channel: str, message: Message) -> None:
    """Send ``message`` on ``channel`` when (and if) ``session``'s transaction commits."""
    session.execute(select(func.pg_notify(channel, payload_of(message))))


def payload_of(message: Message) -> str:
    """``message`` as :func:`announce` sends it, for a statement calling ``pg_notify``
    itself."""
    return json.dumps(message, default=str)


def conninfo_of(engine: Engine) -> str:
    """What psycopg needs to connect to ``engine``'s database."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class LiveFeed:
    """One ``LISTEN`` connection of this process on ``channel``, fanned out to its
    subscribers."""

    def __init__(self, conninfo: str, channel: str, retry_seconds: float = 1.0):
        self.conninfo = conninfo
        self.channel = channel
        self.retry_seconds = retry_seconds
        self._queues: set[asyncio.Queue[Message]] = set()
        self._task: asyncio.Task[None] | None = None
        self._listening: asyncio.Event | None = None

    @contextlib.asynccontextmanager
    async def subscribe(self, ready_within: float = 10.0) -> AsyncIterator[asyncio.Queue[Message]]:
        """A queue of every message announced from now on, while the block runs; it opens
        once the feed listens (or after ``ready_within`` seconds, still trying)."""
        queue: asyncio.Queue[Message] = asyncio.Queue(QUEUE_SIZE)
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
            self._task = loop.create_task(self._listen(self._listening),
                                          name=f"live-feed-{self.channel}")
        assert self._listening is not None
        return self._listening

    async def _listen(self, listening: asyncio.Event) -> None:
        connected_before = False
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self.conninfo, autocommit=True) as connection:
                    await connection.execute(sql.SQL("LISTEN {}").format(
                        sql.Identifier(self.channel)))
                    listening.set()
                    if connected_before:
                        self._publish(RESYNC)
                    connected_before = True
                    async for notification in connection.notifies():
                        self._publish(json.loads(notification.payload))
            except psycopg.Error as error:
                listening.clear()
                log.warning("live updates: listening on %s failed, retrying: %s",
                            self.channel, error)
                await asyncio.sleep(self.retry_seconds)

    def _publish(self, message: Message) -> None:
        for queue in list(self._queues):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(message)


def _everything(message: Message) -> bool:
    return True


async def event_stream(feed: LiveFeed, concerns: Callable[[Message], bool] = _everything
                       ) -> AsyncIterator[str]:
    """Server-Sent Events: ``ready`` once listening, then ``change`` for every message
    that ``concerns`` the page (and every ``RESYNC``), comments to keep the line open."""
    loop = asyncio.get_running_loop()
    async with feed.subscribe() as changes:
        yield f"retry: {RETRY_MILLISECONDS}\nevent: ready\ndata: {{}}\n\n"
        ends = loop.time() + STREAM_SECONDS
        while (left := ends - loop.time()) > 0:
            try:
                change = await asyncio.wait_for(changes.get(), min(left, KEEP_ALIVE_SECONDS))
            except TimeoutError:
                yield ": still here\n\n"
                continue
            if change == RESYNC or concerns(change):
                yield f"event: change\ndata: {json.dumps(change)}\n\n"
