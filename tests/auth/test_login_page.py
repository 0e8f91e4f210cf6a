"""The login page: CSRF-protected, says nothing about which accounts exist, throttled."""

from __future__ import annotations

import pytest

from auth.config import LoginThrottling
from auth_client.token_flow import hidden_inputs
from tests.auth.support import Browser, Login, RunningProvider, running_provider


@pytest.fixture
def browser():
    browser = Browser()
    yield browser
    browser.close()


def csrf_token(page) -> str:
    return hidden_inputs(page.text)["csrf_token"]


def attempt(browser: Browser, provider: RunningProvider, email: str, password: str):
    page = browser.get(f"{provider.url}/login?prompt=login")  # the form, even when signed in
    return browser.sign_in(page, Login(email, password, "", ""))


def test_login_sets_the_sso_cookie_and_goes_to_next(provider, make_login, browser):
    login = make_login()
    page = browser.get(f"{provider.url}/login?next=/admin/accounts")

    response = browser.http.post(f"{provider.url}/login", data={
        "csrf_token": csrf_token(page), "email": login.email.upper(),
        "password": login.password, "next": "/admin/accounts"})

    assert response.status_code == 303 and response.headers["location"] == "/admin/accounts"
    cookie = response.headers["set-cookie"]
    assert "ates_sso=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/"])
def test_login_never_redirects_off_site(provider, make_login, browser, next_url):
    login = make_login()
    page = browser.get(f"{provider.url}/login")

    response = browser.http.post(f"{provider.url}/login", data={
        "csrf_token": csrf_token(page), "email": login.email, "password": login.password,
        "next": next_url})

    assert response.headers["location"] == "/"


def test_login_without_csrf_token_is_refused(provider, make_login, browser):
    login = make_login()
    browser.get(f"{provider.url}/login")

    response = browser.http.post(f"{provider.url}/login",
                                 data={"email": login.email, "password": login.password})

    assert response.status_code == 403
    assert "ates_sso" not in response.headers.get("set-cookie", "")


def test_csrf_token_of_another_browser_is_refused(provider, make_login, browser):
    login = make_login()
    other = Browser()
    token_of_other = csrf_token(other.get(f"{provider.url}/login"))
    browser.get(f"{provider.url}/login")

    response = browser.http.post(f"{provider.url}/login", data={
        "csrf_token": token_of_other, "email": login.email, "password": login.password})

    assert response.status_code == 403
    other.close()


def test_wrong_password_and_unknown_email_look_the_same(provider, make_login, browser):
    login = make_login()

    wrong_password = attempt(browser, provider, login.email, "wrong password!")
    unknown_email = attempt(browser, provider, "nobody-here@popug.test", "wrong password!")

    assert wrong_password.status_code == unknown_email.status_code == 401
    assert "Invalid email or password." in wrong_password.text
    assert "Invalid email or password." in unknown_email.text


def test_deactivated_account_gets_the_same_generic_error(provider, make_login, browser):
    login = make_login()
    provider.accounts.deactivate_account(login.id)

    response = attempt(browser, provider, login.email, login.password)

    assert response.status_code == 401 and "Invalid email or password." in response.text


def test_repeated_failures_throttle_the_account_from_that_address(provider, make_login, browser):
    login = make_login()
    for _ in range(provider.config.throttling.per_account_and_address):
        assert attempt(browser, provider, login.email, "wrong password!").status_code == 401

    throttled = attempt(browser, provider, login.email, login.password)

    assert throttled.status_code == 429
    assert "Too many failed sign-in attempts" in throttled.text
    assert "ates_sso" not in throttled.headers.get("set-cookie", "")


def test_a_successful_login_clears_the_failures_of_its_address(provider, make_login, browser):
    login = make_login()
    allowed = provider.config.throttling.per_account_and_address
    for _ in range(allowed - 1):
        attempt(browser, provider, login.email, "wrong password!")
    assert attempt(browser, provider, login.email, login.password).status_code == 200

    for _ in range(allowed - 1):
        attempt(browser, provider, login.email, "wrong password!")

    assert attempt(browser, provider, login.email, login.password).status_code == 200


def test_repeated_failures_throttle_the_client_address(postgres_server, kafka_broker, browser):
    throttling = LoginThrottling(per_account=100, per_address=3)
    with running_provider(postgres_server.url, kafka_broker.bootstrap,
                          throttling=throttling) as provider:
        login = provider.create_login()
        for number in range(3):
            attempt(browser, provider, f"guess-{number}@popug.test", "wrong password!")

        throttled = attempt(browser, provider, login.email, login.password)

    assert throttled.status_code == 429
