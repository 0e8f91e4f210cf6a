"""Sign-ins and refused attempts: kept per account, published as events, shown to admins."""

from __future__ import annotations

import httpx

from tests.auth.security_flows import post_form, signed_in_browser, submit_password
from tests.auth.support import Browser, bearer
from tests.auth.test_account_events import events_of, relay_all


def test_sign_ins_and_failures_are_recorded_and_published(provider, make_login, admin_token):
    login = make_login()
    browser = Browser()
    assert submit_password(browser, provider, login.email, "wrong password!").status_code == 401
    assert submit_password(browser, provider, login.email, login.password).status_code == 303
    assert submit_password(browser, provider, "nobody-at-all@popug.test",
                           "wrong password!").status_code == 401
    browser.close()

    records = httpx.get(f"{provider.url}/api/accounts/{login.id}/sign-ins",
                        headers=bearer(admin_token)).json()["items"]
    assert [(r["outcome"], r["reason"], r["address"]) for r in records] == [
        ("signed_in", None, "127.0.0.1"), ("failed", "wrong_password", "127.0.0.1")]

    relay_all(provider)
    events = [e for e in events_of(provider, "accounts-lifecycle", login.id)
              if e.type.startswith("account.log")]
    assert [(e.type, e.source) for e in events] == [("account.login_failed", "auth"),
                                                    ("account.logged_in", "auth")]
    assert events[0].data == {"account_id": login.id, "reason": "wrong_password",
                              "address": "127.0.0.1"}
    logged_in = events[1].data
    assert logged_in["second_factor"] is None and logged_in["address"] == "127.0.0.1"
    mine = httpx.get(f"{provider.url}/api/me/sessions",
                     headers=bearer(provider.token_for(login))).json()
    assert logged_in["session_id"] in [s["id"] for s in mine["sessions"]]


def test_a_deactivated_account_with_the_right_password_is_named_as_such(
        provider, make_login, admin_token):
    login = make_login()
    httpx.patch(f"{provider.url}/api/accounts/{login.id}", json={"active": False},
                headers=bearer(admin_token)).raise_for_status()
    browser = Browser()
    assert submit_password(browser, provider, login.email, login.password).status_code == 401
    browser.close()

    records = httpx.get(f"{provider.url}/api/accounts/{login.id}/sign-ins",
                        headers=bearer(admin_token)).json()["items"]
    assert [r["reason"] for r in records] == ["account_deactivated"]


def test_only_admins_see_an_accounts_sign_ins_and_everyone_sees_their_own(provider, make_login):
    worker, other = make_login(), make_login()
    token = provider.token_for(worker)

    assert httpx.get(f"{provider.url}/api/accounts/{other.id}/sign-ins",
                     headers=bearer(token)).status_code == 403
    mine = httpx.get(f"{provider.url}/api/me/sign-ins", headers=bearer(token)).json()["items"]
    assert [r["outcome"] for r in mine] == ["signed_in"]


def test_the_admin_page_lists_sign_ins_and_failures_of_an_account(provider, make_login, admin):
    login = make_login()
    attempts = Browser()
    submit_password(attempts, provider, login.email, "wrong password!")
    submit_password(attempts, provider, login.email, login.password)
    attempts.close()
    browser = signed_in_browser(provider, admin.email, admin.password)

    page = browser.http.get(f"{provider.url}/admin/accounts/{login.id}/security")

    assert page.status_code == 200
    assert "failed: wrong password" in page.text and "signed in" in page.text
    assert f'href="/admin/accounts/{login.id}/security"' in browser.http.get(
        f"{provider.url}/admin/accounts/{login.id}").text
    browser.close()


def test_a_worker_cannot_open_the_admin_security_page(provider, make_login):
    login, other = make_login(), make_login()
    browser = signed_in_browser(provider, login.email, login.password)

    assert browser.http.get(
        f"{provider.url}/admin/accounts/{other.id}/security").status_code == 403
    response = post_form(browser, f"{provider.url}/account/security",
                         f"{provider.url}/admin/accounts/{other.id}/security/end-sessions", {})
    assert response.status_code == 403
    browser.close()
