"""The dashboard's pages through single sign-on, driven by a browser-like HTTP client."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from accounting.service import ManagementDay
from accounting.web import bar_chart, money
from auth.token_flow import hidden_inputs
from tests.accounting.conftest import count, price_of
from tests.accounting.support import book_task, feed_replica
from tests.auth.support import Browsers, People

# The served app, the auth provider and the people of the package.


@pytest.fixture
def dashboard(accounting_url, engine) -> str:
    """The accounting app, its database emptied for this test."""
    return accounting_url


@pytest.fixture
def browsers() -> Iterator[Browsers]:
    with Browsers() as opened:
        yield opened


@pytest.fixture
def booked(sessions, live_books, people: People):
    feed_replica(sessions, people.worker, people.other_worker, people.accountant)
    done = book_task(sessions, live_books, people.worker, "Feed the parrots", "UBERPOP-7",
                     "Millet, twice a day.")
    book_task(sessions, live_books, people.other_worker, "Clean the cage", done=False)
    return done


def text_of(page: httpx.Response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text)))


def today() -> str:
    return datetime.now(UTC).date().isoformat()


# -- pure helpers -------------------------------------------------------------------------


def test_money_shows_dollars_and_cents():
    assert [money(c) for c in (0, 5, 1250, -1250, 123456)] == [
        "$0.00", "$0.05", "$12.50", "-$12.50", "$1,234.56"]


def test_the_chart_draws_gains_above_and_losses_below_the_baseline():
    day = date(2026, 11, 20)
    chart = bar_chart([ManagementDay(day, 3000, 0), ManagementDay(day, 0, 1000),
                       ManagementDay(day, 0, 0)])

    gain, loss, nothing = chart.bars
    assert gain.y + gain.height == chart.baseline and gain.height == 3 * loss.height
    assert loss.y == chart.baseline and loss.negative and not gain.negative
    assert nothing.height == 0
    assert all(bar.x + bar.width <= chart.width for bar in chart.bars)


# -- pages --------------------------------------------------------------------------------


def test_anonymous_browsers_are_sent_to_sign_in(dashboard, engine):
    page = httpx.get(f"{dashboard}/management?cursor=x")
    post = httpx.post(f"{dashboard}/close-day", data={"day": today()})

    assert page.status_code == post.status_code == 303
    assert page.headers["location"] == "/auth/login?next=%2Fmanagement%3Fcursor%3Dx"
    assert count(engine, "billing_days") == 0


def test_a_worker_sees_balance_earnings_audit_log_and_days(dashboard, engine, browsers,
                                                           people, booked):
    fee, reward = price_of(engine, booked)

    _, page = browsers.sign_in(dashboard, people.worker)

    text = text_of(page)
    assert "<h1>My account</h1>" in page.text
    assert f'id="balance">{money(reward - fee)}<' in page.text
    assert f'id="earned-today">{money(reward - fee)}<' in page.text
    assert "UBERPOP-7 Feed the parrots" in text and "Millet, twice a day." in text
    assert f"Reward {money(reward)}" in text and f"Fee {money(-fee)}" in text
    assert f"{today()} {money(-fee)} {money(reward)} {money(reward - fee)} $0.00" in text
    assert 'href="/management"' not in page.text  # not for workers
    assert page.headers["content-security-policy"].startswith("default-src 'self'")


def test_a_worker_may_not_see_management_nor_another_account(dashboard, browsers, people,
                                                            booked):
    browser, _ = browsers.sign_in(dashboard, people.worker)

    management = browser.get(f"{dashboard}/management")
    other = browser.get(f"{dashboard}/accounts/{people.other_worker.id}")
    closing = browser.get(f"{dashboard}/close-day")
    own = browser.get(f"{dashboard}/accounts/{people.worker.id}")

    assert management.status_code == other.status_code == closing.status_code == 403
    assert "Clean the cage" not in other.text
    assert own.status_code == 200 and "Feed the parrots" in own.text


def test_an_accountant_sees_management_balances_and_exports(dashboard, engine, browsers,
                                                            people, booked):
    fee, reward = price_of(engine, booked)

    _, page = browsers.sign_in(dashboard, people.accountant, "/management")

    text = text_of(page)
    assert "<h1>Management</h1>" in page.text
    earned = re.search(r'id="management-today">([^<]+)<', page.text)
    assert earned is not None and earned.group(1).startswith(("$", "-$"))
    assert page.text.count('<rect class="bar') == 14
    assert "Kesha Worker" in text and money(reward - fee) in text
    assert f'href="/accounts/{people.other_worker.id}"' in page.text
    first = (datetime.now(UTC).date() - timedelta(days=13)).isoformat()
    assert f'href="/api/exports/management-days.csv?from={first}&amp;to={today()}"' in page.text
    assert 'href="/api/exports/transactions.csv"' in page.text


def test_an_accountant_drills_down_into_an_account(dashboard, browsers, people, booked):
    browser, _ = browsers.sign_in(dashboard, people.accountant, "/management")

    page = browser.get(f"{dashboard}/accounts/{people.other_worker.id}")
    missing = browser.get(f"{dashboard}/accounts/{people.manager.id}")
    nonsense = browser.get(f"{dashboard}/accounts/nonsense")
    export = browser.get(f"{dashboard}/api/exports/transactions.csv?account="
                         f"{people.other_worker.id}")

    assert page.status_code == 200
    assert "<h1>Gosha Worker</h1>" in page.text and "Clean the cage" in page.text
    assert missing.status_code == nonsense.status_code == 404
    assert export.status_code == 200 and "Clean the cage" in export.text


def test_closing_a_day_asks_first_and_needs_the_form_token(dashboard, engine, browsers,
                                                          people, booked):
    fee, reward = price_of(engine, booked)
    browser, _ = browsers.sign_in(dashboard, people.accountant, "/management")

    confirm = browser.get(f"{dashboard}/close-day?date={today()}")
    forged = browser.http.post(f"{dashboard}/close-day", data={"day": today()})
    assert f"<h1>Close {today()}?</h1>" in confirm.text
    assert forged.status_code == 403 and count(engine, "payouts") == 0

    form = hidden_inputs(confirm.text)
    closed = browser.follow(browser.http.post(f"{dashboard}/close-day", data=form))
    again = browser.follow(browser.http.post(f"{dashboard}/close-day", data=form))

    assert f"Day closed. Paid out: {money(reward - fee)}." in text_of(closed)
    assert "That day was already closed." in text_of(again)
    assert count(engine, "payouts") == 1


def test_closing_a_day_that_has_not_begun_is_refused(dashboard, engine, browsers, people):
    browser, page = browsers.sign_in(dashboard, people.admin, "/management")
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    token = hidden_inputs(browser.get(f"{dashboard}/close-day").text)["csrf_token"]

    future = browser.http.post(f"{dashboard}/close-day",
                               data={"day": tomorrow, "csrf_token": token})
    garbled = browser.get(f"{dashboard}/close-day?date=soon")

    assert future.status_code == 409 and "has not begun" in future.text
    assert garbled.status_code == 422
    assert count(engine, "billing_days") == 0
