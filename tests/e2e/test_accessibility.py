"""The pages of the running platform pass axe-core in every state, as each role sees them."""

from __future__ import annotations

import pytest

from tests.axe import axe_violations, describe

MANAGER = "manager@popug.inc"
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


@pytest.mark.parametrize("service", ["auth", "tasks"])
def test_error_pages(platform, open_page, browser_context, service):
    audit = Audit(open_page(ADMIN))
    audit.visit(f"{platform.url(service)}/no/such/page", f"{service}: 404 signed in")
    anonymous = Audit(browser_context().new_page())
    anonymous.page.set_default_timeout(PAGE_TIMEOUT_MS)
    anonymous.visit(f"{platform.url(service)}/no/such/page", f"{service}: 404")
    audit.assert_clean()
    anonymous.assert_clean()
