"""Analytics agrees with accounting on the current billing day and on the day a booking
belongs to, once a day was ended by hand before midnight (``billing_cycle.closed``)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from analytics import queries
from analytics.domain import Period
from analytics.queries import AnalyticsQueries
from tests.analytics.conftest import DAY, at, completed, day_closed, new_id, priced

NEXT_DAY = DAY + timedelta(days=1)
UTC_ZONE = ZoneInfo("UTC")


def analytics_at(sessions, hour: int) -> AnalyticsQueries:
    noon = datetime.combine(DAY, time(hour), tzinfo=UTC)
    return AnalyticsQueries(sessions, UTC_ZONE, clock=lambda: noon)


def completion_day(sessions, day):
    with sessions() as session:
        task = queries.most_expensive_task(session, Period.DAY, day).task
    return None if task is None else task.completed_day


def test_the_current_day_is_the_next_one_once_today_was_ended_by_hand(sessions, project):
    assert analytics_at(sessions, 15).today() == DAY

    project(day_closed(DAY, closed_at=at(DAY, 14)))

    assert analytics_at(sessions, 15).today() == NEXT_DAY


def test_a_day_closed_after_it_ended_leaves_today_as_it_is(sessions, project):
    project(day_closed(DAY - timedelta(days=1)))
    assert analytics_at(sessions, 15).today() == DAY


@pytest.mark.parametrize("close_first", [True, False], ids=["close-first", "completion-first"])
def test_a_completion_after_the_day_was_ended_belongs_to_the_next_day(
    sessions, project, close_first
):
    early, late = new_id(), new_id()
    close = day_closed(DAY, closed_at=at(DAY, 14))
    completions = [priced(early, 2500), completed(early, at(DAY, 13)),
                   priced(late, 3900), completed(late, at(DAY, 15))]

    if close_first:
        project(close)
        project(*completions)
    else:
        project(*completions)
        project(close)

    with sessions() as session:
        on_the_day = queries.most_expensive_task(session, Period.DAY, DAY).task
        next_day = queries.most_expensive_task(session, Period.DAY, NEXT_DAY).task
    assert (str(on_the_day.task_id), on_the_day.completed_day) == (early, DAY)
    assert (str(next_day.task_id), next_day.completed_day) == (late, NEXT_DAY)
