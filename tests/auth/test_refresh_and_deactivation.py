"""Refresh tokens rotate; reuse revokes the family; deactivation ends access."""

from __future__ import annotations

import httpx
import pytest

from auth_client.token_flow import TokenFlowError
from tests.auth.support import RunningProvider, bearer


def refresh(provider: RunningProvider, refresh_token: str) -> httpx.Response:
    return httpx.post(f"{provider.url}/oauth/token", data={
        "grant_type": "refresh_token", "client_id": "ates-cli", "refresh_token": refresh_token})


def deactivate(provider: RunningProvider, admin_token: str, account_id: str) -> None:
    response = httpx.patch(f"{provider.url}/api/accounts/{account_id}", json={"active": False},
                           headers=bearer(admin_token))
    assert response.status_code == 200, response.text


def test_refresh_rotates_the_refresh_token(provider, make_login):
    login = make_login()
    first = provider.tokens_for(login)

    second = refresh(provider, first["refresh_token"]).json()
    third = refresh(provider, second["refresh_token"])

    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert third.status_code == 200


def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(provider, make_login):
    login = make_login()
    stolen = provider.tokens_for(login)["refresh_token"]
    legitimate = refresh(provider, stolen).json()["refresh_token"]

    reuse = refresh(provider, stolen)
    after = refresh(provider, legitimate)

    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"


def test_reuse_revokes_only_its_own_family(provider, make_login):
    login = make_login()
    other_device = provider.tokens_for(login)["refresh_token"]
    stolen = provider.tokens_for(login)["refresh_token"]
    refresh(provider, stolen)

    refresh(provider, stolen)

    assert refresh(provider, other_device).status_code == 200


def test_deactivated_account_can_neither_refresh_nor_sign_in(provider, make_login, admin_token):
    login = make_login()
    tokens = provider.tokens_for(login)

    deactivate(provider, admin_token, login.id)

    assert refresh(provider, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    with pytest.raises(TokenFlowError, match="invalid email or password"):
        provider.tokens_for(login)
    me = httpx.get(f"{provider.url}/api/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 401


def test_reactivated_account_signs_in_again(provider, make_login, admin_token):
    login = make_login()
    deactivate(provider, admin_token, login.id)

    httpx.patch(f"{provider.url}/api/accounts/{login.id}", json={"active": True},
                headers=bearer(admin_token)).raise_for_status()

    assert provider.token_for(login)


def test_deleted_account_can_no_longer_refresh(provider, make_login, admin_token):
    login = make_login()
    tokens = provider.tokens_for(login)

    httpx.delete(f"{provider.url}/api/accounts/{login.id}",
                 headers=bearer(admin_token)).raise_for_status()

    assert refresh(provider, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    with pytest.raises(TokenFlowError):
        provider.tokens_for(login)
