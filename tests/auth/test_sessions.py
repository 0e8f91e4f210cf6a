"""A user sees their sessions and refresh-token families and ends any; an admin ends all."""

from __future__ import annotations

import re

import httpx

from tests.auth.security_flows import post_form, signed_in_browser
from tests.auth.support import bearer


def refresh(provider, refresh_token: str) -> httpx.Response:
    return httpx.post(f"{provider.url}/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": "ates-cli"})


def sessions_of(provider, access_token: str) -> dict:
    response = httpx.get(f"{provider.url}/api/me/sessions", headers=bearer(access_token))
    assert response.status_code == 200, response.text
    return response.json()


def test_sessions_and_token_families_are_listed_and_each_can_end(provider, make_login):
    login = make_login()
    first, second = provider.tokens_for(login), provider.tokens_for(login)

    listed = sessions_of(provider, first["access_token"])
    assert len(listed["sessions"]) == 2 and len(listed["token_families"]) == 2
    assert all(s["clients"] == ["ates-cli"] and s["address"] == "127.0.0.1"
               for s in listed["sessions"])
    session_ids = {s["id"] for s in listed["sessions"]}
    assert {f["session_id"] for f in listed["token_families"]} == session_ids
    assert {f["client_id"] for f in listed["token_families"]} == {"ates-cli"}

    renewed = refresh(provider, second["refresh_token"]).json()  # the family stays one
    families = sessions_of(provider, first["access_token"])["token_families"]
    assert len(families) == 2
    family_of_second = next(f for f in families if f["last_used_at"] != f["created_at"])
    gone = httpx.delete(f"{provider.url}/api/me/token-families/{family_of_second['id']}",
                        headers=bearer(first["access_token"]))
    assert gone.status_code == 204
    assert refresh(provider, renewed["refresh_token"]).status_code == 400

    remaining = sessions_of(provider, first["access_token"])
    assert len(remaining["token_families"]) == 1
    session_id = remaining["token_families"][0]["session_id"]
    ended = httpx.delete(f"{provider.url}/api/me/sessions/{session_id}",
                         headers=bearer(first["access_token"]))
    assert ended.status_code == 204
    assert refresh(provider, first["refresh_token"]).status_code == 400
    assert sessions_of(provider, first["access_token"])["token_families"] == []


def test_nobody_ends_another_accounts_session(provider, make_login):
    owner, stranger = make_login(), make_login()
    owner_tokens = provider.tokens_for(owner)
    session_id = sessions_of(provider, owner_tokens["access_token"])["sessions"][0]["id"]
    family_id = sessions_of(provider, owner_tokens["access_token"])["token_families"][0]["id"]
    stranger_token = provider.token_for(stranger)

    assert httpx.delete(f"{provider.url}/api/me/sessions/{session_id}",
                        headers=bearer(stranger_token)).status_code == 404
    assert httpx.delete(f"{provider.url}/api/me/token-families/{family_id}",
                        headers=bearer(stranger_token)).status_code == 404
    assert httpx.delete(f"{provider.url}/api/me/sessions/not-a-uuid",
                        headers=bearer(stranger_token)).status_code == 404
    assert httpx.delete(f"{provider.url}/api/accounts/{owner.id}/sessions",
                        headers=bearer(stranger_token)).status_code == 403
    assert refresh(provider, owner_tokens["refresh_token"]).status_code == 200


def test_an_admin_ends_every_session_of_an_account(provider, make_login, admin_token):
    login = make_login()
    tokens = provider.tokens_for(login)
    browser = signed_in_browser(provider, login.email, login.password)

    ended = httpx.delete(f"{provider.url}/api/accounts/{login.id}/sessions",
                         headers=bearer(admin_token))

    assert ended.status_code == 204
    assert refresh(provider, tokens["refresh_token"]).status_code == 400
    assert browser.http.get(f"{provider.url}/account/security").status_code == 303
    browser.close()


def test_the_security_page_ends_another_browser_and_then_this_one(provider, make_login):
    login = make_login()
    other = signed_in_browser(provider, login.email, login.password)
    browser = signed_in_browser(provider, login.email, login.password)
    page = browser.http.get(f"{provider.url}/account/security")
    rows = re.findall(r'<tr data-session="([^"]+)">(.*?)</tr>', page.text, re.DOTALL)
    assert len(rows) == 2
    mine = [sid for sid, row in rows if "(this browser)" in row]
    theirs = [sid for sid, row in rows if "(this browser)" not in row]
    assert len(mine) == len(theirs) == 1

    ended = post_form(browser, f"{provider.url}/account/security",
                      f"{provider.url}/account/sessions/{theirs[0]}/end", {})
    assert ended.status_code == 303
    assert other.http.get(f"{provider.url}/account/security").status_code == 303
    assert browser.http.get(f"{provider.url}/account/security").status_code == 200

    signed_out = post_form(browser, f"{provider.url}/account/security",
                           f"{provider.url}/account/sessions/{mine[0]}/end", {})
    assert signed_out.headers["location"] == "/login"
    assert browser.http.get(f"{provider.url}/account/security").status_code == 303
    browser.close()
    other.close()
