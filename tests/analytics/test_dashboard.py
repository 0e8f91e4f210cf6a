"""The API and the dashboard with real tokens from a running provider, and in a browser."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import httpx
import pytest

from analytics.app import create_app
from deploy.embedded import free_port
from event_schemas import Event, default_registry
from platform_kit.settings import Settings
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
from tests.auth.support import bearer, dashboard_clients, running_provider
from tests.helpers import serve_app

ROLES = ("admin", "manager", "accountant", "worker")
ENDPOINTS = ("/api/analytics/summary", "/api/analytics/most-expensive-task",
             "/api/analytics/days")
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def dashboard_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def provider(postgres_server, kafka_broker, dashboard_port):
    clients = dashboard_clients({"analytics": dashboard_port})
    with running_provider(postgres_server.url, kafka_broker.bootstrap, clients) as running:
        yield running


@pytest.fixture(scope="module")
def logins(provider):
    return {role: provider.create_login(role, name=f"{role.title()} Popug") for role in ROLES}


@pytest.fixture(scope="module")
def tokens(provider, logins) -> dict[str, str]:
    return {role: provider.token_for(login) for role, login in logins.items()}


@pytest.fixture(scope="module")
def dashboard(provider, dashboard_port, postgres_server, kafka_broker, analytics_database_url):
    settings = Settings(database_url=postgres_server.url, kafka_bootstrap=kafka_broker.bootstrap,
                        service_database_urls={"analytics": analytics_database_url})
    noon = datetime.combine(DAY, time(12), tzinfo=UTC)
    app = create_app(settings, provider.dashboard_config("analytics", dashboard_port),
                     clock=lambda: noon)
    with serve_app(app, port=dashboard_port) as url:
        yield url


def account_state(account_id: str, full_name: str, version: int = 1,
                  event_type: str = "account.created", role: str = "worker") -> Event:
    """``account.created`` or ``account.updated`` as auth publishes it."""
    return default_registry().build(event_type, {
        "account_id": account_id, "email": f"{account_id[:8]}@popug.example",
        "full_name": full_name, "role": role, "active": True, "version": version,
    }, source="auth")


@pytest.fixture
def activity(project):
    """A day with earnings, one popug in the red (Alice, by name) and two completed
    tasks; the day before, nothing but a closed day."""
    alice, bob = new_id(), new_id()
    button, parrots = new_id(), new_id()
    project(
        account_state(alice, "Alice Popug"), account_state(bob, "Bob Popug"),
        transaction(alice, "fee", 1500, -1500, applied_at=at(DAY, 9)),
        transaction(bob, "fee", 1000, -1000, applied_at=at(DAY, 9, 1)),
        transaction(bob, "reward", 3900, 2900, applied_at=at(DAY, 15)),
        task_state(button, "Fix the button", "UBERPOP-42"),
        task_state(parrots, "Feed the parrots"),
        priced(button, 3900), priced(parrots, 2500),
        completed(button, at(DAY, 15)), completed(parrots, at(DAY - timedelta(days=1), 10)),
        day_closed(DAY - timedelta(days=1)),
    )
    return {"alice": alice, "bob": bob, "button": button, "parrots": parrots}


def get(url: str, token: str | None = None, **params) -> httpx.Response:
    return httpx.get(url, params=params, headers=bearer(token) if token else {})


@pytest.mark.parametrize("path", ENDPOINTS)
def test_only_admins_may_read_the_api(dashboard, tokens, engine, path):
    assert get(dashboard + path).status_code == 401
    for role in ("manager", "accountant", "worker"):
        refused = get(dashboard + path, tokens[role])
        assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    assert get(dashboard + path, tokens["admin"]).status_code == 200


def test_api_answers_the_figures_in_cents_and_iso_dates(dashboard, tokens, activity):
    admin = tokens["admin"]

    summary = get(f"{dashboard}/api/analytics/summary", admin).json()
    week = get(f"{dashboard}/api/analytics/most-expensive-task", admin, period="week",
               date=DAY.isoformat()).json()
    empty = get(f"{dashboard}/api/analytics/most-expensive-task", admin, period="month",
                date="2026-10-31").json()
    days = get(f"{dashboard}/api/analytics/days", admin, **{"from": "2026-11-21",
                                                           "to": "2026-11-22"}).json()

    assert summary == {
        "date": "2026-11-22", "fees": 2500, "rewards": 3900, "management_earned": -1400,
        "negative_balances": {"count": 1,
                              "accounts": [{"id": activity["alice"], "name": "Alice Popug",
                                            "balance": -1500}],
                              "next": None},
    }
    assert week == {
        "period": "week", "date": "2026-11-22", "from": "2026-11-16", "to": "2026-11-22",
        "task": {"id": activity["button"], "title": "Fix the button", "jira_id": "UBERPOP-42",
                 "reward": 3900, "completed_at": "2026-11-22T15:00:00+00:00",
                 "completed_on": "2026-11-22"},
    }
    assert empty["task"] is None and (empty["from"], empty["to"]) == ("2026-10-01", "2026-10-31")
    assert days == {"items": [
        {"date": "2026-11-21", "fees": 0, "rewards": 0, "management_earned": 0,
         "negative_balances": 0, "closed": True},
        {"date": "2026-11-22", "fees": 2500, "rewards": 3900, "management_earned": -1400,
         "negative_balances": 1, "closed": False},
    ], "next": None}
    paged = get(f"{dashboard}/api/analytics/summary", admin, limit=1).json()
    assert paged["negative_balances"] == summary["negative_balances"]
    default_days = get(f"{dashboard}/api/analytics/days", admin).json()["items"]
    assert len(default_days) == 30 and default_days[-1]["date"] == "2026-11-22"


@pytest.mark.parametrize(
    ("path", "params", "detail"),
    [
        ("most-expensive-task", {"period": "year"}, "period must be one of day, week, month"),
        ("days", {"from": "2026-11-23", "to": "2026-11-22"}, "from must not be after to"),
        ("days", {"from": "2024-01-01", "to": "2026-11-22"}, "at most 366 days"),
        ("summary", {"cursor": "not-a-cursor"}, "invalid cursor"),
    ],
)
def test_api_rejects_bad_input_with_a_clear_message(dashboard, tokens, path, params, detail):
    response = get(f"{dashboard}/api/analytics/{path}", tokens["admin"], **params)
    assert response.status_code == 400
    assert detail in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "name"),
    [("summary", "date"), ("most-expensive-task", "date"), ("days", "from"), ("days", "to")],
)
@pytest.mark.parametrize(
    "bad", ["0", "20261122", "2026-W47-7", "2026-11-22T00:00:00", "22.11.2026", "2026-02-30",
            "tomorrow"],
)
def test_every_date_parameter_takes_only_an_iso_date(dashboard, tokens, path, name, bad):
    response = get(f"{dashboard}/api/analytics/{path}", tokens["admin"], **{name: bad})
    assert response.status_code == 422
    assert response.json() == {"detail": f"{name} must be a date like 2026-11-22, not {bad!r}"}


def sign_in(page, login) -> None:
    page.fill("input[name=email]", login.email)
    page.fill("input[name=password]", login.password)
    page.click("button[type=submit]")


def test_an_admin_signs_in_and_sees_figures_and_chart_on_a_phone(
    dashboard, logins, browser_context, activity
):
    page = browser_context(viewport=PHONE).new_page()
    page.goto(f"{dashboard}/")
    sign_in(page, logins["admin"])
    page.wait_for_selector("svg.chart")

    assert page.url == f"{dashboard}/"
    assert "-$14.00" in page.inner_text("#earned-today")
    negative = page.inner_text("#negative-balances")
    assert "Alice Popug" in negative and "-$15.00" in negative
    assert activity["alice"] not in negative
    assert "Fix the button" in page.inner_text("#most-expensive-day")
    assert "$39.00" in page.inner_text("#most-expensive-month")
    # from the first day with figures (the closed day before), not 30 days of zeros
    assert page.locator("svg.chart rect.bar").count() == 2
    assert page.locator("table.days tbody th").all_inner_texts() == [
        "2026-11-22", "2026-11-21 closed"]
    assert page.locator("svg.chart polyline").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    page.fill("input[name=date]", "2026-11-21")
    page.click("#most-expensive button[type=submit]")
    page.wait_for_url("**/?date=2026-11-21")
    assert "Feed the parrots" in page.inner_text("#most-expensive-day")
    assert "Fix the button" in page.inner_text("#most-expensive-week")


def test_a_worker_is_refused_and_an_anonymous_visitor_sent_to_sign_in(
    dashboard, logins, browser_context, provider
):
    page = browser_context().new_page()
    page.goto(f"{dashboard}/?date=2026-11-22")
    assert page.url.startswith(f"{provider.url}/")
    assert page.locator("input[name=password]").count() == 1

    with page.expect_response(lambda r: r.url.startswith(dashboard + "/?")) as answer:
        sign_in(page, logins["worker"])
    response = answer.value
    assert response.status == 403
    assert "Not allowed" in page.inner_text("h1")
    assert page.locator("svg.chart").count() == 0


def test_the_page_names_who_is_in_the_red_and_starts_the_days_at_the_first_figures(
    dashboard, tokens, logins, browser_context, project
):
    alice, carl = new_id(), new_id()
    first = DAY - timedelta(days=3)
    project(
        account_state(alice, "Alice Popug"),
        transaction(alice, "fee", 1500, -1500, day=first, applied_at=at(first, 9)),
        transaction(carl, "fee", 700, -700, applied_at=at(DAY, 9)),
    )
    page = browser_context().new_page()
    page.goto(f"{dashboard}/")
    sign_in(page, logins["admin"])
    page.wait_for_selector("svg.chart")

    names = page.locator("#negative-balances li a").all_inner_texts()
    assert names == ["Alice Popug", carl]  # Carl's account.created has not arrived yet
    links = page.locator("#negative-balances li a")
    assert links.first.get_attribute("href").endswith(f"/accounts/{alice}")
    assert page.locator("table.days tbody th").all_inner_texts() == [
        (DAY - timedelta(days=n)).isoformat() for n in range(4)]
    description = page.locator("svg.chart desc").text_content()
    assert f"from {first.isoformat()} to {DAY.isoformat()}" in description
    assert "between $0.00 and $15.00" in description and "at most 2 popugs" in description


def test_before_any_figures_the_page_says_so_instead_of_a_chart_of_zeros(
    dashboard, logins, browser_context, engine
):
    page = browser_context().new_page()
    page.goto(f"{dashboard}/")
    sign_in(page, logins["admin"])
    page.wait_for_selector("#history")

    assert "No figures yet" in page.inner_text("#history")
    assert page.locator("svg.chart").count() == 0
    assert page.locator("table.days").count() == 0
