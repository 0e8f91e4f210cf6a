"""The pure rules of accounting."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from accounting import domain
from accounting.domain import COMPANY_ACCOUNT_ID, FEE, PAYOUT, REWARD, Price
from tests.accounting import ledger_oracle


def test_prices_are_whole_cents_in_their_ranges():
    rng = random.Random(1)
    prices = [domain.price_task(rng) for _ in range(5000)]
    assert all(1000 <= p.fee <= 2000 and 2000 <= p.reward <= 4000 for p in prices)
    assert {min(p.fee for p in prices), max(p.fee for p in prices)} == {1000, 2000}
    assert {min(p.reward for p in prices), max(p.reward for p in prices)} == {2000, 4000}


def test_prices_follow_the_injected_random_source():
    assert domain.price_task(random.Random(3)) == domain.price_task(random.Random(3))


def test_prices_are_uniform():
    rng = random.Random(11)
    fees = Counter(domain.price_task(rng).fee // 100 for _ in range(20000))
    # ten buckets of $1 (plus the single $20.00 value): each near 10 %
    assert all(1700 < fees[bucket] < 2300 for bucket in range(10, 20))


def test_amounts_as_seen_from_the_account():
    assert domain.signed_amount(FEE, 1500) == -1500
    assert domain.signed_amount(REWARD, 3000) == 3000
    assert domain.signed_amount(PAYOUT, 700) == -700
    with pytest.raises(ValueError):
        domain.signed_amount(FEE, 0)
    with pytest.raises(ValueError):
        domain.signed_amount("bonus", 10)


def test_task_charges_use_the_task_price():
    price = Price(fee=1234, reward=3456)
    assert ledger_oracle.task_charge(FEE, price) == -1234
    assert ledger_oracle.task_charge(REWARD, price) == 3456


def test_every_transaction_is_a_balanced_double_entry():
    account = uuid.uuid4()
    for amount in (-1500, 3000, -1):
        own, company = ledger_oracle.double_entry(account, amount)
        assert (own.account_id, company.account_id) == (account, COMPANY_ACCOUNT_ID)
        assert own.amount == amount
        assert ledger_oracle.is_balanced([own, company])
    with pytest.raises(ValueError):
        ledger_oracle.double_entry(COMPANY_ACCOUNT_ID, 10)


def test_payout_is_the_positive_balance_and_nothing_otherwise():
    assert ledger_oracle.payout_for(1773) == 1773
    assert ledger_oracle.payout_for(0) == 0
    assert ledger_oracle.payout_for(-500) == 0


def test_billing_day_follows_the_time_zone():
    moment = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)
    assert domain.billing_day(moment, ZoneInfo("UTC")) == date(2026, 11, 22)
    assert domain.billing_day(moment, ZoneInfo("Europe/Moscow")) == date(2026, 11, 23)
    assert domain.billing_day(moment, ZoneInfo("America/New_York")) == date(2026, 11, 22)
    with pytest.raises(ValueError):
        domain.billing_day(datetime(2026, 11, 22), ZoneInfo("UTC"))


def test_the_open_day_moves_past_a_day_closed_early():
    now = datetime(2026, 11, 22, 15, tzinfo=UTC)
    utc = ZoneInfo("UTC")
    assert domain.open_day(now, utc, None) == date(2026, 11, 22)
    assert domain.open_day(now, utc, date(2026, 11, 21)) == date(2026, 11, 22)
    assert domain.open_day(now, utc, date(2026, 11, 22)) == date(2026, 11, 23)
    assert domain.open_day(now, utc, date(2026, 11, 23)) == date(2026, 11, 24)


def test_days_close_in_order_from_the_first_open_one():
    through = date(2026, 11, 22)
    assert domain.next_day_to_close(date(2026, 11, 19), None, through) == date(2026, 11, 20)
    assert domain.next_day_to_close(date(2026, 11, 22), None, through) is None
    assert domain.next_day_to_close(None, date(2026, 11, 21), through) == date(2026, 11, 21)
    assert domain.next_day_to_close(None, None, through) == through
    assert domain.next_day_to_close(None, date(2026, 12, 1), through) == through


TODAY = date(2026, 11, 22)


def test_ending_the_current_day_closes_today_once():
    assert domain.closing_target(domain.Calendar(TODAY, None, None), None) == TODAY
    open_before = domain.Calendar(TODAY, date(2026, 11, 20), date(2026, 11, 1))
    assert domain.closing_target(open_before, None) == TODAY
    with pytest.raises(domain.DayAlreadyEnded, match="2026-11-23 has not begun"):
        domain.closing_target(domain.Calendar(TODAY, TODAY, date(2026, 11, 1)), None)


def test_a_date_to_close_lies_between_the_ledgers_first_day_and_today():
    calendar = domain.Calendar(TODAY, date(2026, 11, 20), date(2026, 11, 1))
    assert domain.closing_target(calendar, date(2026, 11, 1)) == date(2026, 11, 1)
    assert domain.closing_target(calendar, TODAY) == TODAY
    with pytest.raises(domain.DayNotStarted):
        domain.closing_target(calendar, date(2026, 11, 23))
    with pytest.raises(domain.DayBeforeLedger, match="1970-01-01 is before 2026-11-01"):
        domain.closing_target(calendar, date(1970, 1, 1))
    with pytest.raises(domain.DayBeforeLedger, match="is before 2026-11-22"):
        domain.closing_target(domain.Calendar(TODAY, None, None), date(2026, 11, 21))


def test_management_earns_fees_minus_rewards():
    assert domain.management_earned(fees_charged=4500, rewards_paid=3210) == 1290
    assert domain.management_earned(fees_charged=1000, rewards_paid=3000) == -2000


def test_day_ranges():
    assert domain.days_between(date(2026, 2, 27), date(2026, 3, 1)) == [
        date(2026, 2, 27),
        date(2026, 2, 28),
        date(2026, 3, 1),
    ]
    with pytest.raises(domain.InvalidRange):
        domain.days_between(date(2026, 3, 1), date(2026, 2, 1))


def _task_data(title: str, **extra) -> dict:
    return {
        "task_id": str(uuid.uuid4()),
        "title": title,
        "description": None,
        "status": "open",
        "assignee_id": str(uuid.uuid4()),
        "created_at": "2026-11-22T10:15:00Z",
        "completed_at": None,
        "version": 3,
        **extra,
    }


def test_v1_titles_are_split_into_title_and_jira_id():
    facts = domain.task_facts(_task_data("[UBERPOP-42] Fix the button"), 1)
    assert (facts.title, facts.jira_id, facts.version) == ("Fix the button", "UBERPOP-42", 3)
    plain = domain.task_facts(_task_data("Feed the parrots"), 1)
    assert (plain.title, plain.jira_id) == ("Feed the parrots", None)


def test_v2_titles_are_taken_as_they_are():
    facts = domain.task_facts(_task_data("Fix the button", jira_id="UBERPOP-7"), 2)
    assert (facts.title, facts.jira_id) == ("Fix the button", "UBERPOP-7")


def test_the_newest_state_of_each_task_wins():
    old = domain.task_facts(_task_data("Old", version=1), 1)
    new = domain.TaskFacts(**{**old.__dict__, "title": "New", "version": 2})
    other = domain.task_facts(_task_data("Other"), 1)
    assert domain.newest_per_task([new, other, old]) == [new, other]


def test_mail_retries_back_off_exponentially_up_to_a_cap():
    delays = [domain.retry_delay(n, 5.0, 60.0) for n in range(1, 7)]
    assert delays == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]


def test_ended_days_are_closed_through_yesterday():
    today = date(2026, 11, 22)
    yesterday = date(2026, 11, 21)
    assert domain.last_ended_day_to_close(date(2026, 11, 19), None, today) == yesterday
    assert domain.last_ended_day_to_close(None, date(2026, 11, 21), today) == yesterday
    assert domain.last_ended_day_to_close(None, today, today) is None
    assert domain.last_ended_day_to_close(None, None, today) is None
