"""The dashboard in a real browser (Chromium) on a phone-sized screen, signed in through SSO."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import Page, expect

from accounting.web import money
from tests.accounting.conftest import price_of
from tests.accounting.support import book_task, feed_replica
from tests.auth.support import People, Person

# The served app, the auth provider and the people of the package.

PHONE = {"viewport": {"width": 390, "height": 844}, "accept_downloads": True}


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

    accountant = browser_context(**PHONE).new_page()
    accountant.goto(f"{accounting_url}/management")
    sign_in(accountant, people.accountant)
    expect(accountant.get_by_role("heading", level=1)).to_have_text("Management")
    expect(accountant.locator("#management-today")).to_have_text(money(fee - reward))
    expect(accountant.locator("svg.chart rect.bar")).to_have_count(14)
    assert_fits_a_phone(accountant, tmp_path / "management.png")

    with accountant.expect_download() as download_info:
        accountant.get_by_role("link", name="Per-day report (CSV)").click()
    download = download_info.value
    assert download.suggested_filename.startswith("management-days-")
    rows = list(csv.DictReader(Path(download.path()).read_text().splitlines()))
    today = datetime.now(UTC).date().isoformat()
    assert len(rows) == 14
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
