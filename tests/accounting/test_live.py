"""Live updates of account pages: every statement that books transactions sends one NOTIFY
naming the accounts (or "all" when it books many), heard by the web processes' feeds and
streamed to the pages of those accounts as Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from accounting.service import LedgerCommands
from accounting.web import BOOKED_CHANNEL
from platform_kit.live import LiveFeed, conninfo_of
from tests.accounting.conftest import add_account, assign, charge, complete, new_id
from tests.accounting.support import book_task, feed_replica
from tests.auth.support import Browsers, People
from tests.helpers import read_server_sent_events

T = TypeVar("T")
WAIT = 10.0  # a deadline for what should come at once, never a measure of speed


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout=60)


def hear(engine, *actions: Callable[[], object], expected: int) -> list[dict]:
    """What a feed hears while ``actions`` run; exactly ``expected`` messages."""

    async def run() -> list[dict]:
        feed = LiveFeed(conninfo_of(engine), BOOKED_CHANNEL)
        async with feed.subscribe() as changes:
            for action in actions:
                await asyncio.to_thread(action)
            heard = [await asyncio.wait_for(changes.get(), WAIT) for _ in range(expected)]
            await asyncio.sleep(0.2)
            assert changes.empty(), "more was announced than the bookings made"
        feed._task.cancel()
        return heard

    return run_async(run())


def booked(*accounts) -> dict:
    return {"kind": "booked", "accounts": sorted(str(account) for account in accounts)}


def sorted_message(message: dict) -> dict:
    accounts = message["accounts"]
    return {**message, "accounts": sorted(accounts) if isinstance(accounts, list) else accounts}


def test_each_booking_names_its_account(sessions, engine, books):
    worker = add_account(sessions)
    task = new_id()

    heard = hear(engine, lambda: assign(sessions, books, task, worker),
                 lambda: complete(sessions, books, task, worker), expected=2)

    assert heard == [booked(worker), booked(worker)]


def test_a_statement_booking_a_few_accounts_names_them_once(sessions, engine, books):
    workers = [add_account(sessions) for _ in range(3)]

    def assign_all() -> None:
        with sessions() as session, session.begin():
            LedgerCommands(books).apply_task_assigned(session, [
                charge(new_id(), worker) for worker in workers + workers])

    [heard] = hear(engine, assign_all, expected=1)

    assert sorted_message(heard) == booked(*workers)


def test_a_statement_booking_many_says_all(sessions, engine, books):
    workers = [add_account(sessions) for _ in range(40)]

    def assign_all() -> None:
        with sessions() as session, session.begin():
            LedgerCommands(books).apply_task_assigned(session, [
                charge(new_id(), worker) for worker in workers])

    assert hear(engine, assign_all, expected=1) == [{"kind": "booked", "accounts": "all"}]


def test_a_booking_rolled_back_announces_nothing(sessions, engine, books):
    worker, other = add_account(sessions), add_account(sessions)

    def fail_then_book() -> None:
        with pytest.raises(RuntimeError), sessions() as session, session.begin():
            LedgerCommands(books).apply_task_assigned(session, [charge(new_id(), worker)])
            raise RuntimeError("changed my mind")
        assign(sessions, books, new_id(), other)

    assert hear(engine, fail_then_book, expected=1) == [booked(other)]


# -- over HTTP ----------------------------------------------------------------------------


@pytest.fixture
def browsers() -> Iterator[Browsers]:
    with Browsers() as opened:
        yield opened


def test_an_account_page_streams_only_its_own_bookings(accounting_url, engine, sessions,
                                                       live_books, people: People, browsers):
    feed_replica(sessions, people.worker, people.other_worker)
    browser, _ = browsers.sign_in(accounting_url, people.worker)
    events, reader = read_server_sent_events(browser.http, f"{accounting_url}/events")
    assert events.get(timeout=WAIT) == ("content-type", "text/event-stream; charset=utf-8")
    assert events.get(timeout=WAIT) == ("ready", "{}")
    book_task(sessions, live_books, people.other_worker, "Not theirs", done=False)
    book_task(sessions, live_books, people.worker, "Theirs", done=False)
    kind, data = events.get(timeout=WAIT)
    reader.join(timeout=WAIT)

    assert (kind, json.loads(data)) == ("change", booked(people.worker.id))
