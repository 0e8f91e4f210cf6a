"""What the batches keep for the dashboard (balances now, their count, the negative days,
the most expensive tasks) equals a direct computation from the nets and the tasks, in
whatever order and batches the events arrive."""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from analytics import queries
from analytics.domain import (
    BalanceUpdate,
    CompletedTask,
    Period,
    most_expensive,
    negative_changes,
    period_bounds,
)
from analytics.models import AccountDayNet, Task
from analytics.service import AnalyticsService
from event_schemas import Event
from platform_kit.cursor import InvalidCursor
from tests.analytics.conftest import DAY, at, completed, new_id, priced, snapshot, transaction

FIRST = DAY - timedelta(days=20)
READ_MODEL = ("account_balances", "negative_balance_counts", "negative_count_changes")


def random_transactions(rng: random.Random, accounts: int = 12, count: int = 160
                        ) -> list[Event]:
    popugs = [new_id() for _ in range(accounts)]
    events = []
    for _ in range(count):
        kind = rng.choice(["fee", "fee", "reward", "payout"])
        day = FIRST + timedelta(days=rng.randrange(14))
        events.append(transaction(rng.choice(popugs), kind, rng.randint(1, 40) * 100, 0,
                                  day=day, applied_at=at(day, rng.randrange(24))))
    return events


def deliver_in_random_batches(project, events: list[Event], rng: random.Random) -> None:
    shuffled = rng.sample(events, len(events))
    while shuffled:
        size = rng.randint(1, 25)
        project(*shuffled[:size])
        shuffled = shuffled[size:]


def nets_of(sessions) -> dict[uuid.UUID, dict[date, int]]:
    nets: dict[uuid.UUID, dict[date, int]] = {}
    with sessions() as session:
        for row in session.query(AccountDayNet):
            nets.setdefault(row.account_id, {})[row.day] = row.net
    return nets


def negative_at_end_of(nets: dict[uuid.UUID, dict[date, int]], day: date) -> int:
    return sum(1 for days in nets.values()
               if sum(net for d, net in days.items() if d <= day) < 0)


def negative_now(nets: dict[uuid.UUID, dict[date, int]]) -> list[tuple[uuid.UUID, int]]:
    balances = {account: sum(days.values()) for account, days in nets.items()}
    return sorted(((a, b) for a, b in balances.items() if b < 0), key=lambda x: (x[1], x[0]))


def every_page(sessions, limit: int) -> list[queries.NegativeBalances]:
    pages, cursor = [], None
    with sessions() as session:
        while True:
            pages.append(queries.negative_balances(session, cursor, limit))
            cursor = pages[-1].next
            if cursor is None:
                return pages


@pytest.mark.parametrize("seed", range(4))
def test_balances_count_and_negative_days_equal_the_nets_in_any_arrival_order(
    engine, sessions, project, seed
):
    rng = random.Random(seed)
    events = random_transactions(rng)
    deliver_in_random_batches(project, events, rng)
    nets = nets_of(sessions)
    expected = negative_now(nets)
    assert expected, "the data leaves some popugs below zero"

    pages = every_page(sessions, limit=3)
    listed = [(b.account_id, b.balance) for page in pages for b in page.accounts]
    assert listed == expected
    assert {page.count for page in pages} == {len(expected)}
    last = DAY + timedelta(days=2)
    with sessions() as session:
        assert queries.negative_balances_now(session) == [
            queries.AccountBalance(a, b) for a, b in expected]
        days = queries.history(session, FIRST - timedelta(days=1), last)
    assert [d.negative_balances for d in days] == [
        negative_at_end_of(nets, d.day) for d in days]

    kept = snapshot(sessions)
    projection = AnalyticsService(sessions, ZoneInfo("UTC"))
    projection.derive_balances()
    assert {t: kept[t] for t in READ_MODEL} == {t: snapshot(sessions)[t] for t in READ_MODEL}

    projection.reset()
    deliver_in_random_batches(project, list(reversed(events)), random.Random(seed + 100))
    assert snapshot(sessions) == kept


def test_a_page_after_the_last_is_empty_and_a_bad_cursor_is_refused(sessions, project):
    popug = new_id()
    project(transaction(popug, "fee", 1500, -1500))
    with sessions() as session:
        first = queries.negative_balances(session, limit=1)
        assert (first.count, first.next) == (1, None)
        for cursor in ("not a cursor", "AAAA", "!!"):
            with pytest.raises(InvalidCursor):
                queries.negative_balances(session, cursor)


def test_a_change_of_an_earlier_day_moves_the_days_after_it(sessions, project):
    popug = new_id()
    d1, d2, d3 = FIRST, FIRST + timedelta(days=1), FIRST + timedelta(days=2)
    project(transaction(popug, "fee", 1000, 0, day=d2))  # negative from d2
    project(transaction(popug, "reward", 1500, 0, day=d3))  # out of the red on d3
    project(transaction(popug, "fee", 700, 0, day=d1))  # from d1 on, and still on d3
    with sessions() as session:
        days = queries.history(session, d1, d3)
        count = queries.negative_count(session)
    assert [d.negative_balances for d in days] == [1, 1, 1]
    assert count == 1
    assert snapshot(sessions)["negative_count_changes"] == [(d1, 1)]


def test_negative_changes_walk_the_closing_balances():
    d1, d2, d3, d4 = (FIRST + timedelta(days=n) for n in range(4))
    assert negative_changes(0, {d3: 500, d1: -100, d2: 50, d4: -900}) == {
        d1: 1, d3: -1, d4: 1}
    assert negative_changes(-10, {d1: 10}) == {d1: -1}
    update = BalanceUpdate(balance=-100, later_nets={d2: -100}, added={d1: 300, d3: -250})
    # before: 0 on d1 (no net), -100 from d2; after: 300, 200, -50
    assert update.negative_changes() == {d2: -1, d3: 1}
    assert (update.new_balance, update.crossed_zero) == (-50, 0)


# --- the most expensive task -----------------------------------------------------------


def random_tasks(rng: random.Random, count: int = 120) -> tuple[list[Event], list[Event]]:
    prices, completions = [], []
    for _ in range(count):
        task_id = new_id()
        prices.append(priced(task_id, rng.choice([2000, 3000, 3900, 4000])))
        if rng.random() < 0.8:
            day = FIRST + timedelta(days=rng.randrange(40))
            completions.append(completed(task_id, at(day, rng.randrange(24), rng.choice([0, 30]))))
    return prices, completions


def completed_tasks(sessions) -> list[CompletedTask]:
    with sessions() as session:
        rows = session.query(Task).where(Task.completed_day.is_not(None),
                                         Task.reward.is_not(None))
        return [CompletedTask(t.task_id, t.title, t.jira_id, t.reward, t.completed_at,
                              t.completed_day) for t in rows]


@pytest.mark.parametrize("seed", range(3))
def test_the_most_expensive_task_of_each_period_is_the_highest_reward_completed_first(
    sessions, project, seed
):
    rng = random.Random(seed)
    prices, completions = random_tasks(rng)
    deliver_in_random_batches(project, prices + completions, rng)
    tasks = completed_tasks(sessions)

    for offset in range(-3, 45, 2):
        day = FIRST + timedelta(days=offset)
        for period in Period:
            first, last = period_bounds(period, day)
            with sessions() as session:
                found = queries.most_expensive_task(session, period, day)
            assert (found.first, found.last) == (first, last)
            assert found.task == most_expensive(
                t for t in tasks if first <= t.completed_day <= last), (period, day)
