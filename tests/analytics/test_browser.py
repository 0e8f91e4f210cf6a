"""The analytics page in a real browser (Chromium), signed in through SSO: names instead of
ids, the frame every aTES dashboard shares (navigation, sign-out, favicon, look), no axe
violation in any of its states, and the screens of the documentation."""

from __future__ import annotations

import os
import random
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from auth_client.settings import dashboard_url
from event_schemas import Event
from tests.analytics import test_dashboard as served
from tests.analytics.conftest import (
    DAY,
    at,
    completed,
    day_closed,
    new_id,
    priced,
    task_state,
    transaction,
)
from tests.analytics.test_dashboard import account_state
from tests.axe import assert_accessible

# The served app and its people, as the dashboard's own tests have them.
dashboard_port, provider, logins, tokens = (served.dashboard_port, served.provider,
                                            served.logins, served.tokens)
dashboard = served.dashboard

PHONE = {"viewport": {"width": 390, "height": 844}}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
SIZES = {"1280x800": DESKTOP, "390x844": PHONE}
SCREENS = Path(__file__).resolve().parents[2] / "docs" / "screens"
NAMES = ["Kesha Popug", "Gosha Parrot", "Rio Macaw", "Zazu Hornbill", "Polly Cockatoo"]
TITLES = ["Feed the parrots", "Clean the cage", "Fix the perch", "Sort the millet",
          "Polish the bell", "Tune the radio", "Count the feathers", "Wash the bowl"]


def two_weeks_of_activity(seed: int = 7) -> tuple[list[Event], dict[str, str]]:
    """Named popugs earning and paying for tasks over two weeks, each day closed."""
    rng = random.Random(seed)
    popugs = {name: new_id() for name in NAMES}
    events: list[Event] = [account_state(i, name) for name, i in popugs.items()]
    balances = dict.fromkeys(popugs.values(), 0)
    for offset in range(13, -1, -1):
        day = DAY - timedelta(days=offset)
        for n in range(rng.randint(2, 5)):
            task_id, popug = new_id(), rng.choice(list(popugs.values()))
            fee, reward = rng.randint(1000, 2000), rng.randint(2000, 4000)
            balances[popug] -= fee
            events += [
                task_state(task_id, rng.choice(TITLES), f"UBERPOP-{offset * 10 + n}"),
                priced(task_id, reward, fee, day),
                transaction(popug, "fee", fee, balances[popug], day, at(day, 9, n), task_id),
            ]
            if rng.random() < 0.4:
                balances[popug] += reward
                events += [completed(task_id, at(day, 15, n), popug),
                           transaction(popug, "reward", reward, balances[popug], day,
                                       at(day, 15, n), task_id)]
        if offset:
            events.append(day_closed(day))
    return events, popugs


@pytest.fixture
def history(project) -> dict[str, str]:
    events, popugs = two_weeks_of_activity()
    project(*events)
    return popugs


def sign_in(page: Page, login) -> None:
    page.fill("#email", login.email)
    page.fill("#password", login.password)
    page.get_by_role("button", name="Sign in").click()


def assert_fits(page: Page, width: int) -> None:
    scrolled = page.evaluate("document.documentElement.scrollWidth")
    assert scrolled <= width, f"{page.url} scrolls sideways ({scrolled}px wide)"


def test_an_admin_sees_names_in_the_shared_frame(dashboard, logins, provider, browser_context,
                                                 history):
    page = browser_context(**DESKTOP).new_page()
    page.goto(f"{dashboard}/")
    sign_in(page, logins["admin"])
    expect(page.get_by_role("heading", level=1)).to_have_text("Analytics")

    negative = page.locator("#negative-balances")
    for name, account_id in history.items():
        assert account_id not in negative.inner_text(), name
    shown = negative.get_by_role("link").all_inner_texts()
    assert shown and set(shown) <= set(history)

    nav = page.get_by_role("navigation", name="Main")
    for title, service in (("Tasks", "tasks"), ("Accounting", "accounting"),
                           ("Analytics", "analytics")):
        expect(nav.get_by_role("link", name=title, exact=True)).to_have_attribute(
            "href", dashboard_url(service))
    expect(nav.locator("[aria-current]")).to_have_text("Analytics")
    expect(page.locator("header .who")).to_have_text("Admin Popug (admin)")
    stylesheets = page.locator("link[rel=stylesheet]").evaluate_all("ls => ls.map(l => l.href)")
    assert stylesheets == [f"{dashboard}/static/dashboard.css",
                           f"{dashboard}/static/analytics.css"]
    icon = page.locator("link[rel=icon]").get_attribute("href")
    favicon = httpx.get(f"{dashboard}{icon}")
    assert favicon.status_code == 200
    assert favicon.headers["content-type"].startswith("image/svg+xml")
    assert page.get_by_role("img", name="Management earnings and negative balances per day"
                            ).count() == 1
    assert_accessible(page, "analytics: the dashboard on a desktop")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{provider.url.rstrip('/')}/oauth/logout**")


def test_every_state_of_the_page_passes_axe(dashboard, logins, browser_context, project,
                                            engine):
    admin = browser_context(**PHONE).new_page()
    admin.goto(f"{dashboard}/")
    sign_in(admin, logins["admin"])
    expect(admin.locator("#history")).to_contain_text("No figures yet")
    assert_accessible(admin, "analytics: before any figures, on a phone")

    events, _ = two_weeks_of_activity(seed=11)
    project(*events, transaction(new_id(), "fee", 900, -900))  # one popug without a name yet
    admin.reload()
    expect(admin.locator("svg.chart")).to_be_visible()
    assert_accessible(admin, "analytics: the dashboard on a phone")
    assert_fits(admin, 390)

    admin.goto(f"{dashboard}/?date=2026-02-30")
    expect(admin.get_by_role("alert")).to_contain_text("date must be a date like")
    assert_accessible(admin, "analytics: a date that does not exist")

    worker = browser_context(**PHONE).new_page()
    worker.goto(f"{dashboard}/")
    sign_in(worker, logins["worker"])
    expect(worker.get_by_role("heading", level=1)).to_have_text("Not allowed")
    assert worker.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Analytics").count() == 0
    assert_accessible(worker, "analytics: refused to a worker")


def test_screens_of_the_analytics_page(dashboard, logins, browser_context, history, tmp_path):
    """Writes docs/screens/analytics-*.png when ATES_WRITE_SCREENS is set, else to a
    temporary folder; either way the page fits its screen."""
    folder = SCREENS if os.environ.get("ATES_WRITE_SCREENS") else tmp_path
    for size, options in SIZES.items():
        page = browser_context(**options).new_page()
        page.goto(f"{dashboard}/")
        sign_in(page, logins["admin"])
        expect(page.locator("svg.chart")).to_be_visible()
        screenshot = folder / f"analytics-{size}.png"
        page.screenshot(path=str(screenshot), full_page=True)
        assert screenshot.stat().st_size > 1000
        assert_fits(page, options["viewport"]["width"])
