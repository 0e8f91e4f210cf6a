"""The dashboard's pages through single sign-on, driven by a browser-like HTTP client."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from accounting.ledger_sql import Books
from accounting.queries import ManagementDay
from accounting.web import bar_chart, money
from auth_client.token_flow import hidden_inputs
from tests.accounting.conftest import Clock, count, price_of
from tests.accounting.support import book_task, feed_replica, parse_csv
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


def fees_charged(engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(
            text("SELECT -sum(amount) FROM transactions WHERE type = 'fee'")))


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
    assert all(chart.left < bar.x and bar.x + bar.width <= chart.width for bar in chart.bars)
    assert [(tick.at, tick.label) for tick in chart.values] == [
        (gain.y, "$30.00"), (chart.baseline, "$0.00"), (loss.y + loss.height, "-$10.00")]
    assert [tick.label for tick in chart.days] == ["Nov 20"] * 3
    assert chart.with_values


def test_the_chart_labels_at_most_seven_days_the_latest_always_and_says_it_in_words():
    days = [ManagementDay(date(2026, 11, 1) + timedelta(days=n), 100 * n, 0) for n in range(30)]
    days[4] = ManagementDay(days[4].day, 0, 5000)

    chart = bar_chart(days)

    assert len(chart.days) <= 7 and chart.days[-1].label == "Nov 30"
    assert chart.days[-1].at == chart.bars[-1].middle
    assert not chart.with_values  # too narrow: the values are in the table and the titles
    assert chart.summary == (
        "Management earned $381.00 over 30 days, 2026-11-01 to 2026-11-30; best day"
        " 2026-11-30 ($29.00), worst day 2026-11-05 (-$50.00). The table below lists every"
        " day.")


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
    # the table and the chart start on the first day with fees or rewards: today
    fees = fees_charged(engine)
    assert page.text.count('<rect class="bar') == 1
    assert f"{today()} {money(fees)} {money(reward)} {money(fees - reward)}" in text
    assert "$0.00 $0.00 $0.00" not in text
    assert "Kesha Worker" in text and money(reward - fee) in text
    assert f'href="/accounts/{people.other_worker.id}"' in page.text
    first = (datetime.now(UTC).date() - timedelta(days=13)).isoformat()
    assert f'name="from" value="{first}"' in page.text  # the range asked for
    assert f'href="/api/exports/management-days.csv?from={first}&amp;to={today()}"' in page.text
    assert 'href="/api/exports/transactions.csv"' in page.text


def test_the_chart_has_axes_values_and_a_summary_in_words(dashboard, engine, browsers,
                                                          people, booked):
    _, reward = price_of(engine, booked)
    _, page = browsers.sign_in(dashboard, people.accountant, "/management")

    chart = re.search(r'<svg class="chart" role="img" aria-labelledby="chart-caption".*?</svg>',
                      page.text, re.S)
    caption = re.search(r'<figcaption id="chart-caption">([^<]+)<', page.text)
    assert chart is not None and caption is not None
    earned = money(fees_charged(engine) - reward)
    assert 'class="bar-value"' in chart.group(0) and f">{earned}</text>" in chart.group(0)
    assert '>$0.00</text>' in chart.group(0)  # the money axis
    assert html.unescape(caption.group(1)) == (
        f"Management earned {earned} over 1 day, {today()} to {today()}; best day {today()}"
        f" ({earned}), worst day {today()} ({earned}). The table below lists every day.")


def test_management_shows_the_range_of_days_asked_for(dashboard, engine, browsers, people,
                                                      booked):
    browser, _ = browsers.sign_in(dashboard, people.accountant, "/management")
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    long_ago = (datetime.now(UTC).date() - timedelta(days=400)).isoformat()

    before = browser.get(f"{dashboard}/management?from={long_ago}&to={yesterday}")
    since = browser.get(f"{dashboard}/management?from={long_ago}")
    backwards = browser.get(f"{dashboard}/management?from={today()}&to={yesterday}")
    garbled = browser.get(f"{dashboard}/management?from=lately")
    too_long = browser.get(f"{dashboard}/management?from=2020-01-01&to={today()}")

    assert before.status_code == 200 and '<rect class="bar' not in before.text
    assert f"No fees or rewards from {long_ago} to {yesterday}." in text_of(before)
    assert since.text.count('<rect class="bar') == 1  # from the first day with data
    assert (f'href="/api/exports/management-days.csv?from={long_ago}&amp;to={today()}"'
            in since.text)
    assert backwards.status_code == garbled.status_code == too_long.status_code == 422
    assert "before it starts" in text_of(backwards)
    assert "is not a date" in text_of(garbled)


def test_notices_in_the_address_are_not_shown(dashboard, browsers, people, booked):
    browser, _ = browsers.sign_in(dashboard, people.accountant, "/management")

    management = browser.get(f"{dashboard}/management?notice=closed&paid=999")
    account = browser.get(f"{dashboard}/accounts/{people.worker.id}?notice=reversed")

    for page in (management, account):
        assert page.status_code == 200
        assert 'class="notice"' not in page.text and "999" not in text_of(page)
        assert "Reversed" not in text_of(page) and "Day closed" not in text_of(page)


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
    assert "?" not in closed.url.path and not closed.url.query  # never in the address
    assert count(engine, "payouts") == 1
    shown_once = browser.get(f"{dashboard}/management")
    assert "Day closed" not in text_of(shown_once) and "already closed" not in text_of(shown_once)


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


# -- statement filters ----------------------------------------------------------------------


@pytest.fixture
def two_days(sessions, accounting_settings, live_books, people: People):
    """The worker: a task done two days ago, another done today and one assigned today."""
    feed_replica(sessions, people.worker, people.other_worker, people.accountant)
    earlier = datetime.now(UTC) - timedelta(days=2)
    past_books = Books.create(accounting_settings, clock=Clock(earlier))
    book_task(sessions, past_books, people.worker, "Old parrots")
    book_task(sessions, live_books, people.worker, "New parrots")
    book_task(sessions, live_books, people.worker, "Open cage", done=False)
    return earlier.date().isoformat()


def titles_on(page: httpx.Response) -> list[str]:
    return re.findall(r'<p class="task-title">([^<]*)</p>', page.text)


def test_a_worker_filters_the_statement_by_days_and_type(dashboard, browsers, people,
                                                         two_days):
    browser, everything = browsers.sign_in(dashboard, people.worker)

    old = browser.get(f"{dashboard}/?to={two_days}")
    new = browser.get(f"{dashboard}/?from={today()}")
    new_rewards = browser.get(f"{dashboard}/?from={today()}&type=reward")
    none = browser.get(f"{dashboard}/?type=payout")

    assert titles_on(everything) == ["Open cage", "New parrots", "New parrots", "Old parrots",
                                     "Old parrots"]
    assert titles_on(old) == ["Old parrots", "Old parrots"]
    assert titles_on(new) == ["Open cage", "New parrots", "New parrots"]
    assert titles_on(new_rewards) == ["New parrots"]
    assert "Nothing booked that matches these filters." in text_of(none)
    assert f'value="{today()}"' in new_rewards.text
    assert '<option value="reward" selected>' in new_rewards.text
    assert (f'href="/api/accounts/{people.worker.id}/transactions.csv?from={today()}'
            f'&amp;type=reward"' in new_rewards.text)


def test_the_statement_pages_keep_their_filters(dashboard, sessions, live_books, browsers,
                                                people):
    feed_replica(sessions, people.worker)
    for n in range(21):  # one more reward than a page shows
        book_task(sessions, live_books, people.worker, f"Task {n}")
    browser, _ = browsers.sign_in(dashboard, people.worker)

    first = browser.get(f"{dashboard}/?type=reward&from={today()}")
    next_url = html.unescape(re.search(r'href="([^"]*cursor=[^"]*)">Older', first.text).group(1))
    second = browser.get(f"{dashboard}{next_url}")

    assert "type=reward" in next_url and f"from={today()}" in next_url
    assert titles_on(first) == [f"Task {n}" for n in range(20, 0, -1)]
    assert titles_on(second) == ["Task 0"]


@pytest.mark.parametrize(("query", "says"), [
    ("type=bonus", "type must be one of"),
    ("from=yesterday", "is not a date"),
    ("from=2026-11-22&to=2026-11-21", "before it starts"),
])
def test_bad_statement_filters_are_refused_with_a_sentence(dashboard, browsers, people, query,
                                                           says):
    browser, _ = browsers.sign_in(dashboard, people.worker)

    page = browser.get(f"{dashboard}/?{query}")

    assert page.status_code == 422 and says in text_of(page).lower()


def test_every_user_downloads_their_own_statement_filtered_as_shown(dashboard, browsers,
                                                                    people, two_days):
    browser, _ = browsers.sign_in(dashboard, people.worker)
    base = f"{dashboard}/api/accounts/{people.worker.id}/transactions.csv"

    everything = browser.get(base)
    rewards = browser.get(f"{base}?from={today()}&type=reward")
    someone_else = browser.get(
        f"{dashboard}/api/accounts/{people.other_worker.id}/transactions.csv")

    assert everything.status_code == 200
    assert everything.headers["content-type"] == "text/csv; charset=utf-8"
    assert [row["task_title"] for row in parse_csv(everything)] == [
        "Old parrots", "Old parrots", "New parrots", "New parrots", "Open cage"]  # oldest first
    assert [(r["type"], r["task_title"]) for r in parse_csv(rewards)] == [
        ("reward", "New parrots")]
    assert rewards.headers["content-disposition"] == (
        f'attachment; filename="statement-{people.worker.id}-{today()}-reward.csv"')
    assert someone_else.status_code == 403


def test_the_live_stream_is_for_the_accounts_one_may_see(dashboard, browsers, people, booked):
    worker, _ = browsers.sign_in(dashboard, people.worker)

    other = worker.get(f"{dashboard}/events?account={people.other_worker.id}")
    anonymous = httpx.get(f"{dashboard}/events")

    assert other.status_code == 403
    assert anonymous.status_code == 303


def test_the_money_axis_leaves_out_a_value_too_close_to_zero_to_be_read():
    day = date(2026, 11, 20)

    chart = bar_chart([ManagementDay(day, 100, 0), ManagementDay(day, 0, 10_000)])

    assert [tick.label for tick in chart.values] == ["$0.00", "-$100.00"]
