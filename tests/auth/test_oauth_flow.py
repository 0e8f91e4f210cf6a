"""The provider over real HTTP: authorization code + PKCE, ID tokens, client credentials."""

from __future__ import annotations

import secrets
import threading
import time
from contextlib import ExitStack
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.oidc.discovery import OpenIDProviderMetadata

from auth.web import LOGIN_THREADS_PER_HASH
from auth_client.pkce import pkce_pair
from auth_client.token_flow import hidden_inputs
from auth_client.verification import TokenVerifier
from tests.auth.support import Browser, Login, RunningProvider, bearer

CALLBACK = "http://127.0.0.1:43123/callback"


class Authorization:
    """One authorization request of the public client ``ates-cli``."""

    def __init__(self, provider: RunningProvider, redirect_uri: str = CALLBACK, **overrides):
        self.provider = provider
        self.redirect_uri = redirect_uri
        self.verifier, challenge = pkce_pair()
        self.state, self.nonce = secrets.token_urlsafe(8), secrets.token_urlsafe(8)
        self.params = {
            "response_type": "code", "client_id": "ates-cli", "redirect_uri": redirect_uri,
            "scope": "openid profile email", "state": self.state, "nonce": self.nonce,
            "code_challenge": challenge, "code_challenge_method": "S256",
        } | overrides
        self.params = {k: v for k, v in self.params.items() if v is not None}

    def start(self, browser: Browser) -> httpx.Response:
        response = browser.http.get(f"{self.provider.url}/oauth/authorize", params=self.params)
        return browser.follow(response, stop_at=self.redirect_uri)

    def code(self, browser: Browser, login: Login | None = None) -> str:
        response = self.start(browser)
        if login is not None:
            response = browser.sign_in(response, login, stop_at=self.redirect_uri)
        query = self.callback_query(response)
        assert query["state"] == [self.state]
        return query["code"][0]

    def callback_query(self, response: httpx.Response) -> dict[str, list[str]]:
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        assert location.startswith(self.redirect_uri + "?")
        return parse_qs(urlsplit(location).query)

    def exchange(self, code: str, verifier: str | None = None,
                 redirect_uri: str | None = None) -> httpx.Response:
        return httpx.post(f"{self.provider.url}/oauth/token", data={
            "grant_type": "authorization_code", "code": code, "client_id": "ates-cli",
            "redirect_uri": redirect_uri or self.redirect_uri,
            "code_verifier": verifier or self.verifier,
        })


@pytest.fixture
def browser():
    browser = Browser()
    yield browser
    browser.close()


@pytest.fixture
def verifier(provider: RunningProvider) -> TokenVerifier:
    return provider.verifier()


def test_discovery_describes_the_provider(provider: RunningProvider):
    metadata = httpx.get(f"{provider.url}/.well-known/openid-configuration").json()

    OpenIDProviderMetadata(metadata).validate()
    assert metadata["issuer"] == provider.url
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["id_token_signing_alg_values_supported"] == ["RS256"]
    assert metadata["end_session_endpoint"] == f"{provider.url}/oauth/logout"


def test_jwks_publishes_public_rs256_keys_with_ids(provider: RunningProvider):
    keys = httpx.get(f"{provider.url}/oauth/jwks").json()["keys"]

    assert keys and all(k["kty"] == "RSA" and k["alg"] == "RS256" and k["kid"] for k in keys)
    assert not any("d" in key or "p" in key for key in keys)


def test_code_flow_with_pkce_yields_verified_tokens_and_userinfo(
    provider, make_login, browser, verifier
):
    login = make_login("accountant", name="Abby Accountant")
    authorization = Authorization(provider)

    login_page = authorization.start(browser)
    assert login_page.status_code == 200 and 'name="csrf_token"' in login_page.text
    callback = browser.sign_in(login_page, login, stop_at=CALLBACK)
    code = authorization.callback_query(callback)["code"][0]
    tokens = authorization.exchange(code).json()

    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
    id_claims = verifier.id_token_claims(tokens["id_token"], "ates-cli", authorization.nonce)
    assert id_claims["sub"] == login.id and id_claims["email"] == login.email
    claims = verifier.access_claims(tokens["access_token"])
    assert claims["aud"] == "ates" and claims["iss"] == provider.url
    assert (claims["sub"], claims["email"], claims["name"], claims["role"]) == (
        login.id, login.email, "Abby Accountant", "accountant")
    assert claims["exp"] - claims["iat"] == 900 and claims["jti"]
    userinfo = httpx.get(f"{provider.url}/oauth/userinfo", headers=bearer(tokens["access_token"]))
    assert userinfo.json() == {"sub": login.id, "email": login.email,
                               "name": "Abby Accountant", "role": "accountant"}


def test_a_logout_link_with_an_id_token_hint_asks_before_signing_out(provider, make_login,
                                                                     browser):
    authorization = Authorization(provider)
    id_token = authorization.exchange(authorization.code(browser, make_login())).json()[
        "id_token"]

    page = browser.http.get(f"{provider.url}/oauth/logout",
                            params={"id_token_hint": id_token, "client_id": "ates-cli"})

    assert page.status_code == 200 and "Sign out?" in page.text
    again = Authorization(provider)
    assert again.callback_query(again.start(browser))["code"]  # still signed in


def test_id_token_nonce_must_match_the_request(provider, make_login, browser, verifier):
    authorization = Authorization(provider)
    tokens = authorization.exchange(authorization.code(browser, make_login())).json()

    with pytest.raises(Exception, match="nonce"):
        verifier.id_token_claims(tokens["id_token"], "ates-cli", "another nonce")


def test_signed_in_browser_gets_a_code_without_a_password_prompt(provider, make_login, browser):
    Authorization(provider).code(browser, make_login())

    assert Authorization(provider).code(browser)  # the SSO cookie is enough


def test_the_login_form_of_an_authorization_answers_with_the_code_at_once(provider, make_login,
                                                                        browser):
    login = make_login()
    authorization = Authorization(provider)
    page = authorization.start(browser)
    form = hidden_inputs(page.text) | {"email": login.email, "password": login.password}

    answer = browser.http.post(f"{provider.url}/login", data=form)

    query = authorization.callback_query(answer)  # back to the client, not to /oauth/authorize
    assert query["state"] == [authorization.state]
    assert authorization.exchange(query["code"][0]).status_code == 200
    assert Authorization(provider).code(browser)  # and the browser is signed in


# anyio's default thread pool: pages, and the login forms before they had a lane of their own
SHARED_THREADS = 40


def test_a_burst_of_login_forms_waits_in_its_own_lane_while_pages_and_tokens_are_answered(
        provider, make_login, browser):
    # A burst of sign-ins while every password hash turn is taken: only the login lane's
    # few threads wait for a turn, the other forms wait without a thread; a sign-in's token
    # request and any page (shared pool) are answered meanwhile.
    authorization = Authorization(provider)
    code = authorization.code(browser, make_login())
    turns = provider.accounts.passwords.turns
    lane = provider.config.password_hashing.at_once * LOGIN_THREADS_PER_HASH
    waiting_sign_ins: list[threading.Thread] = []
    with ExitStack() as every_turn_taken:
        for _ in range(provider.config.password_hashing.at_once):
            every_turn_taken.enter_context(turns.turn())
        for number in range(SHARED_THREADS + 5):
            waiting_sign_ins.append(threading.Thread(target=sign_in_as_nobody,
                                                     args=(provider, number)))
            waiting_sign_ins[-1].start()
        wait_until(lambda: turns.waiting >= lane)

        answer = authorization.exchange(code)
        page = httpx.get(f"{provider.url}/login", timeout=10)

        assert answer.status_code == 200 and answer.json()["access_token"]
        assert page.status_code == 200
        assert turns.waiting == lane
    for sign_in in waiting_sign_ins:
        sign_in.join(timeout=60)


def sign_in_as_nobody(provider: RunningProvider, number: int) -> None:
    page = Browser()
    try:
        form = page.get(f"{provider.url}/login")
        page.http.post(f"{provider.url}/login", data=hidden_inputs(form.text) | {
            "email": f"nobody-{number}-{secrets.token_hex(4)}@popug.test", "password": "x"})
    finally:
        page.close()


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.05)


def test_prompt_login_asks_for_the_password_again(provider, make_login, browser):
    login = make_login()
    Authorization(provider).code(browser, login)

    again = Authorization(provider, prompt="login")
    page = again.start(browser)
    assert page.status_code == 200 and 'name="password"' in page.text
    assert again.callback_query(browser.sign_in(page, login, stop_at=CALLBACK))["code"]


def test_prompt_none_without_session_answers_login_required(provider, browser):
    authorization = Authorization(provider, prompt="none")

    query = authorization.callback_query(authorization.start(browser))

    assert query["error"] == ["login_required"] and query["state"] == [authorization.state]


def test_wrong_code_verifier_is_refused(provider, make_login, browser):
    authorization = Authorization(provider)
    code = authorization.code(browser, make_login())

    response = authorization.exchange(code, verifier=pkce_pair()[0])

    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_reused_code_is_refused_and_revokes_what_it_issued(provider, make_login, browser):
    authorization = Authorization(provider)
    code = authorization.code(browser, make_login())
    first = authorization.exchange(code)
    assert first.status_code == 200

    replay = authorization.exchange(code)
    refresh = httpx.post(f"{provider.url}/oauth/token", data={
        "grant_type": "refresh_token", "client_id": "ates-cli",
        "refresh_token": first.json()["refresh_token"]})

    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"


def test_foreign_redirect_uri_is_refused_without_redirecting(provider, browser):
    authorization = Authorization(provider, redirect_uri="https://evil.example/callback")

    response = browser.http.get(f"{provider.url}/oauth/authorize", params=authorization.params)

    assert response.status_code == 400
    assert "location" not in response.headers


@pytest.mark.parametrize("redirect_uri", [
    f"{CALLBACK}\n", f"{CALLBACK}\r\n", f"{CALLBACK}%0A", f"{CALLBACK} ",
])
def test_loopback_redirect_uri_with_a_trailing_line_break_is_refused(provider, browser,
                                                                     redirect_uri):
    authorization = Authorization(provider, redirect_uri=redirect_uri)

    response = browser.http.get(f"{provider.url}/oauth/authorize", params=authorization.params)

    assert response.status_code == 400
    assert "location" not in response.headers


def test_redirect_uri_must_match_exactly_at_the_token_endpoint(provider, make_login, browser):
    authorization = Authorization(provider)
    code = authorization.code(browser, make_login())

    response = authorization.exchange(code, redirect_uri="http://127.0.0.1:43124/callback")

    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("overrides", [
    {"code_challenge": None, "code_challenge_method": None},
    {"code_challenge_method": "plain"},
    {"nonce": None},
])
def test_authorization_without_pkce_s256_or_nonce_is_refused(provider, make_login, browser,
                                                             overrides):
    Authorization(provider).code(browser, make_login())  # signed in: errors come back at once
    authorization = Authorization(provider, **overrides)

    query = authorization.callback_query(authorization.start(browser))

    assert query["error"] == ["invalid_request"] and "code" not in query


def test_a_nonce_already_used_for_a_code_is_refused(provider, make_login, browser):
    first = Authorization(provider)
    first.code(browser, make_login())  # signed in: the next one comes back at once
    again = Authorization(provider, nonce=first.nonce)

    query = again.callback_query(again.start(browser))

    assert query["error"] == ["invalid_request"] and "code" not in query


def test_a_nonce_used_for_a_code_while_the_login_page_was_open_is_refused_at_sign_in(
        provider, make_login, browser):
    login_first = Authorization(provider)
    login_page = login_first.start(browser)  # not signed in yet: the login form
    elsewhere = Browser()
    try:
        Authorization(provider, nonce=login_first.nonce).code(elsewhere, make_login())
    finally:
        elsewhere.close()

    query = login_first.callback_query(
        browser.sign_in(login_page, make_login(), stop_at=CALLBACK))

    assert query["error"] == ["invalid_request"] and "code" not in query


def test_a_code_of_an_account_deactivated_since_buys_no_token(provider, make_login, browser):
    login = make_login()
    authorization = Authorization(provider)
    code = authorization.code(browser, login)

    provider.accounts.deactivate_account(login.id)
    response = authorization.exchange(code)

    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_service_client_gets_a_token_with_client_credentials(provider, verifier):
    response = httpx.post(f"{provider.url}/oauth/token", data={"grant_type": "client_credentials"},
                          auth=("reports", "reports-secret"))

    tokens = response.json()
    assert response.status_code == 200 and "refresh_token" not in tokens
    user = verifier.current_user(tokens["access_token"])
    assert (user.id, user.role) == ("reports", "accountant")


@pytest.mark.parametrize("client, secret", [("reports", "wrong"), ("ates-cli", None)])
def test_client_credentials_need_a_confidential_client(provider, client, secret):
    data = {"grant_type": "client_credentials"}
    auth = (client, secret) if secret else None
    if secret is None:
        data["client_id"] = client

    response = httpx.post(f"{provider.url}/oauth/token", data=data, auth=auth)

    assert response.status_code in (400, 401)
    assert response.json()["error"] in ("invalid_client", "unauthorized_client")


def test_revoked_refresh_token_no_longer_refreshes(provider, make_login):
    tokens = provider.tokens_for(make_login())

    revoked = httpx.post(f"{provider.url}/oauth/revoke", data={
        "token": tokens["refresh_token"], "token_type_hint": "refresh_token",
        "client_id": "ates-cli"})
    refresh = httpx.post(f"{provider.url}/oauth/token", data={
        "grant_type": "refresh_token", "client_id": "ates-cli",
        "refresh_token": tokens["refresh_token"]})

    assert revoked.status_code == 200
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
