"""Text no database can store (NUL characters, lone surrogates) is refused with a readable
message by the accounts API and the login form, and changes nothing."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from auth_client.token_flow import hidden_inputs
from tests.auth.support import Browser, RunningProvider, bearer
from tests.auth.test_accounts_api import new_account, stored_state

UNSTORABLE = "must not contain NUL characters or lone surrogates"


def post_raw_json(url: str, method: str, body: dict, token: str) -> httpx.Response:
    """``body`` as JSON escapes it (``\\u0000``, ``\\ud800``), as an attacker sends it."""
    return httpx.request(method, url, content=json.dumps(body),
                         headers=bearer(token) | {"Content-Type": "application/json"})


@pytest.mark.parametrize("field, value", [
    ("email", "kesha\u0000@popug.test"),
    ("full_name", "Kesha \ud800"),
    ("password", "long enough\u0000password"),
    ("role", "worker\udfff"),
])
def test_creating_an_account_refuses_unstorable_text(provider, admin_token, field, value):
    before = stored_state(provider)

    response = post_raw_json(f"{provider.url}/api/accounts", "POST",
                             new_account(**{field: value}), admin_token)

    assert response.status_code == 422
    assert response.json() == {"detail": f"{field}: {UNSTORABLE}"}
    assert stored_state(provider) == before


@pytest.mark.parametrize("field, value", [
    ("full_name", "Kesha\u0000"), ("full_name", "\udbff Kesha"),
    ("password", "long enough\ud800password"), ("role", "\u0000"),
])
def test_changing_an_account_refuses_unstorable_text(provider, admin_token, make_login,
                                                     field, value):
    account_id = make_login().id
    before = stored_state(provider)

    response = post_raw_json(f"{provider.url}/api/accounts/{account_id}", "PATCH",
                             {field: value}, admin_token)

    assert response.status_code == 422
    assert response.json() == {"detail": f"{field}: {UNSTORABLE}"}
    assert stored_state(provider) == before


@pytest.mark.parametrize("path", ["/api/accounts/%00", f"/api/accounts/{uuid.uuid4()}%00",
                                  "/api/accounts?cursor=%00", "/login?next=/%00"])
def test_addresses_with_a_nul_character_answer_400(provider, admin_token, path):
    response = httpx.get(f"{provider.url}{path}", headers=bearer(admin_token))

    assert response.status_code == 400
    assert response.json() == {"detail": f"The address {UNSTORABLE}."}


@pytest.mark.parametrize("field", ["email", "password", "next"])
def test_the_login_form_refuses_a_nul_character_without_signing_in(provider: RunningProvider,
                                                                   make_login, field):
    login = make_login()
    browser = Browser()
    try:
        page = browser.get(f"{provider.url}/login")
        form = {"csrf_token": hidden_inputs(page.text)["csrf_token"], "email": login.email,
                "password": login.password, "next": "/"}
        form[field] += "\x00"

        response = browser.http.post(f"{provider.url}/login", data=form)

        assert response.status_code == 400
        assert f"{field.capitalize()} {UNSTORABLE}." in response.text
        assert "set-cookie" not in response.headers or "ates_sso=" not in (
            response.headers["set-cookie"])
    finally:
        browser.close()
