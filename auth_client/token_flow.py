"""Getting tokens without a browser: the code + PKCE flow of the public client ``ates-cli``.

The flow is the one a browser would go through (authorize, login form, authorize again)
driven over plain HTTP; the redirect to the loopback callback
``http://127.0.0.1:<port>/callback`` is read from the ``Location`` header.
"""

from __future__ import annotations

import secrets
import socket
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

from auth_client.pkce import pkce_pair
from auth_client.settings import CLI_CLIENT_ID

MAX_REDIRECTS = 10


class TokenFlowError(Exception):
    pass


class _HiddenInputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        fields = dict(attrs)
        if tag == "input" and fields.get("type") == "hidden" and fields.get("name"):
            self.values[fields["name"] or ""] = fields.get("value") or ""


def loopback_port() -> int:
    """A free port on the loopback address, for the callback the redirect names."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        port: int = listener.getsockname()[1]
        return port


def hidden_inputs(html: str) -> dict[str, str]:
    parser = _HiddenInputs()
    parser.feed(html)
    return parser.values


def obtain_tokens(auth_url: str, email: str, password: str, client_id: str = CLI_CLIENT_ID,
                  scope: str = "openid profile email", timeout: float = 30.0,
                  code: str | None = None) -> dict[str, Any]:
    """Sign in as ``email`` and return the token response (access, refresh and ID token).

    ``code`` answers the second factor (a TOTP or recovery code) of an account that has one."""
    auth_url = auth_url.rstrip("/")
    redirect_uri = f"http://127.0.0.1:{loopback_port()}/callback"
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
              "scope": scope, "state": state, "nonce": nonce, "code_challenge": challenge,
              "code_challenge_method": "S256"}
    with httpx.Client(base_url=auth_url, timeout=timeout) as http:
        response = http.get("/oauth/authorize", params=params)
        callback = _follow_to_callback(http, response, redirect_uri, email, password, code)
        code = _code_from(callback, state)
        tokens = http.post("/oauth/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "client_id": client_id, "code_verifier": verifier})
    if tokens.status_code != 200:
        raise TokenFlowError(f"token request refused: {tokens.text}")
    answer: dict[str, Any] = tokens.json()
    return answer


def _follow_to_callback(http: httpx.Client, response: httpx.Response, redirect_uri: str,
                        email: str, password: str, code: str | None = None) -> str:
    signed_in = second_factor_given = False
    for _ in range(MAX_REDIRECTS):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if location.startswith(redirect_uri):
                return location
            response = http.get(location)
        elif response.status_code == 200 and urlsplit(str(response.url)).path == (
                "/login/two-factor") and not second_factor_given:
            if code is None:
                raise TokenFlowError("this account signs in with a second factor: give the "
                                     "code of its authenticator app (--code)")
            form = hidden_inputs(response.text) | {"code": code}
            response = http.post("/login/two-factor", data=form)
            second_factor_given = True
        elif response.status_code == 200 and not signed_in and "password" in response.text:
            form = hidden_inputs(response.text) | {"email": email, "password": password}
            response = http.post("/login", data=form)
            signed_in = True
        else:
            raise TokenFlowError(_refusal(response))
    raise TokenFlowError("too many redirects")


def _refusal(response: httpx.Response) -> str:
    if response.status_code == 401 and "/login/two-factor" in str(response.url):
        return "the second-factor code is not right"
    if response.status_code == 401:
        return "invalid email or password"
    if response.status_code == 429:
        return "too many failed sign-in attempts; try again later"
    return f"sign-in failed with HTTP {response.status_code}: {response.text[:300]}"


def _code_from(callback: str, state: str) -> str:
    query = parse_qs(urlsplit(callback).query)
    if "error" in query:
        raise TokenFlowError(f"authorization refused: {query['error'][0]}")
    if query.get("state", [""])[0] != state:
        raise TokenFlowError("the authorization response carries the wrong state")
    return query["code"][0]
