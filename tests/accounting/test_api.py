"""The JSON API over real HTTP, with real tokens from a running auth provider."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.accounting.conftest import balance_of, count, price_of
from tests.accounting.support import (
    LINE_FIELDS,
    book_task,
    feed_replica,
    parse_csv,
    unknown_account,
)
from tests.auth.support import People

# The served app, the auth provider and the people of the package.

ROUTES = [
    ("GET", "/api/me/account"),
    ("GET", "/api/me/transactions"),
    ("GET", "/api/me/days"),
    ("GET", "/api/accounts"),
    ("GET", "/api/accounts/00000000-0000-0000-0000-000000000001/transactions"),
    ("GET", "/api/management/earnings"),
    ("GET", "/api/management/days"),
    ("POST", "/api/billing/close-day"),
    ("GET", "/api/exports/transactions.csv"),
    ("GET", "/api/exports/management-days.csv"),
]
EVERYONE_ROUTES = [
    "/api/accounts",
    "/api/management/earnings",
    "/api/management/days",
    "/api/exports/transactions.csv",
    "/api/exports/management-days.csv",
]


@pytest.fixture
def api(accounting_url, engine) -> str:
    """The accounting app, its database emptied for this test."""
    return accounting_url


@pytest.fixture
def booked(sessions, live_books, people: People):
    """The worker: one task done (fee and reward); the other worker: one task open."""
    feed_replica(sessions, people.worker, people.other_worker, people.accountant, people.admin)
    done = book_task(sessions, live_books, people.worker, "Feed the parrots", "UBERPOP-7",
                     "Millet, twice a day.")
    still_open = book_task(sessions, live_books, people.other_worker, "Clean the cage",
                           done=False)
    return done, still_open


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def get(api: str, path: str, person, **params) -> httpx.Response:
    return httpx.get(f"{api}{path}", headers=person.headers, params=params)


# -- who may call what --------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_needs_a_token(api, method, path):
    response = httpx.request(method, f"{api}{path}")
    assert response.status_code == 401
    assert response.json()["detail"]


@pytest.mark.parametrize("path", [*EVERYONE_ROUTES, "/api/billing/close-day"])
def test_workers_and_managers_may_not_see_everything(api, people: People, path):
    for person in (people.worker, people.manager):
        method = "POST" if path.endswith("close-day") else "GET"
        response = httpx.request(method, f"{api}{path}", headers=person.headers)
        assert response.status_code == 403, path
        assert "admin" in response.json()["detail"]


@pytest.mark.parametrize("path", EVERYONE_ROUTES)
def test_admins_and_accountants_see_everything(api, people: People, path):
    for person in (people.admin, people.accountant):
        assert get(api, path, person).status_code == 200, path


# -- one's own account --------------------------------------------------------------------


def test_my_account_shows_balance_and_what_i_earned_today(api, engine, people, booked):
    done, _ = booked
    fee, reward = price_of(engine, done)

    mine = get(api, "/api/me/account", people.worker)

    assert mine.status_code == 200
    assert mine.json() == {"balance": reward - fee, "earned_today": reward - fee, "day": today()}
    other = get(api, "/api/me/account", people.other_worker).json()
    assert other["balance"] == other["earned_today"] == -price_of(engine, booked[1])[0]


def test_an_account_without_transactions_has_zero(api, people):
    assert get(api, "/api/me/account", people.manager).json()["balance"] == 0
    assert get(api, "/api/me/transactions", people.manager).json() == {"items": [], "next": None}


def test_my_transactions_carry_the_task_newest_first(api, engine, people, booked):
    done, _ = booked
    fee, reward = price_of(engine, done)

    page = get(api, "/api/me/transactions", people.worker).json()

    assert page["next"] is None
    reward_line, fee_line = page["items"]
    assert set(reward_line) == LINE_FIELDS
    assert (fee_line["type"], fee_line["amount"], fee_line["balance_after"]) == ("fee", -fee, -fee)
    assert (reward_line["type"], reward_line["amount"], reward_line["balance_after"]) == (
        "reward", reward, reward - fee)
    assert reward_line["task_id"] == str(done) and reward_line["day"] == today()
    assert reward_line["task"] == {"title": "Feed the parrots", "jira_id": "UBERPOP-7",
                                   "description": "Millet, twice a day."}
    assert reward_line["created_at"].endswith("Z")


def test_transactions_come_in_pages(api, people, booked):
    first = get(api, "/api/me/transactions", people.worker, limit=1).json()
    second = get(api, "/api/me/transactions", people.worker, limit=1,
                 cursor=first["next"]).json()

    assert [line["type"] for line in first["items"] + second["items"]] == ["reward", "fee"]
    assert second["next"] is None


@pytest.mark.parametrize("cursor", ["nonsense!", "AAAAAAAAAAAAAAAAAAAAAA"])
def test_a_bad_cursor_is_400(api, people, booked, cursor):
    response = get(api, "/api/me/transactions", people.worker, cursor=cursor)
    assert response.status_code == 400
    assert response.json() == {"detail": "invalid cursor"}


def test_a_bad_limit_is_422(api, people):
    response = get(api, "/api/me/transactions", people.worker, limit=0)
    assert response.status_code == 422 and response.json()["detail"].startswith("limit")


def test_my_days_sum_each_day(api, engine, people, booked):
    fee, reward = price_of(engine, booked[0])

    days = get(api, "/api/me/days", people.worker).json()

    assert days == {"items": [{"day": today(), "fees": -fee, "rewards": reward, "payout": 0,
                               "earned": reward - fee}], "next": None}


def test_service_clients_have_no_account_of_their_own(api, auth_provider):
    token = httpx.post(f"{auth_provider.url}/oauth/token", data={
        "grant_type": "client_credentials", "client_id": "reports",
        "client_secret": "reports-secret"}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}

    assert httpx.get(f"{api}/api/me/account", headers=headers).status_code == 403
    assert httpx.get(f"{api}/api/accounts", headers=headers).status_code == 200  # accountant


# -- any account --------------------------------------------------------------------------


def test_accounts_list_every_balance(api, engine, people, booked):
    page = get(api, "/api/accounts", people.accountant).json()

    balances = {item["id"]: item for item in page["items"]}
    assert page["next"] is None
    assert set(balances) == {p.id for p in (people.worker, people.other_worker,
                                            people.accountant, people.admin)}
    worker = balances[people.worker.id]
    assert worker["balance"] == balance_of(engine, people.worker.uuid)
    assert (worker["email"], worker["full_name"], worker["role"]) == (
        people.worker.login.email, "Kesha Worker", "worker")
    assert worker["active"] is True and worker["deleted"] is False
    assert balances[people.accountant.id]["balance"] == 0


def test_accounts_come_in_pages(api, people, booked):
    first = get(api, "/api/accounts", people.admin, limit=3).json()
    rest = get(api, "/api/accounts", people.admin, limit=3, cursor=first["next"]).json()
    assert len(first["items"]) == 3 and len(rest["items"]) == 1 and rest["next"] is None


def test_a_worker_sees_their_own_transactions_but_not_anothers(api, people, booked):
    own = get(api, f"/api/accounts/{people.worker.id}/transactions", people.worker)
    others = get(api, f"/api/accounts/{people.other_worker.id}/transactions", people.worker)

    assert own.status_code == 200 and len(own.json()["items"]) == 2
    assert others.status_code == 403
    assert others.json() == {"detail": "you may only see your own account"}


def test_accountants_and_admins_see_any_accounts_transactions(api, people, booked):
    path = f"/api/accounts/{people.other_worker.id}/transactions"
    for person in (people.accountant, people.admin):
        items = get(api, path, person).json()["items"]
        assert [(i["type"], i["task"]["title"]) for i in items] == [("fee", "Clean the cage")]


def test_an_unknown_account_is_404_for_accountants_and_403_for_workers(api, sessions, people):
    stranger = unknown_account(sessions)
    path = f"/api/accounts/{stranger}/transactions"

    missing = get(api, path, people.accountant)

    assert missing.status_code == 404 and str(stranger) in missing.json()["detail"]
    assert get(api, path, people.worker).status_code == 403
    assert get(api, "/api/accounts/not-a-uuid/transactions", people.admin).status_code == 422


# -- management ---------------------------------------------------------------------------


def test_management_earns_fees_minus_rewards(api, engine, people, booked):
    done, still_open = booked
    fee, reward = price_of(engine, done)
    other_fee = price_of(engine, still_open)[0]

    earned = get(api, "/api/management/earnings", people.accountant).json()
    same = get(api, "/api/management/earnings", people.admin, date=today()).json()
    empty = get(api, "/api/management/earnings", people.admin, date="2020-01-01").json()

    assert earned == same == {"day": today(), "fees_charged": fee + other_fee,
                              "rewards_paid": reward, "earned": fee + other_fee - reward}
    assert empty == {"day": "2020-01-01", "fees_charged": 0, "rewards_paid": 0, "earned": 0}


def test_management_days_cover_the_range_oldest_first(api, engine, people, booked):
    now = datetime.now(UTC).date()
    first = (now - timedelta(days=2)).isoformat()

    days = get(api, "/api/management/days", people.accountant, **{"from": first,
                                                                   "to": today()}).json()
    default = get(api, "/api/management/days", people.accountant).json()

    assert [d["day"] for d in days["items"]] == [
        (now - timedelta(days=n)).isoformat() for n in (2, 1, 0)]
    assert days["items"][0]["earned"] == 0
    assert days["items"][-1] == get(api, "/api/management/earnings", people.admin).json()
    assert len(default["items"]) == 30 and default["items"][-1]["day"] == today()


@pytest.mark.parametrize(("params", "message"), [
    ({"from": "2026-11-22", "to": "2026-11-21"}, "ends (2026-11-21) before it starts"),
    ({"from": "2020-01-01", "to": "2026-01-01"}, "at most"),
    ({"from": "22.11.2026"}, "from:"),
    ({"to": "2026-02-30"}, "to:"),
])
def test_bad_ranges_are_422(api, people, params, message):
    for path in ("/api/management/days", "/api/exports/management-days.csv"):
        response = get(api, path, people.admin, **params)
        assert response.status_code == 422, path
        assert message in response.json()["detail"]


def test_a_bad_date_is_422(api, people):
    response = get(api, "/api/management/earnings", people.admin, date="yesterday")
    assert response.status_code == 422 and response.json()["detail"].startswith("date:")


# -- closing a day ------------------------------------------------------------------------


def test_closing_the_day_pays_positive_balances_into_the_audit_log(api, engine, people,
                                                                   booked):
    done, still_open = booked
    fee, reward = price_of(engine, done)

    response = httpx.post(f"{api}/api/billing/close-day", headers=people.accountant.headers)

    assert response.status_code == 200
    [closed] = response.json()["closed"]
    assert (closed["day"], closed["accounts_paid"], closed["total_paid"]) == (
        today(), 1, reward - fee)
    payout = get(api, "/api/me/transactions", people.worker).json()["items"][0]
    assert (payout["type"], payout["amount"], payout["balance_after"], payout["task"]) == (
        "payout", fee - reward, 0, None)
    assert get(api, "/api/me/account", people.worker).json()["balance"] == 0
    negative = -price_of(engine, still_open)[0]
    assert balance_of(engine, people.other_worker.uuid) == negative  # carried over


def test_closing_a_closed_day_pays_nothing_again(api, people, booked):
    url = f"{api}/api/billing/close-day"
    first = httpx.post(url, headers=people.admin.headers, json={"date": today()})
    again = httpx.post(url, headers=people.admin.headers, json={"date": today()})

    assert len(first.json()["closed"]) == 1
    assert again.status_code == 200 and again.json() == {"closed": []}


def test_closing_a_day_that_has_not_begun_is_409(api, engine, people, booked):
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()

    response = httpx.post(f"{api}/api/billing/close-day", headers=people.admin.headers,
                          json={"date": tomorrow})

    assert response.status_code == 409
    assert response.json() == {"detail": f"{tomorrow} has not begun: the current day is {today()}"}
    assert get(api, "/api/me/transactions", people.worker).json()["items"][0]["type"] == "reward"


def test_closing_with_a_malformed_body_is_422(api, people):
    url = f"{api}/api/billing/close-day"
    bad_date = httpx.post(url, headers=people.admin.headers, json={"date": "soon"})
    extra = httpx.post(url, headers=people.admin.headers, json={"day": today()})
    assert bad_date.status_code == extra.status_code == 422
    assert bad_date.json()["detail"].startswith("date:")


NOT_ISO_DATES = [0, 20261122, "0", "20261122", "2026-W47-7", "2026-11-22T00:00:00", "2026-1-2",
                 " 2026-11-22", True, ["2026-11-22"]]


@pytest.mark.parametrize("bad", NOT_ISO_DATES, ids=repr)
def test_closing_takes_only_an_iso_date_string(api, engine, people, booked, bad):
    response = httpx.post(f"{api}/api/billing/close-day", headers=people.admin.headers,
                          json={"date": bad})

    assert response.status_code == 422
    assert response.json()["detail"].startswith("date:")
    assert count(engine, "billing_days") == 0


def test_closing_a_day_before_the_first_booked_day_is_422(api, engine, people, booked):
    response = httpx.post(f"{api}/api/billing/close-day", headers=people.admin.headers,
                          json={"date": "1970-01-01"})

    assert response.status_code == 422
    assert response.json() == {"detail": f"1970-01-01 is before {today()}, the first day"
                                         " that can be closed"}
    assert count(engine, "billing_days") == 0


def test_ending_the_current_day_again_the_same_day_is_409(api, engine, people, booked):
    url = f"{api}/api/billing/close-day"
    first = httpx.post(url, headers=people.admin.headers)
    again = httpx.post(url, headers=people.admin.headers)

    assert [c["day"] for c in first.json()["closed"]] == [today()]
    assert again.status_code == 409
    assert again.json()["detail"].startswith(f"{today()} is already closed")
    assert count(engine, "billing_days") == 1


@pytest.mark.parametrize(("path", "name"), [
    ("/api/management/earnings", "date"),
    ("/api/management/days", "from"),
    ("/api/management/days", "to"),
    ("/api/exports/management-days.csv", "from"),
    ("/api/exports/management-days.csv", "to"),
])
@pytest.mark.parametrize("bad", ["0", "20261122", "2026-W47-7", "2026-11-22T00:00:00"])
def test_every_date_parameter_takes_only_an_iso_date(api, people, path, name, bad):
    response = get(api, path, people.admin, **{name: bad})

    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"{name}:")


# -- CSV ----------------------------------------------------------------------------------


def test_the_audit_log_export_matches_the_json(api, people, booked):
    response = get(api, "/api/exports/transactions.csv", people.accountant)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="transactions.csv"' in response.headers["content-disposition"]
    rows = parse_csv(response)
    assert len(rows) == 3
    json_lines = get(api, f"/api/accounts/{people.worker.id}/transactions", people.admin)
    by_id = {row["id"]: row for row in rows}
    for line in json_lines.json()["items"]:
        row = by_id[line["id"]]
        assert (row["account_id"], row["type"], int(row["amount"]),
                int(row["balance_after"]), row["task_id"], row["day"]) == (
            people.worker.id, line["type"], line["amount"], line["balance_after"],
            line["task_id"], line["day"])
        assert (row["task_title"], row["task_jira_id"], row["task_description"]) == (
            "Feed the parrots", "UBERPOP-7", "Millet, twice a day.")


def test_the_audit_log_export_of_one_account(api, sessions, people, booked):
    path = "/api/exports/transactions.csv"
    one = get(api, path, people.admin, account=people.other_worker.id)
    stranger = get(api, path, people.admin, account=str(unknown_account(sessions)))

    assert people.other_worker.id in one.headers["content-disposition"]
    assert [row["task_title"] for row in parse_csv(one)] == ["Clean the cage"]
    assert stranger.status_code == 404


def test_the_management_export_matches_the_json(api, people, booked):
    first = (datetime.now(UTC).date() - timedelta(days=3)).isoformat()
    params = {"from": first, "to": today()}

    response = get(api, "/api/exports/management-days.csv", people.accountant, **params)
    days = get(api, "/api/management/days", people.accountant, **params).json()["items"]

    assert response.headers["content-type"].startswith("text/csv")
    assert (f'filename="management-days-{first}-{today()}.csv"'
            in response.headers["content-disposition"])
    rows = parse_csv(response)
    assert [{key: row[key] if key == "day" else int(row[key]) for key in row} for row in rows
            ] == days
