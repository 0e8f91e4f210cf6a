"""Every page state of the running platform passes axe-core, as each role sees it; and the
board can be used with the keyboard alone (create, complete, reshuffle)."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.axe import axe_violations, describe

MANAGER = "manager@popug.inc"
ACCOUNTANT = "accountant@popug.inc"
ADMIN = "admin@popug.inc"
WORKER = "worker1@popug.inc"
NO_SUCH_TASK = "00000000-0000-4000-8000-000000000000"
# Pages of the whole platform on a busy machine may take a while.
PAGE_TIMEOUT_MS = 120_000


class Audit:
    """Runs axe on page after page and keeps every violation, to report them all at once."""

    def __init__(self, page):
        self.page = page
        self.failures: list[str] = []

    def visit(self, url: str, context: str) -> None:
        self.page.goto(url)
        self.check(context)

    def check(self, context: str) -> None:
        self.page.wait_for_load_state("load")
        violations = axe_violations(self.page)
        if violations:
            self.failures.append(f"{context} ({self.page.url}):\n{describe(violations)}")

    def assert_clean(self) -> None:
        assert not self.failures, "\n\n".join(self.failures)


def sign_in(page, platform, email: str, start: str) -> None:
    """Through the provider's sign-in page, starting at ``start`` (a dashboard's page)."""
    page.goto(start)
    page.fill("#email", email)
    page.fill("#password", platform.passwords[email])
    page.press("#password", "Enter")
    page.wait_for_url(f"{start.rstrip('/')}/**")


@pytest.fixture
def open_page(platform, browser_context):
    def signed_in(email: str, service: str = "tasks", **options):
        page = browser_context(**options).new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        sign_in(page, platform, email, f"{platform.url(service)}/")
        return page

    return signed_in


@pytest.fixture
def a_task(driver) -> dict:
    return driver.create_task(9001)


def test_the_task_board_in_every_state(platform, open_page, a_task):
    tasks = platform.url("tasks")
    for email in (WORKER, MANAGER):
        audit = Audit(open_page(email))
        for path, state in [
            ("/", "my tasks"), ("/?status=done", "my done tasks"), ("/?view=board", "my board"),
            ("/all", "all tasks"), ("/all?view=board", "the board of all tasks"),
            ("/all?q=cage&sort=title", "a search"), ("/all?q=no+such+words", "no results"),
            ("/all?status=wrong", "an unknown filter"),
            (f"/tasks/{a_task['id']}", "a task and its history"),
            (f"/tasks/{NO_SUCH_TASK}", "a task that does not exist"),
            ("/reshuffle", "the reshuffle page (or its refusal)"), ("/new", "the new task form"),
        ]:
            audit.visit(f"{tasks}{path}", f"{email}: {state}")
        audit.page.fill("#title", "Feed [the] parrots")
        audit.page.press("#title", "Enter")
        audit.check(f"{email}: the new task form refusing a title")
        audit.visit(f"{tasks}/all", f"{email}: all tasks")
        audit.page.keyboard.press("?")
        audit.page.wait_for_selector("#shortcuts[open]")
        audit.check(f"{email}: the keyboard shortcuts help")
        audit.assert_clean()


def test_a_phone_sized_board(platform, open_page, a_task):
    audit = Audit(open_page(MANAGER, viewport={"width": 390, "height": 844},
                            is_mobile=True, has_touch=True))
    for path in ("/all", "/all?view=board", f"/tasks/{a_task['id']}"):
        audit.visit(f"{platform.url('tasks')}{path}", f"phone: {path}")
    audit.assert_clean()


def test_the_providers_pages(platform, browser_context, open_page, driver):
    auth = platform.url("auth")
    anonymous = Audit(browser_context().new_page())
    anonymous.page.set_default_timeout(PAGE_TIMEOUT_MS)
    anonymous.visit(f"{auth}/login", "the sign-in page")
    anonymous.page.fill("#email", WORKER)
    anonymous.page.fill("#password", "not the password")
    anonymous.page.press("#password", "Enter")
    anonymous.check("the sign-in page refusing a password")
    anonymous.visit(f"{auth}/password/forgot", "the forgotten password form")
    anonymous.assert_clean()

    worker = Audit(open_page(WORKER))
    for path, state in [("/", "home"), ("/account/security", "security and sessions")]:
        worker.visit(f"{auth}{path}", f"worker: {state}")
    worker.page.get_by_role("button", name="Set up two-factor sign-in").press("Enter")
    worker.page.wait_for_url(f"{auth}/account/two-factor")
    worker.check("worker: two-factor enrolment")
    worker.visit(f"{auth}/oauth/logout", "the sign-out confirmation")
    worker.page.locator("main").get_by_role("button", name="Sign out").press("Enter")
    worker.page.wait_for_selector("text=You are signed out")
    worker.check("the signed-out page")
    worker.assert_clean()

    account_id = driver.create_account("worker")
    admin = Audit(open_page(ADMIN))
    for path, state in [
        ("/admin/accounts", "accounts"), (f"/admin/accounts/{account_id}", "an account"),
        (f"/admin/accounts/{account_id}/delete", "deleting an account"),
        (f"/admin/accounts/{account_id}/security", "an account's sign-ins"),
        (f"/admin/accounts/{uuid.uuid4()}", "an account that does not exist"),
        ("/admin/two-factor", "roles that must use two-factor sign-in"),
    ]:
        admin.visit(f"{auth}{path}", f"admin: {state}")
    admin.page.goto(f"{auth}/admin/accounts")
    admin.page.fill("#new-email", "not an email address@")
    admin.page.fill("#new-name", "Nobody")
    admin.page.fill("#new-password", "a long enough password")
    admin.page.get_by_role("button", name="Create account").press("Enter")
    admin.check("admin: accounts refusing a new account")
    admin.assert_clean()


@pytest.mark.parametrize("service", ["auth", "tasks", "accounting", "analytics"])
def test_error_pages(platform, open_page, browser_context, service):
    audit = Audit(open_page(ADMIN))
    audit.visit(f"{platform.url(service)}/no/such/page", f"{service}: 404 signed in")
    anonymous = Audit(browser_context().new_page())
    anonymous.page.set_default_timeout(PAGE_TIMEOUT_MS)
    anonymous.visit(f"{platform.url(service)}/no/such/page", f"{service}: 404")
    audit.assert_clean()
    anonymous.assert_clean()


def test_the_accounting_pages(platform, open_page):
    accounting = platform.url("accounting")
    worker = Audit(open_page(WORKER, "accounting"))
    worker.visit(f"{accounting}/", "worker: own account")
    audits = [worker]
    for email in (ACCOUNTANT, ADMIN):
        audits.append(Audit(open_page(email, "accounting")))
        for path in ("/", "/management"):
            audits[-1].visit(f"{accounting}{path}", f"{email}: {path}")
    for audit in audits:
        audit.assert_clean()


def test_the_analytics_pages(platform, open_page):
    audit = Audit(open_page(ADMIN, "analytics"))
    audit.visit(f"{platform.url('analytics')}/", "admin: analytics")
    refused = Audit(open_page(WORKER, "analytics"))
    refused.visit(f"{platform.url('analytics')}/", "worker: analytics refused")
    audit.assert_clean()
    refused.assert_clean()


# -- the keyboard alone -------------------------------------------------------------------


def tab_to(page, selector: str, limit: int = 80) -> None:
    """Press Tab until the element ``selector`` names has the focus."""
    for _ in range(limit):
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reaches {selector} on {page.url}")


def activate(page, selector: str) -> None:
    tab_to(page, selector)
    page.keyboard.press("Enter")
    page.wait_for_load_state("load")


def test_create_complete_and_reshuffle_with_the_keyboard_alone(platform, open_page, api,
                                                               driver, model):
    tasks = platform.url("tasks")
    manager = open_page(MANAGER)
    activate(manager, 'a[href="/new"]')
    manager.wait_for_url(f"{tasks}/new")
    tab_to(manager, "#title")
    manager.keyboard.type("Sweep the perches by keyboard")
    activate(manager, 'main button[type="submit"]')
    manager.wait_for_url(re.compile(r".*/tasks/[0-9a-f-]{36}$"))
    expect(manager.locator("main")).to_contain_text("Task created.")
    task_id = manager.url.rsplit("/", 1)[1]
    assignee_id = api.call(ADMIN, "GET", "tasks", f"/api/tasks/{task_id}").json()["assignee_id"]
    model.assigned(task_id, assignee_id)

    assignee = open_page(model.emails[assignee_id])
    complete = f'form[action="/tasks/{task_id}/complete"] button'
    assignee.goto(f"{tasks}/?q=Sweep+the+perches+by+keyboard")
    activate(assignee, complete)
    expect(assignee.locator("main")).to_contain_text("Task done: millet in the bowl.")
    model.completed(task_id, assignee_id)

    manager.goto(f"{tasks}/all")
    activate(manager, 'a[href="/reshuffle"]')
    manager.wait_for_url(f"{tasks}/reshuffle")
    activate(manager, 'form[action="/reshuffle"] button')
    manager.wait_for_url(f"{tasks}/all")
    expect(manager.locator("main")).to_contain_text("Reshuffle done.")
    for task in api.pages(ADMIN, "tasks", "/api/tasks", status="open", limit=200):
        model.assigned(task["id"], task["assignee_id"])
    driver.tasks_match()
