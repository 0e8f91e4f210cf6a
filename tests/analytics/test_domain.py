"""Pure rules: periods, earnings, daily nets of accounts, the most expensive task, the chart."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from analytics.domain import (
    ChartDay,
    CompletedTask,
    DayEarnings,
    Period,
    Transaction,
    chart_geometry,
    earnings_by_day,
    format_cents,
    format_whole_dollars,
    iso_week_bounds,
    local_day,
    month_bounds,
    most_expensive,
    net_by_account_day,
    period_bounds,
)

D = date.fromisoformat


@pytest.mark.parametrize(
    ("day", "monday", "sunday"),
    [
        ("2026-11-22", "2026-11-16", "2026-11-22"),  # a Sunday ends its week
        ("2026-11-23", "2026-11-23", "2026-11-29"),  # a Monday starts one
        ("2026-12-31", "2026-12-28", "2027-01-03"),  # the week straddles the year end
        ("2027-01-03", "2026-12-28", "2027-01-03"),
        ("2021-01-01", "2020-12-28", "2021-01-03"),  # ISO week 53 of 2020
    ],
)
def test_iso_week_runs_monday_to_sunday_across_year_ends(day, monday, sunday):
    assert iso_week_bounds(D(day)) == (D(monday), D(sunday))


@pytest.mark.parametrize(
    ("day", "first", "last"),
    [
        ("2026-11-22", "2026-11-01", "2026-11-30"),
        ("2026-12-31", "2026-12-01", "2026-12-31"),
        ("2027-01-01", "2027-01-01", "2027-01-31"),
        ("2028-02-10", "2028-02-01", "2028-02-29"),  # leap year
        ("2027-02-28", "2027-02-01", "2027-02-28"),
    ],
)
def test_calendar_month_bounds(day, first, last):
    assert month_bounds(D(day)) == (D(first), D(last))


def test_period_bounds_pick_the_rule_of_the_period():
    day = D("2026-12-31")
    assert period_bounds(Period.DAY, day) == (day, day)
    assert period_bounds(Period.WEEK, day) == iso_week_bounds(day)
    assert period_bounds(Period.MONTH, day) == month_bounds(day)


def test_local_day_is_the_day_in_the_platform_time_zone():
    instant = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)
    assert local_day(instant, ZoneInfo("UTC")) == D("2026-11-22")
    assert local_day(instant, ZoneInfo("Asia/Tokyo")) == D("2026-11-23")
    assert local_day(instant, ZoneInfo("America/New_York")) == D("2026-11-22")


def tx(kind: str, amount: int, day: str = "2026-11-22",
       account: uuid.UUID | None = None) -> Transaction:
    return Transaction(uuid.uuid4(), account or uuid.UUID(int=1), kind, amount, D(day))


def test_management_earnings_are_fees_minus_rewards_and_ignore_payouts():
    transactions = [
        tx("fee", -1500), tx("fee", -1000), tx("reward", 3000), tx("payout", -500),
        tx("fee", -2000, day="2026-11-23"), tx("payout", -100, day="2026-11-24"),
    ]
    totals = earnings_by_day(transactions)
    assert totals == {D("2026-11-22"): DayEarnings(2500, 3000),
                      D("2026-11-23"): DayEarnings(2000, 0)}
    assert totals[D("2026-11-22")].management_earned == -500


def test_nets_sum_each_accounts_day_whatever_the_order():
    alice, bob = uuid.UUID(int=1), uuid.UUID(int=2)
    transactions = [
        tx("fee", -1500, account=alice), tx("reward", 3000, account=alice),
        tx("fee", -1000, account=bob), tx("payout", -1500, account=alice),
        tx("fee", -1000, day="2026-11-23", account=alice), tx("fee", -700, account=alice),
    ]
    expected = {(alice, D("2026-11-22")): -700, (alice, D("2026-11-23")): -1000,
                (bob, D("2026-11-22")): -1000}
    assert net_by_account_day(transactions) == expected
    assert net_by_account_day(reversed(transactions)) == expected
    assert net_by_account_day([]) == {}


def test_a_transaction_is_read_from_its_event_without_its_balance_or_time():
    data = {"transaction_id": str(uuid.UUID(int=7)), "account_id": str(uuid.UUID(int=1)),
            "type": "fee", "amount": -1500, "balance_after": -99, "task_id": None,
            "day": "2026-11-22", "applied_at": "2026-11-22T12:00:00.000000Z"}
    assert Transaction.from_event_data(data) == Transaction(
        uuid.UUID(int=7), uuid.UUID(int=1), "fee", -1500, D("2026-11-22"))


def task(reward: int, minute: int, day: str = "2026-11-22") -> CompletedTask:
    return CompletedTask(uuid.uuid4(), f"task {reward}/{minute}", None, reward,
                         datetime(2026, 11, 22, 12, minute, tzinfo=UTC), D(day))


def test_most_expensive_task_has_the_highest_reward_and_ties_go_to_the_earliest():
    cheap, first_top, second_top = task(2500, 1), task(3900, 30), task(3900, 45)
    assert most_expensive([second_top, cheap, first_top]) == first_top
    assert most_expensive([cheap]) == cheap
    assert most_expensive([]) is None


def test_cents_are_shown_as_dollars():
    assert format_cents(0) == "$0.00"
    assert format_cents(123456) == "$1,234.56"
    assert format_cents(-5) == "-$0.05"
    assert format_whole_dollars(-123456) == "-$1,235"
    assert format_whole_dollars(40) == "$0"


def chart(values: list[tuple[int, int]]):
    start = D("2026-11-01")
    return chart_geometry([ChartDay(start + timedelta(days=i), earned, negative)
                           for i, (earned, negative) in enumerate(values)])


def test_chart_bars_grow_up_for_earnings_and_down_for_losses_from_one_zero_line():
    geometry = chart([(1000, 0), (-500, 2), (0, 1)])
    up, down, flat = geometry.bars
    layout = geometry.layout
    assert up.y + up.height == pytest.approx(geometry.zero_y, abs=0.1)
    assert down.y == geometry.zero_y and down.negative and not up.negative
    assert up.height == pytest.approx(2 * down.height, abs=0.2)
    assert flat.height == 0
    assert up.y == layout.top and down.y + down.height == pytest.approx(
        layout.top + layout.plot_height, abs=0.1)
    assert all(layout.left <= b.x and b.x + b.width <= layout.width - layout.right
               for b in geometry.bars)


def test_chart_points_scale_the_negative_counts_on_their_own_axis():
    geometry = chart([(1000, 0), (-500, 4), (0, 2)])
    layout = geometry.layout
    low, high, middle = geometry.points
    assert low.y == layout.top + layout.plot_height and high.y == layout.top
    assert middle.y == pytest.approx((low.y + high.y) / 2)
    assert [p.x for p in geometry.points] == pytest.approx(
        [b.x + b.width / 2 for b in geometry.bars], abs=0.1)
    assert geometry.polyline.count(",") == 3
    assert [label.text for label in geometry.count_labels] == ["0", "4"]
    assert [label.text for label in geometry.earnings_labels] == ["-$5", "$0", "$10"]


def test_chart_of_quiet_days_and_of_no_days_is_still_drawable():
    quiet = chart([(0, 0)] * 30)
    assert {b.height for b in quiet.bars} == {0}
    assert len(quiet.day_labels) <= quiet.layout.max_day_labels
    empty = chart_geometry([])
    assert empty.bars == [] and empty.polyline == ""
