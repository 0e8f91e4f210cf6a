"""The accounts API: admins manage accounts, everyone sees themselves, bad input stores nothing."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import func, select

from messaging.tables import outbox
from tests.auth.support import RunningProvider, bearer


def new_email() -> str:
    return f"popug-{uuid.uuid4().hex[:10]}@popug.test"


def new_account(**changes) -> dict:
    return {"email": new_email(), "full_name": "Kesha Popugaev", "role": "worker",
            "password": "long enough password"} | changes


class Api:
    def __init__(self, provider: RunningProvider, token: str | None):
        self.base = f"{provider.url}/api"
        self.headers = bearer(token) if token else {}

    def __getattr__(self, method: str):
        def call(path: str, **kwargs) -> httpx.Response:
            return httpx.request(method.upper(), self.base + path, headers=self.headers,
                                 **kwargs)

        return call


@pytest.fixture
def api(provider, admin_token) -> Api:
    return Api(provider, admin_token)


def stored_state(provider: RunningProvider) -> tuple[int, int]:
    """How many live accounts and outbox events there are."""
    with provider.engine.connect() as conn:
        events = conn.execute(select(func.count()).select_from(outbox)).scalar()
    return provider.queries.count_accounts(), events


def test_admin_creates_reads_updates_and_deletes_an_account(api):
    created = api.post("/accounts", json=new_account(email="  Mixed.Case@Popug.Test "))
    assert created.status_code == 201, created.text
    account = created.json()
    assert account["email"] == "mixed.case@popug.test" and account["version"] == 1
    assert set(account) == {"id", "email", "full_name", "role", "active", "version",
                            "created_at", "updated_at"}
    uuid.UUID(account["id"])

    assert api.get(f"/accounts/{account['id']}").json() == account
    patched = api.patch(f"/accounts/{account['id']}",
                        json={"full_name": "Kesha the Great", "role": "accountant"})
    assert patched.json()["full_name"] == "Kesha the Great"
    assert (patched.json()["role"], patched.json()["version"]) == ("accountant", 2)

    assert api.delete(f"/accounts/{account['id']}").status_code == 204
    assert api.get(f"/accounts/{account['id']}").status_code == 404
    assert api.delete(f"/accounts/{account['id']}").status_code == 404


def test_accounts_are_listed_page_by_page(api):
    emails = {api.post("/accounts", json=new_account()).json()["email"] for _ in range(3)}

    seen, cursor, pages = [], None, 0
    while True:
        page = api.get("/accounts", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        body = page.json()
        seen += [item["email"] for item in body["items"]]
        pages, cursor = pages + 1, body["next"]
        if cursor is None:
            break

    assert emails <= set(seen) and len(seen) == len(set(seen)) and pages >= 2
    assert seen == sorted(seen)


def test_anyone_signed_in_sees_themselves(provider, make_login):
    login = make_login("worker")

    me = Api(provider, provider.token_for(login)).get("/me")

    assert me.status_code == 200 and me.json()["id"] == login.id
    assert me.json()["email"] == login.email and "password" not in me.text


@pytest.mark.parametrize("role", ["worker", "manager", "accountant"])
def test_non_admins_get_403_on_account_management(provider, make_login, role):
    api = Api(provider, provider.token_for(make_login(role)))
    some_id = make_login().id

    responses = [api.get("/accounts"), api.post("/accounts", json=new_account()),
                 api.get(f"/accounts/{some_id}"),
                 api.patch(f"/accounts/{some_id}", json={"role": "admin"}),
                 api.delete(f"/accounts/{some_id}")]

    assert [r.status_code for r in responses] == [403] * 5
    assert all(r.json()["detail"] for r in responses)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"},
                                     {"Authorization": "Basic YWRtaW46YWRtaW4="}])
def test_missing_or_invalid_token_gets_401(provider, headers):
    for path in ("/api/accounts", "/api/me"):
        response = httpx.get(provider.url + path, headers=headers)
        assert response.status_code == 401 and response.json()["detail"]
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("body, status, detail", [
    (new_account(role="emperor"), 422, "unknown role"),
    (new_account(password=""), 422, "password"),
    (new_account(password="short"), 422, "password"),
    (new_account(email="not-an-email"), 422, "email"),
    (new_account(full_name="   "), 422, "full name"),
    ({"email": new_email(), "full_name": "No Password", "role": "worker"}, 422, "password"),
    (new_account(nickname="kesha"), 422, "nickname"),
])
def test_invalid_account_is_refused_and_nothing_is_stored(provider, api, body, status, detail):
    before = stored_state(provider)

    response = api.post("/accounts", json=body)

    assert response.status_code == status
    assert detail in response.json()["detail"]
    assert stored_state(provider) == before


def test_duplicate_email_is_refused_case_insensitively(provider, api):
    email = new_email()
    assert api.post("/accounts", json=new_account(email=email)).status_code == 201
    before = stored_state(provider)

    response = api.post("/accounts", json=new_account(email=email.upper()))

    assert response.status_code == 409 and "already exists" in response.json()["detail"]
    assert stored_state(provider) == before


def test_bad_changes_are_refused_and_change_nothing(provider, api, make_login):
    account_id = make_login().id
    before = stored_state(provider)

    responses = [api.patch(f"/accounts/{account_id}", json={"role": "emperor"}),
                 api.patch(f"/accounts/{account_id}", json={"password": ""}),
                 api.patch(f"/accounts/{account_id}", json={"email": "x@popug.test"}),
                 api.patch(f"/accounts/{uuid.uuid4()}", json={"full_name": "Nobody"}),
                 api.get("/accounts/not-a-uuid")]

    assert [r.status_code for r in responses] == [422, 422, 422, 404, 404]
    assert stored_state(provider) == before
    assert api.get(f"/accounts/{account_id}").json()["version"] == 1


def test_admin_cannot_lock_themselves_out(api, admin):
    for change in ({"active": False}, {"role": "worker"}):
        response = api.patch(f"/accounts/{admin.id}", json=change)
        assert response.status_code == 409, response.text
    assert api.delete(f"/accounts/{admin.id}").status_code == 409


def test_deleted_email_can_be_used_again(api):
    email = new_email()
    first = api.post("/accounts", json=new_account(email=email)).json()
    api.delete(f"/accounts/{first['id']}")

    again = api.post("/accounts", json=new_account(email=email))

    assert again.status_code == 201 and again.json()["id"] != first["id"]


def test_health_readiness_metrics_and_openapi(provider):
    assert httpx.get(f"{provider.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{provider.url}/readyz").status_code == 200
    paths = httpx.get(f"{provider.url}/openapi.json").json()["paths"]
    assert {"/api/accounts", "/api/accounts/{account_id}", "/api/me", "/oauth/token"} <= set(paths)
    assert httpx.get(f"{provider.url}/docs").status_code == 200
    assert "python_info" in httpx.get(f"{provider.url}/metrics").text
