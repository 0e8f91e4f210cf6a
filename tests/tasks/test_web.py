"""The board's pages through single sign-on, driven by a browser-like HTTP client."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from auth_client.token_flow import hidden_inputs
from tasks import consumers, service
from tasks.web import PAGE_SIZE
from tests.auth.support import Browsers, People, Person
from tests.security_headers import assert_secured
from tests.tasks.conftest import all_tasks, commands, count_rows, last_outbox_row, stored_events
from tests.tasks.support import OTHER_DASHBOARDS, create_via_api, feed_replica


@pytest.fixture
def board(tasks_url, engine) -> str:
    """The tasks app, its database emptied for this test."""
    return tasks_url


@pytest.fixture
def browsers() -> Iterator[Browsers]:
    with Browsers() as opened:
        yield opened


def form_token(page: httpx.Response) -> str:
    return hidden_inputs(page.text)["csrf_token"]


def text_of(page: httpx.Response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text)))


@pytest.fixture
def only_worker_eligible(sessions, people: People) -> Person:
    feed_replica(sessions, people.worker, people.manager, people.admin)
    return people.worker


# -- signing in and looking around --------------------------------------------------------


def test_anonymous_browsers_are_sent_to_sign_in_and_change_nothing(board, engine):
    page = httpx.get(f"{board}/all?status=done")
    post = httpx.post(f"{board}/new", data={"title": "Fix"})

    assert page.status_code == post.status_code == 303
    assert page.headers["location"] == "/auth/login?next=%2Fall%3Fstatus%3Ddone"
    assert count_rows(engine, "tasks") == 0


def test_my_tasks_show_my_open_tasks_with_a_complete_button(board, browsers, people,
                                                            only_worker_eligible):
    task = create_via_api(board, people.manager, "Feed the parrots", jira_id="UBERPOP-7")

    _, page = browsers.sign_in(board, people.worker)

    assert "<h1>My tasks</h1>" in page.text
    assert "UBERPOP-7" in page.text and "Feed the parrots" in page.text
    assert "bird in a cage" in page.text and "assignee: Kesha Worker" in page.text
    assert f'action="/tasks/{task["id"]}/complete"' in page.text
    assert 'action="/auth/logout"' in page.text
    assert f'href="{OTHER_DASHBOARDS["ATES_ACCOUNTING_URL"]}"' in page.text
    assert OTHER_DASHBOARDS["ATES_ANALYTICS_URL"] not in page.text  # admins only
    assert 'href="/reshuffle"' not in page.text
    assert page.headers["cache-control"] == "no-store"


def test_every_asset_is_served_by_the_service(board, browsers, people, only_worker_eligible):
    _, page = browsers.sign_in(board, people.admin, "/all")

    assets = re.findall(r'(?:src|href)="([^"]+\.(?:css|js|svg|png|woff2?))"', page.text)
    responses = [httpx.get(f"{board}{asset}") for asset in assets]

    assert assets and all(asset.startswith("/static/") for asset in assets)
    assert all(response.status_code == 200 for response in responses)
    assert httpx.get(f"{board}/static/tasks.css").headers["content-type"].startswith("text/css")
    assert f'href="{OTHER_DASHBOARDS["ATES_ANALYTICS_URL"]}"' in page.text


def test_the_lists_page_and_filter(board, browsers, sessions, tasks_settings, people,
                                   only_worker_eligible):
    manager = service.Actor(uuid.UUID(people.manager.id), "manager")
    titles = [f"Task {n}" for n in range(PAGE_SIZE + 1)]
    for title in titles:
        commands(sessions, tasks_settings).create_task(manager, title)
    browser, first = browsers.sign_in(board, people.accountant, "/all")

    next_url = re.search(r'href="([^"]+)">Next page', first.text).group(1)
    second = browser.get(f"{board}{html.unescape(next_url)}")
    done = browser.get(f"{board}/all?status=done")
    mine = browser.get(f"{board}/")

    assert re.findall(r"Task \d+", text_of(first)) == titles[:0:-1]
    assert re.findall(r"Task \d+", text_of(second)) == ["Task 0"]
    assert "First page" in second.text and "Next page" not in second.text
    assert "No tasks here." in done.text and "No tasks here." in mine.text


@pytest.mark.parametrize("path", ["/all?status=closed", "/?cursor=nonsense"])
def test_bad_filters_and_cursors_show_an_error_page(board, browsers, people, path):
    browser, _ = browsers.sign_in(board, people.worker)

    page = browser.get(f"{board}{path}")

    assert page.status_code == 422 and 'class="button"' in page.text


@pytest.mark.parametrize("path", [f"/tasks/{uuid.uuid4()}", "/tasks/42"])
def test_unknown_tasks_show_a_not_found_page(board, browsers, people, path):
    browser, _ = browsers.sign_in(board, people.worker)

    page = browser.get(f"{board}{path}")

    assert page.status_code == 404 and "<h1>Not found</h1>" in page.text


def test_every_page_and_answer_carries_the_security_headers(board, browsers, people,
                                                            auth_provider):
    browser, _ = browsers.sign_in(board, people.worker)
    anonymous = httpx.get(f"{board}/")
    pages = [browser.http.get(f"{board}{path}") for path in ("/", "/all", "/new", "/nowhere")]
    api = httpx.get(f"{board}/api/tasks", headers=people.worker.headers)

    for response in (anonymous, *pages, api):
        assert_secured(response)
    assert_secured(httpx.get(f"{board}/static/tasks.css"), cacheable=True)
    assert_secured(httpx.get(f"{board}/auth/frontchannel-logout"),
                   framed_by=auth_provider.url.rstrip("/"))


# -- creating -----------------------------------------------------------------------------


def test_the_form_creates_a_task_and_shows_it(board, engine, browsers, people,
                                              only_worker_eligible):
    browser, form = browsers.sign_in(board, people.manager, "/new")

    created = browser.http.post(f"{board}/new", data={
        "csrf_token": form_token(form), "title": "Feed the parrots", "jira_id": "uberpop-7",
        "description": "Millet,\r\nwater."})
    page = browser.follow(created)

    [task] = all_tasks(engine)
    assert created.status_code == 303
    assert created.headers["location"] == f"/tasks/{task.public_id}"
    assert (task.title, task.jira_id, task.description) == (
        "Feed the parrots", "UBERPOP-7", "Millet,\nwater.")
    assert "Task created." in page.text and "Kesha Worker" in page.text
    assert 'action="/tasks/' not in page.text  # the manager is not the assignee


@pytest.mark.parametrize("fields, message, status", [
    ({"title": "[UBERPOP-7] Feed the parrots"}, "Title must not contain [ or ]", 422),
    ({"title": "Feed", "jira_id": "parrots"}, "Jira_id must look like UBERPOP-42", 422),
    ({"title": "  "}, "Title is required.", 422),
])
def test_form_errors_are_shown_on_the_form_and_store_nothing(board, engine, browsers, people,
                                                             only_worker_eligible, fields,
                                                             message, status):
    browser, form = browsers.sign_in(board, people.worker, "/new")
    fields = {"jira_id": "", "description": "Keep <this>"} | fields

    page = browser.http.post(f"{board}/new", data={"csrf_token": form_token(form), **fields})

    assert page.status_code == status
    assert message in text_of(page)
    assert "Keep &lt;this&gt;</textarea>" in page.text
    assert f'value="{html.escape(fields["title"])}"' in page.text
    assert count_rows(engine, "tasks") == count_rows(engine, "outbox") == 0


@pytest.mark.parametrize("field", ["title", "jira_id", "description"])
def test_a_nul_character_in_the_form_is_refused_and_stores_nothing(board, engine, browsers,
                                                                   people, only_worker_eligible,
                                                                   field):
    browser, form = browsers.sign_in(board, people.worker, "/new")
    fields = {"title": "Feed the parrots", "jira_id": "", "description": ""}
    fields[field] = "UBERPOP-7\x00"

    page = browser.http.post(f"{board}/new", data={"csrf_token": form_token(form), **fields})

    assert page.status_code == 422
    name = field.capitalize()
    assert f"{name} must not contain NUL characters or lone surrogates." in text_of(page)
    assert "UBERPOP-7\ufffd" in page.text  # shown back, without the character
    assert count_rows(engine, "tasks") == count_rows(engine, "outbox") == 0


def test_a_nul_character_in_a_page_address_is_refused(board, browsers, people):
    browser, _ = browsers.sign_in(board, people.worker)

    page = browser.http.get(f"{board}/all?status=open%00")

    assert page.status_code == 400
    assert "must not contain NUL characters" in page.json()["detail"]


def test_a_deactivated_account_is_sent_to_sign_in_again(board, browsers, sessions, people,
                                                        only_worker_eligible):
    browser, _ = browsers.sign_in(board, people.worker)
    with sessions() as session, session.begin():
        consumers.apply_account_state(
            session, people.worker.uuid, email=people.worker.login.email,
            full_name=people.worker.name, role="worker", active=False, version=2)

    page = browser.http.get(f"{board}/")

    assert page.status_code == 303
    assert page.headers["location"] == "/auth/login?next=%2F"


def test_without_eligible_assignee_the_form_says_so(board, engine, browsers, sessions, people):
    feed_replica(sessions, people.manager)
    browser, form = browsers.sign_in(board, people.manager, "/new")

    page = browser.http.post(f"{board}/new", data={"csrf_token": form_token(form),
                                                   "title": "Feed the parrots"})

    assert page.status_code == 409 and "No one can take the task" in page.text
    assert count_rows(engine, "tasks") == 0


# -- completing and reshuffling ------------------------------------------------------------


def test_the_complete_button_completes_my_task(board, browsers, people, only_worker_eligible):
    task = create_via_api(board, people.manager, "Feed the parrots")
    browser, page = browsers.sign_in(board, people.worker)

    completed = browser.http.post(f"{board}/tasks/{task['id']}/complete",
                                  data={"csrf_token": form_token(page)})
    after = browser.follow(completed)
    done = browser.get(f"{board}/?status=done")

    assert completed.headers["location"] == "/"
    assert "Task done: millet in the bowl." in after.text
    assert "Feed the parrots" not in after.text  # no longer among my open tasks
    assert "Feed the parrots" in done.text and "millet in a bowl" in done.text
    body = httpx.get(f"{board}/api/tasks/{task['id']}", headers=people.worker.headers).json()
    assert body["status"] == "done"


def test_completing_someone_elses_or_a_done_task_is_refused(board, browsers, people,
                                                            only_worker_eligible):
    task = create_via_api(board, people.manager, "Feed the parrots")
    url = f"{board}/tasks/{task['id']}/complete"
    stranger, strangers_page = browsers.sign_in(board, people.other_worker, "/new")
    assignee, assignees_page = browsers.sign_in(board, people.worker)

    refused = stranger.http.post(url, data={"csrf_token": form_token(strangers_page)})
    # Completed elsewhere (another tab, the API) while the page still shows the button.
    httpx.post(f"{board}/api/tasks/{task['id']}/complete", headers=people.worker.headers)
    twice = assignee.http.post(url, data={"csrf_token": form_token(assignees_page)})

    assert refused.status_code == 403
    assert "Only the current assignee may complete task" in refused.text
    assert twice.status_code == 409 and "is already done" in twice.text


def test_reshuffle_asks_for_confirmation_first(board, engine, browsers, people,
                                               only_worker_eligible):
    for title in ("Feed the parrots", "Clean the cage"):
        create_via_api(board, people.worker, title)
    browser, all_page = browsers.sign_in(board, people.manager, "/all")
    assert 'href="/reshuffle"' in all_page.text

    confirmation = browser.get(f"{board}/reshuffle")
    before = last_outbox_row(engine)
    reshuffled = browser.http.post(f"{board}/reshuffle",
                                   data={"csrf_token": form_token(confirmation)})
    after = browser.follow(reshuffled)

    assert "Reshuffle open tasks?" in confirmation.text
    assert "<strong>2</strong>" in confirmation.text
    assert len(stored_events(engine, before)) == 4
    assert reshuffled.headers["location"] == "/all"
    assert "Reshuffle done. Open tasks handed out again: 2." in after.text
    assert "Reshuffle done" not in browser.get(f"{board}/all").text  # shown once


def test_a_link_cannot_make_a_page_announce_what_did_not_happen(board, browsers, people,
                                                                only_worker_eligible):
    browser, _ = browsers.sign_in(board, people.manager, "/all")

    page = browser.get(f"{board}/all?notice=reshuffled&count=999999")
    browser.http.cookies.set("ates_tasks_csrf_notice", "Hacked")
    forged_cookie = browser.get(f"{board}/all")

    assert page.status_code == 200
    assert "999999" not in page.text and "Reshuffle done" not in page.text
    assert 'class="notice"' not in page.text
    assert "Hacked" not in forged_cookie.text


@pytest.mark.parametrize("role", ["worker", "accountant"])
def test_only_admins_and_managers_may_reshuffle(board, engine, browsers, people,
                                                only_worker_eligible, role):
    create_via_api(board, people.worker, "Feed the parrots")
    browser, page = browsers.sign_in(board, getattr(people, role), "/new")
    before = last_outbox_row(engine)

    confirmation = browser.get(f"{board}/reshuffle")
    forced = browser.http.post(f"{board}/reshuffle", data={"csrf_token": form_token(page)})

    assert confirmation.status_code == forced.status_code == 403
    assert "Only admins and managers may reshuffle tasks." in forced.text
    assert last_outbox_row(engine) == before


# -- forgery --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/new", "/tasks/{task}/complete", "/reshuffle"])
def test_forms_without_this_browsers_token_are_refused(board, engine, browsers, people,
                                                       only_worker_eligible, path):
    task = create_via_api(board, people.manager, "Feed the parrots")
    url = f"{board}{path.format(task=task['id'])}"
    victim, _ = (browsers.sign_in(board, people.admin, "/all") if path == "/reshuffle"
                 else browsers.sign_in(board, people.worker))
    _, attackers_page = browsers.sign_in(board, people.other_worker, "/new")
    before = last_outbox_row(engine)

    missing = victim.http.post(url, data={"title": "Forged"})
    foreign = victim.http.post(url, data={"title": "Forged",
                                          "csrf_token": form_token(attackers_page)})
    forged = victim.http.post(url, data={"title": "Forged", "csrf_token": "forged"})

    assert [r.status_code for r in (missing, foreign, forged)] == [403] * 3
    assert "Form expired" in missing.text
    assert last_outbox_row(engine) == before
    assert [t.status for t in all_tasks(engine)] == ["open"]


def test_sign_out_goes_through_the_provider(board, browsers, people, auth_provider):
    browser, page = browsers.sign_in(board, people.worker)

    signed_out = browser.http.post(f"{board}/auth/logout")

    assert signed_out.status_code == 303
    assert signed_out.headers["location"].startswith(f"{auth_provider.url}/oauth/logout")
    assert browser.http.get(f"{board}/").status_code == 303


# -- finding tasks ----------------------------------------------------------------------


def test_managers_and_admins_land_on_all_tasks(board, browsers, people, only_worker_eligible):
    for person in (people.manager, people.admin):
        browser, page = browsers.sign_in(board, person, "/all")
        landing = browser.http.get(f"{board}/?status=done")
        assert landing.status_code == 303
        assert landing.headers["location"] == "/all?status=done"
        assert '>My tasks</a>' not in page.text
    _, workers_page = browsers.sign_in(board, people.worker)
    assert "<h1>My tasks</h1>" in workers_page.text
    assert '<a href="/" aria-current="page">My tasks</a>' in workers_page.text


def test_the_page_searches_filters_sorts_and_keeps_them_across_pages(
        board, browsers, sessions, tasks_settings, people, only_worker_eligible):
    manager = service.Actor(uuid.UUID(people.manager.id), "manager")
    worker = service.Actor(uuid.UUID(people.worker.id), "worker")
    for n in range(PAGE_SIZE + 2):
        commands(sessions, tasks_settings).create_task(manager, f"Parrot {n:02}")
    commands(sessions, tasks_settings).create_task(worker, "Cage", "UBERPOP-9", "Fresh millet")
    browser, page = browsers.sign_in(board, people.accountant, "/all")
    assert "23 tasks" in text_of(page)

    found = browser.get(f"{board}/all?q=millet")
    by_id = browser.get(f"{board}/all?q=uberpop-9")
    by_creator = browser.get(f"{board}/all?creator=kesha")
    by_assignee = browser.get(f"{board}/all?assignee=Kesha+Worker&q=Parrot+0")
    nobody = browser.get(f"{board}/all?assignee=Gosha")
    by_title = browser.get(f"{board}/all?q=parrot&sort=oldest")

    assert re.findall(r"Parrot \d+|Cage", text_of(found)) == ["Cage"]
    assert "1 task" in text_of(found) and 'value="millet"' in found.text
    assert re.findall(r"Parrot \d+|Cage", text_of(by_id)) == ["Cage"]
    assert re.findall(r"Parrot \d+|Cage", text_of(by_creator)) == ["Cage"]
    assert re.findall(r"Parrot \d+", text_of(by_assignee)) == [
        f"Parrot {n:02}" for n in range(9, -1, -1)]
    assert "0 tasks" in text_of(nobody) and "No tasks here." in nobody.text
    titles = re.findall(r"Parrot \d+", text_of(by_title))
    assert titles == [f"Parrot {n:02}" for n in range(PAGE_SIZE)]
    assert "22 tasks" in text_of(by_title)
    next_url = html.unescape(re.search(r'href="([^"]+)">Next page', by_title.text).group(1))
    assert "q=parrot" in next_url and "sort=oldest" in next_url
    rest = browser.get(f"{board}{next_url}")
    assert re.findall(r"Parrot \d+", text_of(rest)) == ["Parrot 20", "Parrot 21"]


@pytest.mark.parametrize("query", ["sort=random", "view=table", f"q={'x' * 201}"])
def test_unknown_sorts_views_and_overlong_searches_show_an_error_page(board, browsers, people,
                                                                      query):
    browser, _ = browsers.sign_in(board, people.worker)
    page = browser.get(f"{board}/all?{query}")
    assert page.status_code == 422 and "Unknown filter" in page.text


def test_the_board_view_shows_a_column_per_status(board, browsers, sessions, tasks_settings,
                                                  people, only_worker_eligible):
    worker = service.Actor(uuid.UUID(people.worker.id), "worker")
    done = commands(sessions, tasks_settings).create_task(worker, "Done already")
    commands(sessions, tasks_settings).complete_task(worker, done.id)
    commands(sessions, tasks_settings).create_task(worker, "Still open")
    browser, _ = browsers.sign_in(board, people.worker)

    page = browser.get(f"{board}/all?view=board")

    columns = re.findall(r'<section class="column (\w+)"(.*?)</section>', page.text, re.S)
    assert [(name, re.findall(r"Done already|Still open", body)) for name, body in columns] == [
        ("open", ["Still open"]), ("done", ["Done already"])]
    assert "Open · 1 task" in text_of(page) and "Done · 1 task" in text_of(page)
    assert 'aria-current="page">Board' in page.text
    searched = browser.get(f"{board}/all?view=board&q=still")
    assert "Done already" not in searched.text and "Still open" in searched.text


def test_the_task_page_shows_its_history(board, browsers, sessions, tasks_settings, people,
                                         only_worker_eligible):
    manager = service.Actor(uuid.UUID(people.manager.id), "manager")
    task = commands(sessions, tasks_settings).create_task(manager, "Feed the parrots")
    commands(sessions, tasks_settings).reshuffle(manager)
    commands(sessions, tasks_settings).complete_task(
        service.Actor(uuid.UUID(people.worker.id), "worker"), task.id)
    browser, _ = browsers.sign_in(board, people.worker)

    page = text_of(browser.get(f"{board}/tasks/{task.id}"))

    history = page[page.index("History"):]
    assert re.findall(r"(Created by|Reshuffled by|Completed by) ([A-Z]\w+ \w+)", history) == [
        ("Created by", "Mona Manager"), ("Reshuffled by", "Mona Manager"),
        ("Completed by", "Kesha Worker")]
    assert "assigned to Kesha Worker" in history and "from Kesha Worker to Kesha Worker" in history


def test_the_pages_load_the_shortcuts_script_and_work_without_it(board, browsers, people,
                                                                 only_worker_eligible):
    browser, page = browsers.sign_in(board, people.worker)
    script = httpx.get(f"{board}/static/board.js")

    assert '<script src="/static/board.js" defer></script>' in page.text
    assert "<script>" not in page.text  # nothing inline: the CSP allows none
    assert script.status_code == 200 and "EventSource" in script.text
    assert '<form class="search" method="get" action="/"' in page.text

