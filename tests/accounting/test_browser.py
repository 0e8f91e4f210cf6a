"""The dashboard in a real browser (Chromium) on a phone-sized screen, signed in through SSO."""

from __future__ import annotations

import csv
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import Page, expect

from accounting.ledger_sql import Books
from accounting.web import money
from tests.accounting.conftest import Clock, price_of
from tests.accounting.support import book_task, feed_replica
from tests.auth.support import People, Person
from tests.axe import assert_accessible

# The served app, the auth provider and the people of the package.

PHONE = {"viewport": {"width": 390, "height": 844}, "accept_downloads": True}
DESKTOP = {"viewport": {"width": 1280, "height": 800}, "accept_downloads": True}
LIVE_DEADLINE_MS = 2000  # how long the other browser may take to show a booking


def sign_in(page: Page, person: Person) -> None:
    """Fill in the provider's login form the dashboard sent the browser to."""
    page.fill("#email", person.login.email)
    page.fill("#password", person.login.password)
    page.get_by_role("button", name="Sign in").click()


def assert_fits_a_phone(page: Page, screenshot: Path) -> None:
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 1000
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{page.url} scrolls sideways on a phone ({width}px wide)"


def test_a_worker_reads_their_audit_log_and_an_accountant_downloads_the_report(
        accounting_url, engine, sessions, live_books, people: People, browser_context,
        tmp_path):
    feed_replica(sessions, people.worker, people.accountant)
    task = book_task(sessions, live_books, people.worker, "Feed the parrots", "UBERPOP-7",
                     "Millet and fresh water, twice a day.")
    fee, reward = price_of(engine, task)

    worker = browser_context(**PHONE).new_page()
    worker.goto(f"{accounting_url}/")
    sign_in(worker, people.worker)
    expect(worker.get_by_role("heading", level=1)).to_have_text("My account")
    expect(worker.locator("#balance")).to_have_text(money(reward - fee))
    expect(worker.locator(".ledger .task-title").first).to_have_text("UBERPOP-7Feed the parrots")
    expect(worker.locator(".ledger .description").first).to_have_text(
        "Millet and fresh water, twice a day.")
    assert_fits_a_phone(worker, tmp_path / "worker.png")
    assert_accessible(worker, "accounting: my account on a phone")

    accountant = browser_context(**PHONE).new_page()
    accountant.goto(f"{accounting_url}/management")
    sign_in(accountant, people.accountant)
    expect(accountant.get_by_role("heading", level=1)).to_have_text("Management")
    expect(accountant.locator("#management-today")).to_have_text(money(fee - reward))
    expect(accountant.locator("svg.chart rect.bar")).to_have_count(1)  # from the first day
    assert_fits_a_phone(accountant, tmp_path / "management.png")
    assert_accessible(accountant, "accounting: management on a phone")

    with accountant.expect_download() as download_info:
        accountant.get_by_role("link", name=re.compile(r"Per-day report.*\(CSV\)")).click()
    download = download_info.value
    assert download.suggested_filename.startswith("management-days-")
    rows = list(csv.DictReader(Path(download.path()).read_text().splitlines()))
    today = datetime.now(UTC).date().isoformat()
    assert len(rows) == 14  # the report covers the range asked for, empty days included
    assert rows[-1] == {"day": today, "fees_charged": str(fee), "rewards_paid": str(reward),
                        "earned": str(fee - reward)}


def test_an_accountant_reverses_a_fee_from_the_audit_log(
        accounting_url, engine, sessions, live_books, people: People, browser_context,
        tmp_path):
    feed_replica(sessions, people.worker, people.accountant)
    task = book_task(sessions, live_books, people.worker, "Feed the parrots", done=False)
    fee, _ = price_of(engine, task)

    accountant = browser_context(**PHONE).new_page()
    accountant.goto(f"{accounting_url}/accounts/{people.worker.id}")
    sign_in(accountant, people.accountant)
    expect(accountant.locator("#balance")).to_have_text(money(-fee))
    accountant.locator(".ledger .line.fee").get_by_role("link", name="Reverse").click()
    expect(accountant.get_by_role("heading", level=1)).to_have_text("Reverse this fee?")
    assert_fits_a_phone(accountant, tmp_path / "reverse.png")
    assert_accessible(accountant, "accounting: the reversal form")
    accountant.get_by_label("Reason").fill("Assigned while on leave")
    accountant.get_by_role("button", name="Reverse it").click()

    expect(accountant.get_by_role("status")).to_have_text(
        "Reversed: the reversal is booked today.")
    expect(accountant.locator("#balance")).to_have_text(money(0))
    reversal = accountant.locator(".ledger .line.reversal")
    expect(reversal.locator(".amount")).to_have_text(money(fee))
    expect(reversal.locator(".reason")).to_have_text("Assigned while on leave")
    expect(accountant.locator(".ledger .line.fee .correction.reversed")).to_contain_text(
        "Reversed by")
    expect(accountant.locator(".ledger .line.fee").get_by_role("link", name="Reverse")
           ).to_have_count(0)
    assert_fits_a_phone(accountant, tmp_path / "reversed.png")
    assert_accessible(accountant, "accounting: an account after a reversal")


# -- statement filters, the management range, live updates ---------------------------------


def book_history(sessions, accounting_settings, live_books, people: People) -> str:
    """The worker: tasks done three days ago and today, one still open; the other worker a
    task done. Returns the earlier day."""
    feed_replica(sessions, people.worker, people.other_worker, people.accountant)
    earlier = datetime.now(UTC) - timedelta(days=3)
    past = Books.create(accounting_settings, clock=Clock(earlier))
    book_task(sessions, past, people.worker, "Feed the parrots", "UBERPOP-1",
              "Millet and fresh water.")
    book_task(sessions, past, people.other_worker, "Sweep the perch")
    book_task(sessions, live_books, people.worker, "Clean the cage", "UBERPOP-2")
    book_task(sessions, live_books, people.worker, "Polish the bell", done=False)
    return earlier.date().isoformat()


def test_a_worker_filters_the_statement_and_downloads_it(
        accounting_url, engine, sessions, accounting_settings, live_books, people: People,
        browser_context, tmp_path):
    earlier = book_history(sessions, accounting_settings, live_books, people)
    page = browser_context(**PHONE).new_page()
    page.goto(f"{accounting_url}/")
    sign_in(page, people.worker)
    expect(page.locator(".ledger .line")).to_have_count(5)

    page.get_by_label("To", exact=True).fill(earlier)
    page.get_by_label("Type", exact=True).select_option("reward")
    page.get_by_role("button", name="Show").click()

    expect(page.locator(".ledger .line")).to_have_count(1)
    expect(page.locator(".ledger .task-title")).to_have_text("UBERPOP-1Feed the parrots")
    assert "type=reward" in page.url and f"to={earlier}" in page.url
    assert_fits_a_phone(page, tmp_path / "filtered.png")
    assert_accessible(page, "accounting: a filtered statement")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download this statement (CSV)").click()
    rows = list(csv.DictReader(Path(download_info.value.path()).read_text().splitlines()))
    assert [(row["type"], row["task_title"]) for row in rows] == [("reward", "Feed the parrots")]

    page.get_by_role("link", name="Clear").click()
    expect(page.locator(".ledger .line")).to_have_count(5)


def test_the_management_range_chart_and_its_words_on_a_desktop_and_a_phone(
        accounting_url, engine, sessions, accounting_settings, live_books, people: People,
        browser_context, tmp_path):
    earlier = book_history(sessions, accounting_settings, live_books, people)
    today = datetime.now(UTC).date().isoformat()
    desktop = browser_context(**DESKTOP).new_page()
    desktop.goto(f"{accounting_url}/management")
    sign_in(desktop, people.accountant)

    # the days start at the first with data, not 14 days back
    expect(desktop.locator("table.days tbody tr")).to_have_count(4)
    expect(desktop.locator("table.days tbody tr").last.locator("th")).to_have_text(earlier)
    chart = desktop.get_by_role("img", name=re.compile("^Management earned"))
    expect(chart).to_be_visible()
    expect(desktop.locator("figcaption")).to_contain_text(f"over 4 days, {earlier} to {today}")
    expect(desktop.locator("svg.chart .value-label").first).to_be_visible()
    assert_accessible(desktop, "accounting: management on a desktop")

    desktop.get_by_label("From", exact=True).fill(earlier)
    desktop.get_by_label("To", exact=True).fill(earlier)
    desktop.get_by_role("button", name="Show").click()
    expect(desktop.locator("table.days tbody tr")).to_have_count(1)
    expect(desktop.locator("figcaption")).to_contain_text(f"over 1 day, {earlier} to {earlier}")
    expect(desktop.get_by_role("link", name=re.compile("Per-day report"))).to_have_attribute(
        "href", f"/api/exports/management-days.csv?from={earlier}&to={earlier}")

    phone = browser_context(**PHONE).new_page()
    phone.goto(f"{accounting_url}/management")
    sign_in(phone, people.accountant)
    first_row = phone.locator("table.days tbody tr").first
    # each row stacks its columns, each cell labelled, instead of scrolling sideways
    expect(first_row.locator("td").first).to_have_css("display", "flex")
    expect(phone.locator("table.days thead")).to_have_css("position", "absolute")
    label = first_row.locator("td").first.evaluate(
        "cell => getComputedStyle(cell, '::before').content")
    assert label == '"Fees charged"'
    assert_fits_a_phone(phone, tmp_path / "management-phone.png")
    assert_accessible(phone, "accounting: management on a phone, stacked")


def test_a_booking_appears_on_the_workers_page_without_a_reload(
        accounting_url, engine, sessions, live_books, people: People, browser_context):
    feed_replica(sessions, people.worker, people.accountant)
    task = book_task(sessions, live_books, people.worker, "Feed the parrots", done=False)
    fee, _ = price_of(engine, task)
    worker = browser_context(**PHONE).new_page()
    worker.goto(f"{accounting_url}/")
    sign_in(worker, people.worker)
    expect(worker.locator("#balance")).to_have_text(money(-fee))
    expect(worker.locator("html")).to_have_attribute("data-live", "on")
    worker.evaluate("window.stillThisPage = true")

    accountant = browser_context(**DESKTOP).new_page()
    accountant.goto(f"{accounting_url}/accounts/{people.worker.id}")
    sign_in(accountant, people.accountant)
    accountant.locator(".ledger .line.fee").get_by_role("link", name="Reverse").click()
    accountant.get_by_label("Reason").fill("Assigned while on leave")
    accountant.get_by_role("button", name="Reverse it").click()
    expect(accountant.get_by_role("status")).to_have_text(
        "Reversed: the reversal is booked today.")

    expect(worker.locator("#balance")).to_have_text(money(0), timeout=LIVE_DEADLINE_MS)
    expect(worker.locator(".ledger .line.reversal")).to_have_count(1)
    assert worker.evaluate("window.stillThisPage") is True  # never reloaded

    book_task(sessions, live_books, people.worker, "Clean the cage", done=False)  # an event
    expect(worker.locator(".ledger .line")).to_have_count(3, timeout=LIVE_DEADLINE_MS)
    assert worker.evaluate("window.stillThisPage") is True


# -- screens for the documentation -------------------------------------------------------

SCREENS = Path(__file__).resolve().parents[2] / "docs" / "screens"
SIZES = {"1280x800": DESKTOP, "390x844": PHONE}


def test_screens_of_the_account_and_management_pages(
        accounting_url, engine, sessions, accounting_settings, live_books, people: People,
        browser_context, tmp_path):
    """Writes docs/screens/accounting-*.png when ATES_WRITE_SCREENS is set, else to a
    temporary folder; either way each page fits its screen."""
    book_history(sessions, accounting_settings, live_books, people)
    folder = SCREENS if os.environ.get("ATES_WRITE_SCREENS") else tmp_path
    for size, options in SIZES.items():
        context = browser_context(**options)
        worker = context.new_page()
        worker.goto(f"{accounting_url}/")
        sign_in(worker, people.worker)
        expect(worker.locator("html")).to_have_attribute("data-live", "on")
        worker.screenshot(path=str(folder / f"accounting-account-{size}.png"), full_page=True)
        accountant = browser_context(**options).new_page()
        accountant.goto(f"{accounting_url}/management")
        sign_in(accountant, people.accountant)
        expect(accountant.locator("svg.chart")).to_be_visible()
        accountant.screenshot(path=str(folder / f"accounting-management-{size}.png"),
                              full_page=True)
        for page in (worker, accountant):
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= options["viewport"]["width"], f"{page.url} scrolls sideways"
