"""Two-factor sign-in: TOTP enrolment with a QR code, codes used once, recovery codes,
and roles that must use it."""

from __future__ import annotations

import httpx
import pytest

from auth_client.token_flow import hidden_inputs
from tests.auth.security_flows import (
    current_code,
    next_code,
    post_form,
    signed_in_browser,
    submit_code,
    submit_password,
)
from tests.auth.support import Browser, bearer, running_provider
from tests.auth.test_account_events import events_of, relay_all


def enrol_over_api(provider, token: str) -> tuple[str, list[str]]:
    started = httpx.post(f"{provider.url}/api/me/two-factor/enrolment", headers=bearer(token))
    assert started.status_code == 200, started.text
    secret = started.json()["secret"]
    assert started.json()["otpauth_uri"].startswith("otpauth://totp/aTES:")
    qr = httpx.get(started.json()["qr_code_url"], headers=bearer(token))
    assert qr.headers["content-type"] == "image/svg+xml" and b"<svg" in qr.content
    confirmed = httpx.post(f"{provider.url}/api/me/two-factor/enrolment/confirm",
                           json={"code": current_code(secret)}, headers=bearer(token))
    assert confirmed.status_code == 200, confirmed.text
    return secret, confirmed.json()["recovery_codes"]


def test_enrolment_then_sign_in_asks_for_a_code_used_once(provider, make_login):
    login = make_login()
    token = provider.token_for(login)
    secret, codes = enrol_over_api(provider, token)
    assert len(codes) == 10 and len(set(codes)) == 10
    status = httpx.get(f"{provider.url}/api/me/two-factor", headers=bearer(token)).json()
    assert status == {"enabled": True, "required": False, "recovery_codes_left": 10}

    browser = Browser()
    after_password = submit_password(browser, provider, login.email, login.password)
    assert after_password.status_code == 303
    assert after_password.headers["location"] == "/login/two-factor"
    assert "ates_sso" not in after_password.headers.get("set-cookie", "")
    assert browser.http.get(f"{provider.url}/account/security").status_code == 303

    wrong = submit_code(browser, provider, "000000" if next_code(secret) != "000000" else "111111")
    assert wrong.status_code == 401
    code = next_code(secret)
    right = submit_code(browser, provider, code)
    assert right.status_code == 303 and "ates_sso=" in right.headers["set-cookie"]
    assert browser.http.get(f"{provider.url}/account/security").status_code == 200

    replay = Browser()
    submit_password(replay, provider, login.email, login.password)
    assert submit_code(replay, provider, code).status_code == 401  # the same code again
    browser.close()
    replay.close()

    relay_all(provider)
    sign_ins = [(e.type, e.data.get("second_factor") or e.data.get("reason"))
                for e in events_of(provider, "accounts-lifecycle", login.id)
                if e.type.startswith("account.log")]
    assert sign_ins[-3:] == [("account.login_failed", "wrong_second_factor"),
                             ("account.logged_in", "totp"),
                             ("account.login_failed", "wrong_second_factor")]


def test_a_recovery_code_signs_in_once(provider, make_login):
    login = make_login()
    _secret, codes = enrol_over_api(provider, provider.token_for(login))

    first = Browser()
    submit_password(first, provider, login.email, login.password)
    assert submit_code(first, provider, codes[0].upper()).status_code == 303
    second = Browser()
    submit_password(second, provider, login.email, login.password)
    assert submit_code(second, provider, codes[0]).status_code == 401
    records = provider.app.state.security.sign_ins(login.id)
    assert records[1].second_factor == "recovery_code"
    first.close()
    second.close()


def test_the_second_step_needs_the_password_step_first(provider, make_login):
    login = make_login()
    secret, _codes = enrol_over_api(provider, provider.token_for(login))
    browser = Browser()
    token = hidden_inputs(browser.get(f"{provider.url}/login").text)["csrf_token"]

    response = browser.http.post(f"{provider.url}/login/two-factor",
                                 data={"csrf_token": token, "code": next_code(secret)})

    assert response.status_code == 400 and "ates_sso" not in response.headers.get(
        "set-cookie", "")
    browser.close()


def test_second_factor_codes_are_throttled(postgres_server, kafka_broker):
    from auth.config import LoginThrottling

    with running_provider(postgres_server.url, kafka_broker.bootstrap,
                          throttling=LoginThrottling(per_account_and_address=3)) as provider:
        login = provider.create_login()
        secret, _codes = enrol_over_api(provider, provider.token_for(login))
        browser = Browser()
        submit_password(browser, provider, login.email, login.password)
        wrong = "000000" if next_code(secret) != "000000" else "111111"
        statuses = [submit_code(browser, provider, wrong).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        assert submit_code(browser, provider, next_code(secret)).status_code == 429
        browser.close()


def test_turning_off_needs_the_password_and_admins_can_remove_a_lost_factor(
        provider, make_login, admin_token):
    login = make_login()
    token = provider.token_for(login)
    enrol_over_api(provider, token)
    url = f"{provider.url}/api/me/two-factor/off"

    assert httpx.post(url, json={"password": "not the password"},
                      headers=bearer(token)).status_code == 403
    assert httpx.post(url, json={"password": login.password},
                      headers=bearer(token)).status_code == 204
    enrol_over_api(provider, token)
    assert httpx.delete(f"{provider.url}/api/accounts/{login.id}/two-factor",
                        headers=bearer(token)).status_code == 403
    assert httpx.delete(f"{provider.url}/api/accounts/{login.id}/two-factor",
                        headers=bearer(admin_token)).status_code == 204
    assert submit_password(Browser(), provider, login.email,
                           login.password).headers["location"] == "/"


def test_new_recovery_codes_replace_the_old_ones(provider, make_login):
    login = make_login()
    token = provider.token_for(login)
    secret, old = enrol_over_api(provider, token)

    new = httpx.post(f"{provider.url}/api/me/two-factor/recovery-codes",
                     json={"code": next_code(secret)}, headers=bearer(token))

    assert new.status_code == 200 and set(new.json()["recovery_codes"]).isdisjoint(old)
    browser = Browser()
    submit_password(browser, provider, login.email, login.password)
    assert submit_code(browser, provider, old[0]).status_code == 401
    assert submit_code(browser, provider, new.json()["recovery_codes"][0]).status_code == 303
    browser.close()


def test_the_qr_code_is_an_svg_served_only_during_enrolment(provider, make_login):
    login = make_login()
    browser = signed_in_browser(provider, login.email, login.password)
    qr = f"{provider.url}/account/two-factor/qr.svg"
    assert browser.http.get(qr).status_code == 404

    post_form(browser, f"{provider.url}/account/security",
              f"{provider.url}/account/two-factor/enrol", {})
    page = browser.http.get(f"{provider.url}/account/two-factor")
    image = browser.http.get(qr)

    assert page.status_code == 200 and 'src="/account/two-factor/qr.svg"' in page.text
    assert image.status_code == 200 and image.headers["content-type"] == "image/svg+xml"
    assert b"<svg" in image.content and image.headers["cache-control"] == "no-store"
    assert httpx.get(qr).status_code == 404  # not for anyone else
    browser.close()


@pytest.fixture(scope="module")
def enforcing_provider(postgres_server, kafka_broker):
    with running_provider(postgres_server.url, kafka_broker.bootstrap) as running:
        yield running


def test_a_role_can_require_two_factor(enforcing_provider):
    provider = enforcing_provider
    admin = provider.create_login("admin")
    admin_token = provider.token_for(admin)
    accountant, worker = provider.create_login("accountant"), provider.create_login("worker")
    url = f"{provider.url}/api/two-factor/required-roles"

    assert httpx.put(url, json={"roles": ["accountant", "chief"]},
                     headers=bearer(admin_token)).status_code == 422
    assert httpx.put(url, json={"roles": ["accountant"]},
                     headers=bearer(provider.token_for(worker))).status_code == 403
    saved = httpx.put(url, json={"roles": ["accountant"]}, headers=bearer(admin_token))
    assert saved.json() == {"roles": ["accountant"]}

    assert submit_password(Browser(), provider, worker.email,
                           worker.password).headers["location"] == "/"
    browser = Browser()
    answer = submit_password(browser, provider, accountant.email, accountant.password)
    assert answer.headers["location"] == "/login/two-factor"
    enrol_page = browser.http.get(f"{provider.url}/login/two-factor")
    assert "Your role requires a second factor" in enrol_page.text
    assert browser.http.get(f"{provider.url}/login/two-factor/qr.svg").status_code == 200
    secret = enrol_page.text.split('id="totp-secret">')[1].split("<")[0]
    done = submit_code(browser, provider, current_code(secret))
    assert done.status_code == 200 and "recovery-codes" in done.text
    assert "ates_sso=" in done.headers["set-cookie"]
    security = browser.http.get(f"{provider.url}/account/security").text
    assert "Recovery codes left: 10" in security and "Your role requires" in security
    off = post_form(browser, f"{provider.url}/account/security",
                    f"{provider.url}/account/two-factor/off", {"password": accountant.password})
    assert off.status_code == 409
    browser.close()


def test_scripts_get_tokens_with_the_second_factor(provider, make_login):
    from auth_client.token_flow import TokenFlowError, obtain_tokens

    login = make_login()
    secret, _codes = enrol_over_api(provider, provider.token_for(login))

    with pytest.raises(TokenFlowError, match="second factor"):
        obtain_tokens(provider.url, login.email, login.password)
    with pytest.raises(TokenFlowError, match="code is not right"):
        obtain_tokens(provider.url, login.email, login.password, code="12345x")
    tokens = obtain_tokens(provider.url, login.email, login.password, code=next_code(secret))
    me = httpx.get(f"{provider.url}/api/me", headers=bearer(tokens["access_token"]))
    assert me.json()["id"] == login.id
