"""The board in a real browser (Chromium) on a phone-sized screen, signed in through SSO."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.auth.support import People, Person
from tests.tasks.support import feed_replica

PHONE = {"viewport": {"width": 390, "height": 844}}


def sign_in(page: Page, person: Person) -> None:
    """Fill in the provider's login form the dashboard sent the browser to."""
    page.fill("#email", person.login.email)
    page.fill("#password", person.login.password)
    page.get_by_role("button", name="Sign in").click()


def create_task(page: Page, title: str, jira_id: str = "", description: str = "") -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="New task").click()
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
    sign_in(worker, people.worker)
    expect(worker.get_by_role("heading", level=1)).to_have_text("My tasks")
    worker.get_by_role("link", name="New task").first.click()
    worker.fill("#title", "[UBERPOP-7] Feed the parrots")
    worker.get_by_role("button", name="Create task").click()
    expect(worker.get_by_role("alert")).to_contain_text("Title must not contain [ or ]")
    assert_fits_a_phone(worker, tmp_path / "new-task.png")
    create_task(worker, "Feed the parrots", "uberpop-7", "Millet and fresh water, twice a day.")
    expect(worker.locator("dl")).to_contain_text("Kesha Worker")
    worker.get_by_role("link", name="My tasks").first.click()
    worker.get_by_role("button", name="Complete").click()
    expect(worker.get_by_role("status")).to_have_text("Task done: millet in the bowl.")
    create_task(worker, "Clean the cage with a very long title that has to wrap on a phone")
    worker.goto(f"{tasks_url}/?status=all")
    expect(worker.locator(".task")).to_have_count(2)
    expect(worker.locator(".status.done")).to_contain_text("millet in a bowl")
    assert_fits_a_phone(worker, tmp_path / "my-tasks.png")

    manager = browser_context(**PHONE).new_page()
    manager.goto(f"{tasks_url}/all")
    sign_in(manager, people.manager)
    manager.get_by_role("link", name="Reshuffle").click()
    expect(manager.get_by_role("heading", level=1)).to_have_text("Reshuffle open tasks?")
    assert_fits_a_phone(manager, tmp_path / "reshuffle.png")
    manager.get_by_role("button", name="Yes, reshuffle").click()

    expect(manager.get_by_role("status")).to_have_text(
        "Reshuffle done. Open tasks handed out again: 1.")
    assert_fits_a_phone(manager, tmp_path / "all-tasks.png")
