"""The board in a real browser (Chromium) on a phone-sized screen, signed in through SSO."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.auth.support import People, Person
from tests.axe import assert_accessible
from tests.tasks.support import feed_replica

PHONE = {"viewport": {"width": 390, "height": 844}}


def sign_in(page: Page, person: Person) -> None:
    """Fill in the provider's login form the dashboard sent the browser to."""
    page.fill("#email", person.login.email)
    page.fill("#password", person.login.password)
    page.get_by_role("button", name="Sign in").click()


def create_task(page: Page, title: str, jira_id: str = "", description: str = "") -> None:
    page.get_by_role("navigation", name="Tasks pages").get_by_role("link", name="New task").click()
    page.fill("#title", title)
    page.fill("#jira-id", jira_id)
    page.fill("#description", description)
    page.get_by_role("button", name="Create task").click()
    expect(page.get_by_role("status")).to_have_text("Task created.")


def assert_fits_a_phone(page: Page, screenshot: Path) -> None:
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 1000
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{page.url} scrolls sideways on a phone ({width}px wide)"


def test_a_worker_completes_a_task_and_a_manager_reshuffles(tasks_url, engine, sessions,
                                                            people: People, browser_context,
                                                            tmp_path):
    feed_replica(sessions, people.worker, people.manager)  # the worker gets every task
    worker = browser_context(**PHONE).new_page()

    worker.goto(f"{tasks_url}/")
    assert_accessible(worker, "the provider's sign-in page")
    sign_in(worker, people.worker)
    expect(worker.get_by_role("heading", level=1)).to_have_text("My tasks")
    assert_accessible(worker, "no tasks yet")
    worker.get_by_role("link", name="New task").first.click()
    worker.fill("#title", "[UBERPOP-7] Feed the parrots")
    worker.get_by_role("button", name="Create task").click()
    expect(worker.get_by_role("alert")).to_contain_text("Title must not contain [ or ]")
    assert_accessible(worker, "the new task form refusing a title")
    assert_fits_a_phone(worker, tmp_path / "new-task.png")
    create_task(worker, "Feed the parrots", "uberpop-7", "Millet and fresh water, twice a day.")
    expect(worker.locator("section.card dl")).to_contain_text("Kesha Worker")
    assert_accessible(worker, "a new task's page")
    worker.get_by_role("link", name="My tasks").first.click()
    assert_accessible(worker, "my tasks")
    worker.get_by_role("button", name="Complete").click()
    expect(worker.get_by_role("status")).to_have_text("Task done: millet in the bowl.")
    assert_accessible(worker, "my tasks after completing one")
    create_task(worker, "Clean the cage with a very long title that has to wrap on a phone")
    worker.goto(f"{tasks_url}/?status=all")
    expect(worker.locator(".task")).to_have_count(2)
    expect(worker.locator(".status.done")).to_contain_text("millet in a bowl")
    assert_accessible(worker, "all my tasks")
    assert_fits_a_phone(worker, tmp_path / "my-tasks.png")
    worker.goto(f"{tasks_url}/?view=board")
    assert_accessible(worker, "my board")
    worker.goto(f"{tasks_url}/no/such/page")
    expect(worker.get_by_role("heading", level=1)).to_have_text("Page not found")
    assert_accessible(worker, "an unknown page")

    manager = browser_context(**PHONE).new_page()
    manager.goto(f"{tasks_url}/all")
    sign_in(manager, people.manager)
    manager.get_by_role("link", name="Reshuffle").click()
    expect(manager.get_by_role("heading", level=1)).to_have_text("Reshuffle open tasks?")
    assert_accessible(manager, "the reshuffle page")
    assert_fits_a_phone(manager, tmp_path / "reshuffle.png")
    manager.get_by_role("button", name="Yes, reshuffle").click()

    expect(manager.get_by_role("status")).to_have_text(
        "Reshuffle done. Open tasks handed out again: 1.")
    assert_accessible(manager, "all tasks after a reshuffle")
    assert_fits_a_phone(manager, tmp_path / "all-tasks.png")
    manager.goto(f"{tasks_url}/all?q=parrots&assignee=Kesha&sort=title&view=board")
    assert_accessible(manager, "a search on the board")


DESKTOP = {"viewport": {"width": 1280, "height": 800}}
LIVE_DEADLINE_MS = 2000  # how long the other browser may take to show a change


def wait_until_live(page: Page) -> None:
    """The page's event stream is open: what happens from now on reaches it."""
    expect(page.locator("html")).to_have_attribute("data-live", "on")


def test_changes_appear_on_the_other_browsers_without_a_reload(tasks_url, engine, sessions,
                                                               people: People, browser_context):
    feed_replica(sessions, people.worker, people.manager)
    board = browser_context(**DESKTOP).new_page()
    board.goto(f"{tasks_url}/all?view=board")
    sign_in(board, people.manager)
    expect(board.get_by_role("heading", level=1)).to_have_text("All tasks")
    wait_until_live(board)
    worker = browser_context(**PHONE).new_page()
    worker.goto(f"{tasks_url}/")
    sign_in(worker, people.worker)

    create_task(worker, "Feed the parrots", "UBERPOP-7")
    expect(board.locator(".column.open")).to_contain_text("Feed the parrots",
                                                         timeout=LIVE_DEADLINE_MS)
    wait_until_live(worker)  # now on the new task's page

    reshuffling = board.context.new_page()
    reshuffling.goto(f"{tasks_url}/reshuffle")
    reshuffling.get_by_role("button", name="Yes, reshuffle").click()
    expect(reshuffling.get_by_role("status")).to_contain_text("Reshuffle done.")
    expect(worker.locator(".history")).to_contain_text("Reshuffled by Mona Manager",
                                                       timeout=LIVE_DEADLINE_MS)

    worker.get_by_role("link", name="My tasks").first.click()
    worker.get_by_role("button", name="Complete").click()
    expect(worker.get_by_role("status")).to_have_text("Task done: millet in the bowl.")
    expect(board.locator(".column.done")).to_contain_text("Feed the parrots",
                                                         timeout=LIVE_DEADLINE_MS)
    expect(board.locator(".column.open")).not_to_contain_text("Feed the parrots")
    assert board.url.endswith("/all?view=board")  # never reloaded


def test_keyboard_shortcuts_open_help_search_and_a_new_task(tasks_url, engine, sessions,
                                                            people: People, browser_context):
    feed_replica(sessions, people.worker)
    page = browser_context(**DESKTOP).new_page()
    page.goto(f"{tasks_url}/all")
    sign_in(page, people.worker)
    create_task(page, "Feed the parrots")
    page.goto(f"{tasks_url}/all")

    page.keyboard.press("?")
    help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(help_dialog).to_be_visible()
    expect(help_dialog).to_contain_text("New task")
    assert_accessible(page, "the keyboard shortcuts help")
    page.keyboard.press("Escape")
    expect(help_dialog).to_be_hidden()

    page.keyboard.press("/")
    expect(page.locator("#q")).to_be_focused()
    page.keyboard.type("c parrots")  # typing into a field is no shortcut
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/all\?q=c\+parrots&"))
    expect(page.locator(".total")).to_have_text("0 tasks")
    page.locator("h1").click()

    page.keyboard.press("c")
    expect(page.get_by_role("heading", level=1)).to_have_text("New task")
    expect(page.locator("#title")).to_be_focused()
    page.locator("h1").click()
    page.keyboard.press("/")  # no search here: the list's search opens
    expect(page.locator("#q")).to_be_focused()
    expect(page).to_have_url(f"{tasks_url}/all#q")
