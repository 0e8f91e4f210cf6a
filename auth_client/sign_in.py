"""Dashboard sign-in: the OAuth client side of the authorization-code flow.

Dashboards sign browsers in through the provider with the authorization-code flow (PKCE,
``state``, ``nonce``); one sign-in at the provider serves every dashboard, and signing out
anywhere signs out everywhere. Tokens are verified locally against the provider's JWKS
(:mod:`auth_client.verification`).

The dashboard's session is a signed, HttpOnly, SameSite=Lax cookie holding the tokens.
An expired access token is refreshed silently with the refresh token; the provider's
front-channel logout clears the cookie when the user signs out anywhere. Nothing signs
out without the user's confirmation at the provider (or a sign-out button of the
dashboard's own page, which ends that dashboard's session).

Usage in a dashboard::

    from fastapi import Depends, FastAPI
    from auth_client.guards import current_user, page_user, require_role
    from auth_client.sign_in import AuthClientConfig, install_auth
    from auth_client.verification import CurrentUser

    app = FastAPI()
    install_auth(app, AuthClientConfig.from_env("tasks"))   # adds /auth/login, /auth/callback,
                                                           # /auth/logout, the session cookie

    @app.get("/api/tasks")                                 # bearer token or session cookie;
    def tasks(user: CurrentUser = Depends(current_user)):  # 401 JSON when anonymous
        ...

    @app.post("/api/tasks/reshuffle")                      # 403 JSON for other roles
    def reshuffle(user: CurrentUser = Depends(require_role("admin", "manager"))):
        ...

    @app.get("/")                                          # anonymous browsers are redirected
    def board(user: CurrentUser = Depends(page_user)):     # to /auth/login?next=/
        ...

``AuthClientConfig.from_env(client_id)`` reads ``ATES_AUTH_URL`` (the issuer),
``ATES_<CLIENT>_URL`` or ``ATES_PUBLIC_HOST`` (the dashboard's URL), the client secret from
``ATES_AUTH_CLIENTS`` (development default otherwise), ``ATES_SECRET_KEY`` (signs the
cookie) and ``ATES_AUTH_INTERNAL_URL`` (the provider as seen from the server, if it differs).

Signing out: ``POST /auth/logout`` from the dashboard's own page (refused when another
site sent it) ends the dashboard's session; it and the link ``GET /auth/logout`` lead to the
provider, which asks the user to confirm before it ends the sessions of every dashboard.

Accounts deactivated or deleted since their token was issued: a service that keeps an
accounts replica (:mod:`auth_client.replica`) refuses them at once with
``refuse_inactive_accounts(app, sessions, Account)`` after ``install_auth``: bearer tokens
answer 401 JSON, browsers are sent to sign in again (which the provider refuses).

The provider loads the front-channel logout URL ``/auth/frontchannel-logout`` in a hidden
frame, so a dashboard must not forbid framing of that path by the provider
(:func:`dashboard_page_policy`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth_client.guards import ActiveAccountsOnly, LoginRequired, RefusalReason
from auth_client.pkce import s256_challenge
from auth_client.replica import AccountReplica, account_refusal
from auth_client.settings import (
    AUDIENCE,
    auth_url,
    clients_from_env,
    dashboard_url,
    dev_client_secret,
    refuse_public_secrets,
    secret_key,
)
from auth_client.verification import CurrentUser, InvalidToken, JwksCache, TokenVerifier, http_jwks
from platform_kit.db import engine_of
from platform_kit.security_headers import PagePolicy, inline_style_hashes, origin_of

LOGIN_STATE_MAX_AGE = 600
RECENT_REFRESH_SECONDS = 30.0
_CLEAR = "clear"


@dataclass(frozen=True)
class AuthClientConfig:
    """How a dashboard signs its users in at the provider.

    ``issuer`` is the provider's public URL (browser redirects, the tokens' ``iss``);
    ``provider_url`` is where this server reaches it, when that differs (e.g. inside a
    cluster). ``base_url`` is the dashboard's own public URL.
    """

    issuer: str
    client_id: str
    client_secret: str
    base_url: str
    secret_key: str
    audience: str = AUDIENCE
    scope: str = "openid profile email"
    provider_url: str | None = None
    session_max_age: timedelta = timedelta(hours=12)
    cookie_name: str | None = None

    @property
    def session_cookie(self) -> str:
        return self.cookie_name or f"ates_{self.client_id}"

    @property
    def login_cookie(self) -> str:
        return f"{self.session_cookie}_login"

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}/auth/callback"

    @property
    def backend_url(self) -> str:
        return (self.provider_url or self.issuer).rstrip("/")

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")

    @classmethod
    def from_env(cls, client_id: str, base_url: str | None = None,
                 environ: Mapping[str, str] | None = None) -> AuthClientConfig:
        """The client ``client_id`` as the ``ATES_*`` variables configure it.

        ``base_url`` defaults to ``ATES_<CLIENT>_URL`` or the dashboard's default port.
        """
        env = os.environ if environ is None else environ
        registered = {c.client_id: c for c in clients_from_env(env)}.get(client_id)
        client_secret = registered.client_secret if registered else None
        config = cls(issuer=auth_url(env), client_id=client_id,
                     client_secret=client_secret or dev_client_secret(client_id),
                     base_url=(base_url or dashboard_url(client_id, env)).rstrip("/"),
                     secret_key=secret_key(env), provider_url=env.get("ATES_AUTH_INTERNAL_URL"))
        refuse_public_secrets(config.issuer, config.secret_key,
                              {client_id: config.client_secret})
        return config


@dataclass(frozen=True)
class StoredSession:
    access_token: str
    refresh_token: str | None
    id_token: str | None
    sid: str | None


@dataclass(frozen=True)
class LoginState:
    state: str
    nonce: str
    code_verifier: str
    next: str


class SignInFailed(Exception):
    pass


class ProviderUnreachable(SignInFailed):
    """Not a refusal: the session may still be good once the provider answers again."""


class DashboardAuth:
    """The client side: sessions, the login flow, and who the caller is."""

    def __init__(self, config: AuthClientConfig, verifier: TokenVerifier | None = None):
        self.config = config
        jwks = JwksCache(http_jwks(f"{config.backend_url}/oauth/jwks"))
        self.verifier = verifier or TokenVerifier(config.issuer, config.audience, jwks)
        self.http = httpx.Client(timeout=10.0)
        self._sessions = URLSafeTimedSerializer(config.secret_key,
                                                salt=f"ates-session:{config.client_id}")
        self._logins = URLSafeTimedSerializer(config.secret_key,
                                              salt=f"ates-login:{config.client_id}")
        self._recent_refreshes: dict[str, tuple[float, StoredSession]] = {}
        self._refresh_lock = threading.Lock()

    # --- who is calling (guards.UserResolver) ---------------------------------------

    def user_from_bearer(self, token: str) -> CurrentUser:
        return self.verifier.current_user(token)

    def user_from_session(self, request: Request) -> CurrentUser | None:
        session = self.read_session(request)
        if session is None:
            return None
        try:
            return self.verifier.current_user(session.access_token)
        except InvalidToken:
            pass
        try:
            refreshed = self._refresh(session)
        except ProviderUnreachable:
            return None
        request.state.ates_session_update = refreshed or _CLEAR
        if refreshed is None:
            return None
        try:
            return self.verifier.current_user(refreshed.access_token)
        except InvalidToken:
            request.state.ates_session_update = _CLEAR
            return None

    # --- session cookie ---------------------------------------------------------------

    def read_session(self, request: Request) -> StoredSession | None:
        raw = request.cookies.get(self.config.session_cookie)
        if not raw:
            return None
        try:
            data = self._sessions.loads(raw, max_age=self._max_age)
            return StoredSession(**data)
        except (BadSignature, TypeError):
            return None

    @property
    def _max_age(self) -> int:
        return int(self.config.session_max_age.total_seconds())

    def write_session(self, response: Response, session: StoredSession) -> None:
        response.set_cookie(self.config.session_cookie, self._sessions.dumps(asdict(session)),
                            max_age=self._max_age, path="/", httponly=True, samesite="lax",
                            secure=self.config.secure_cookies)

    def clear_session(self, response: Response) -> None:
        response.delete_cookie(self.config.session_cookie, path="/", httponly=True,
                               samesite="lax", secure=self.config.secure_cookies)

    # --- silent refresh -------------------------------------------------------------

    def _refresh(self, session: StoredSession) -> StoredSession | None:
        if not session.refresh_token:
            return None
        key = hashlib.sha256(session.refresh_token.encode()).hexdigest()
        # Requests racing with the same expired session share one refresh: a second use
        # of the rotated refresh token would look like theft and end the session.
        with self._refresh_lock:
            now = time.monotonic()
            self._recent_refreshes = {k: v for k, v in self._recent_refreshes.items()
                                      if now - v[0] < RECENT_REFRESH_SECONDS}
            if key in self._recent_refreshes:
                return self._recent_refreshes[key][1]
            refreshed = self._request_refresh(session, session.refresh_token)
            if refreshed is not None:
                self._recent_refreshes[key] = (now, refreshed)
            return refreshed

    def _request_refresh(self, session: StoredSession, refresh_token: str
                         ) -> StoredSession | None:
        try:
            tokens = self._token_request({"grant_type": "refresh_token",
                                          "refresh_token": refresh_token})
        except ProviderUnreachable:
            raise
        except SignInFailed:
            return None
        return replace(session, access_token=tokens["access_token"],
                       refresh_token=tokens.get("refresh_token", session.refresh_token))

    def _token_request(self, form: dict[str, str]) -> dict[str, Any]:
        try:
            response = self.http.post(f"{self.config.backend_url}/oauth/token", data=form,
                                      auth=(self.config.client_id, self.config.client_secret))
        except httpx.HTTPError as error:
            raise ProviderUnreachable(f"the sign-in service is unreachable: {error}") from error
        if response.status_code != 200:
            raise SignInFailed(f"the sign-in service refused: {response.text[:200]}")
        tokens: dict[str, Any] = response.json()
        return tokens

    # --- login flow -----------------------------------------------------------------

    def begin_login(self, next_url: str) -> tuple[str, str]:
        """The provider URL to send the browser to, and the login-state cookie value."""
        login = LoginState(secrets.token_urlsafe(24), secrets.token_urlsafe(24),
                           secrets.token_urlsafe(48), safe_next(next_url))
        query = urlencode({
            "response_type": "code", "client_id": self.config.client_id,
            "redirect_uri": self.config.redirect_uri, "scope": self.config.scope,
            "state": login.state, "nonce": login.nonce,
            "code_challenge": s256_challenge(login.code_verifier), "code_challenge_method": "S256",
        })
        return f"{self.config.issuer}/oauth/authorize?{query}", self._logins.dumps(asdict(login))

    def complete_login(self, login_cookie: str | None, code: str, state: str
                       ) -> tuple[StoredSession, str]:
        """Exchange the code; returns the new session and where the user was going."""
        login = self._login_state(login_cookie)
        if not hmac.compare_digest(login.state, state):
            raise SignInFailed("the sign-in response does not belong to this browser")
        tokens = self._token_request({
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": self.config.redirect_uri, "code_verifier": login.code_verifier,
        })
        try:
            claims = self.verifier.id_token_claims(tokens["id_token"], self.config.client_id,
                                                   login.nonce)
            self.verifier.current_user(tokens["access_token"])
        except (InvalidToken, KeyError) as error:
            raise SignInFailed(f"the sign-in service sent unusable tokens: {error}") from error
        session = StoredSession(tokens["access_token"], tokens.get("refresh_token"),
                                tokens["id_token"], claims.get("sid"))
        return session, login.next

    def _login_state(self, raw: str | None) -> LoginState:
        if not raw:
            raise SignInFailed("the sign-in took too long or cookies are disabled")
        try:
            return LoginState(**self._logins.loads(raw, max_age=LOGIN_STATE_MAX_AGE))
        except (BadSignature, TypeError):
            raise SignInFailed("the sign-in took too long or cookies are disabled") from None

    def logout_url(self, session: StoredSession | None) -> str:
        """The provider's end-session URL: ends the SSO session for every dashboard."""
        params = {"client_id": self.config.client_id,
                  "post_logout_redirect_uri": f"{self.config.base_url}/"}
        if session is not None and session.id_token:
            params["id_token_hint"] = session.id_token
        return f"{self.config.issuer}/oauth/logout?{urlencode(params)}"


class SessionCookieWriter:
    """Writes the cookie of a silently refreshed (or expired) session onto the response."""

    def __init__(self, app: ASGIApp, auth: DashboardAuth):
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            update = scope.get("state", {}).get("ates_session_update")
            if message["type"] == "http.response.start" and update is not None:
                carrier = Response()
                if update == _CLEAR:
                    self.auth.clear_session(carrier)
                else:
                    self.auth.write_session(carrier, update)
                cookie_headers = [h for h in carrier.raw_headers if h[0] == b"set-cookie"]
                message = {**message, "headers": [*message.get("headers", []), *cookie_headers]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _failure_page(reason: str) -> HTMLResponse:
    body = (
        "<!doctype html><meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>Sign-in failed</title><h1>Sign-in failed</h1><p>{escape(reason)}</p>"
        "<p><a href='/auth/login'>Try again</a></p>"
    )
    return HTMLResponse(body, status_code=400)


def _refused_sign_out() -> HTMLResponse:
    body = (
        "<!doctype html><meta name=viewport content='width=device-width, initial-scale=1'>"
        "<title>Sign-out refused</title><h1>Sign-out refused</h1>"
        "<p>The request came from another site.</p><p><a href='/'>Back</a></p>"
    )
    return HTMLResponse(body, status_code=403)


def _from_another_site(request: Request, base_url: str) -> bool:
    """Whether a form post was sent by a page of another site (cross-site request forgery).

    Browsers name the page's origin in ``Origin`` on every POST; clients that are not
    browsers send neither header and cannot be forged into posting.
    """
    origin = request.headers.get("origin")
    if origin is not None:
        own = urlsplit(base_url)
        return origin.rstrip("/") != f"{own.scheme}://{own.netloc}"
    return request.headers.get("sec-fetch-site") == "cross-site"


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def install_auth(app: FastAPI, config: AuthClientConfig,
                 verifier: TokenVerifier | None = None) -> DashboardAuth:
    """Add sign-in to a dashboard app: routes under ``/auth``, the session cookie and the
    resolver that ``current_user``, ``require_role`` and ``page_user`` rely on."""
    auth = DashboardAuth(config, verifier)
    app.state.ates_auth = auth
    app.add_middleware(SessionCookieWriter, auth=auth)
    app.add_exception_handler(LoginRequired, _redirect_to_login)
    _add_routes(app, auth)
    return auth


def _redirect_to_login(_request: Request, error: Exception) -> Response:
    assert isinstance(error, LoginRequired)
    return _no_store(RedirectResponse(error.login_url(), status_code=303))


def _add_routes(app: FastAPI, auth: DashboardAuth) -> None:
    config = auth.config

    @app.get("/auth/login", include_in_schema=False)
    def login(next: str = "/") -> Response:
        url, login_cookie = auth.begin_login(next)
        response = RedirectResponse(url, status_code=302)
        response.set_cookie(config.login_cookie, login_cookie, max_age=LOGIN_STATE_MAX_AGE,
                            path="/auth", httponly=True, samesite="lax",
                            secure=config.secure_cookies)
        return _no_store(response)

    @app.get("/auth/callback", include_in_schema=False)
    def callback(request: Request, code: str = "", state: str = "", error: str = "",
                 error_description: str = "") -> Response:
        if error or not code:
            return _failure_page(error_description or error or "no authorization code")
        try:
            session, next_url = auth.complete_login(request.cookies.get(config.login_cookie),
                                                    code, state)
        except SignInFailed as failure:
            return _failure_page(str(failure))
        response = RedirectResponse(next_url, status_code=303)
        auth.write_session(response, session)
        response.delete_cookie(config.login_cookie, path="/auth")
        return _no_store(response)

    @app.get("/auth/logout", include_in_schema=False)
    def logout_link(request: Request) -> Response:
        """A link anyone may follow: it only leads to the provider's confirmation page."""
        return _no_store(RedirectResponse(auth.logout_url(auth.read_session(request)),
                                          status_code=303))

    @app.post("/auth/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        """The dashboard's sign-out button: ends its own session, then asks the provider."""
        if _from_another_site(request, config.base_url):
            return _refused_sign_out()
        response = RedirectResponse(auth.logout_url(auth.read_session(request)), status_code=303)
        auth.clear_session(response)
        return _no_store(response)

    @app.get("/auth/frontchannel-logout", include_in_schema=False)
    def frontchannel_logout(request: Request, iss: str = "", sid: str = "") -> Response:
        """Called by the provider (in a hidden frame) when the user signed out anywhere."""
        response = _no_store(HTMLResponse("signed out"))
        session = auth.read_session(request)
        issuer_matches = not iss or iss == config.issuer
        if session is not None and issuer_matches and (not sid or sid == session.sid):
            auth.clear_session(response)
        return response


def safe_next(target: str | None, default: str = "/") -> str:
    """Only same-site paths: never an absolute or protocol-relative URL (open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    return target


FRONTCHANNEL_LOGOUT_PATH = "/auth/frontchannel-logout"


def dashboard_page_policy(config: AuthClientConfig, *templates: Path) -> PagePolicy:
    """The security headers' policy of a dashboard: the provider (and nobody else) may frame
    its front-channel sign-out URL; ``templates`` may hold inline ``<style>`` elements."""
    return PagePolicy(style_hashes=inline_style_hashes(*templates),
                      framed_by={FRONTCHANNEL_LOGOUT_PATH: origin_of(config.issuer)})


def replica_refusal(sessions: sessionmaker[Session], model: type[AccountReplica]
                    ) -> RefusalReason:
    """Asks the replica (``account_refusal``). Service clients, whose ``sub`` is not an
    account id, and accounts the replica has not heard of yet are let through.

    It runs on every authenticated request, so it is one round trip: a single-row read
    on an autocommit connection needs no transaction to begin and roll back.
    """
    engine = engine_of(sessions).execution_options(isolation_level="AUTOCOMMIT")

    def reason(subject: str) -> str | None:
        try:
            account_id = uuid.UUID(subject)
        except ValueError:
            return None
        with engine.connect() as connection:
            return account_refusal(connection, model, account_id)

    return reason


def refuse_inactive_accounts(app: FastAPI, sessions: sessionmaker[Session],
                             model: type[AccountReplica]) -> None:
    """Refuse callers whose account the app's replica knows deactivated or deleted."""
    app.state.ates_auth = ActiveAccountsOnly(app.state.ates_auth,
                                             replica_refusal(sessions, model))
