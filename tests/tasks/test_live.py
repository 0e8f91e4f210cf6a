"""Live updates: changes announced by NOTIFY on commit, heard by every process's feed, and
streamed to signed-in browsers as Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import text

from tasks import domain, queries
from tasks.live import CHANNEL, RESYNC, LiveFeed, conninfo_of
from tasks.queries import TaskQueries
from tests.auth.support import Browsers
from tests.helpers import read_server_sent_events
from tests.tasks.conftest import actor, commands, insert_open_tasks
from tests.tasks.support import create_via_api, feed_replica

T = TypeVar("T")
WAIT = 10.0  # a deadline for what should come at once, never a measure of speed


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on an event loop of its own thread (the browser tests keep one
    running in the main thread)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout=60)


def hear(engine, *actions: Callable[[], object], feeds: int = 2,
         expected: int | None = None) -> list[list[dict]]:
    """What each of ``feeds`` separate feeds (as separate web processes have) hears while
    ``actions`` run one after the other; ``expected`` messages each (one per action)."""
    expected = len(actions) if expected is None else expected

    async def run() -> list[list[dict]]:
        live = [LiveFeed(conninfo_of(engine)) for _ in range(feeds)]
        async with AsyncExitStack() as stack:
            queues = [await stack.enter_async_context(feed.subscribe()) for feed in live]
            for action in actions:
                await asyncio.to_thread(action)
            heard = []
            for changes in queues:
                got = [await asyncio.wait_for(changes.get(), WAIT) for _ in range(expected)]
                await asyncio.sleep(0.2)
                assert changes.empty(), "more was announced than the changes made"
                heard.append(got)
            for feed in live:
                feed._task.cancel()
            return heard

    return run_async(run())


def test_every_feed_hears_creation_completion_and_reshuffle(sessions, engine, tasks_settings,
                                                            team):
    worker = actor(team.workers[0])
    created: list[queries.TaskView] = []

    def create() -> None:
        created.append(commands(sessions, tasks_settings).create_task(worker, "Feed the parrots"))

    def complete() -> None:
        task = TaskQueries(sessions).get_task(created[0].id)
        commands(sessions, tasks_settings).complete_task(actor(task.assignee_id), task.id)

    def reshuffle() -> None:
        commands(sessions, tasks_settings).create_task(worker, "Another")
        commands(sessions, tasks_settings).reshuffle(actor(team.manager, "manager"))

    first, second = hear(engine, create, complete, reshuffle, expected=4)

    task_id = str(created[0].id)
    assert first == second
    assert first[:2] == [{"kind": "created", "task": task_id},
                         {"kind": "completed", "task": task_id}]
    assert first[2]["kind"] == "created" and first[3] == {"kind": "reshuffled", "count": 1}


def test_a_change_that_fails_announces_nothing(sessions, engine, tasks_settings, team):
    worker = actor(team.workers[0])
    task = commands(sessions, tasks_settings).create_task(worker, "Feed the parrots")

    def fail_then_succeed() -> None:
        with pytest.raises(domain.NotAssignee):
            commands(sessions, tasks_settings).complete_task(actor(team.manager), task.id)
        with pytest.raises(domain.ValidationError):
            commands(sessions, tasks_settings).create_task(worker, "[no] brackets")
        commands(sessions, tasks_settings).complete_task(actor(task.assignee_id), task.id)

    [heard] = hear(engine, fail_then_succeed, feeds=1)

    assert heard == [{"kind": "completed", "task": str(task.id)}]


def test_a_reshuffle_of_many_tasks_is_one_message(sessions, engine, tasks_settings, team):
    insert_open_tasks(engine, 500, team.workers[0])

    admin = actor(team.admin, "admin")
    [heard] = hear(engine, lambda: commands(sessions, tasks_settings).reshuffle(admin), feeds=1)

    assert heard == [{"kind": "reshuffled", "count": 500}]


def test_a_feed_that_lost_its_connection_listens_again_and_says_so(engine):
    async def run() -> list[dict]:
        conninfo = conninfo_of(engine)
        conninfo += ("&" if "?" in conninfo else "?") + f"application_name={LOSING}"
        feed = LiveFeed(conninfo, retry_seconds=0.1)
        async with feed.subscribe() as changes:
            await asyncio.to_thread(_end_listening_sessions, engine)
            first = await asyncio.wait_for(changes.get(), WAIT)
            await asyncio.to_thread(_notify, engine, '{"kind": "created", "task": "t"}')
            second = await asyncio.wait_for(changes.get(), WAIT)
        feed._task.cancel()
        return [first, second]

    assert run_async(run()) == [RESYNC, {"kind": "created", "task": "t"}]


LOSING = "tasks-live-feed-losing-its-connection"


def _end_listening_sessions(engine) -> None:
    with engine.connect() as connection:
        ended = connection.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = :name AND query LIKE 'LISTEN%'"),
            {"name": LOSING}).scalar_one()
    assert ended == 1


def _notify(engine, payload: str) -> None:
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_notify(:channel, :payload)"),
                           {"channel": CHANNEL, "payload": payload})


# -- over HTTP ----------------------------------------------------------------------------


@pytest.fixture
def browsers() -> Iterator[Browsers]:
    with Browsers() as opened:
        yield opened


def test_the_board_streams_changes_as_server_sent_events(tasks_url, engine, sessions, people,
                                                         browsers):
    feed_replica(sessions, people.worker, people.manager)
    browser, _ = browsers.sign_in(tasks_url, people.worker)
    events, reader = read_server_sent_events(browser.http, f"{tasks_url}/events")
    assert events.get(timeout=WAIT) == ("content-type", "text/event-stream; charset=utf-8")
    assert events.get(timeout=WAIT) == ("ready", "{}")
    task = create_via_api(tasks_url, people.manager, "Feed the parrots")
    kind, data = events.get(timeout=WAIT)
    reader.join(timeout=WAIT)

    assert (kind, json.loads(data)) == ("change", {"kind": "created", "task": task["id"]})


def test_the_stream_is_for_signed_in_people_only(tasks_url):
    response = httpx.get(f"{tasks_url}/events")
    assert response.status_code == 303 and response.headers["location"].startswith("/auth/login")
