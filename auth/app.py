"""Wiring of the auth service: its web app and its background workers."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog
from fastapi import FastAPI, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from auth.api import accounts_router, install_error_handlers
from auth.config import AuthConfig
from auth.keys import SigningKeys
from auth.mail import Mailer
from auth.oauth import Provider
from auth.oauth_routes import oauth_router
from auth.queries import AccountNotFound, AccountQueries
from auth.security import SecurityService
from auth.security_api import security_api_router
from auth.security_pages import SecurityPages, security_router
from auth.seed import seed_demo_accounts
from auth.service import AccountService, utc_now
from auth.sessions import SignedIn, find_session
from auth.web import SSO_COOKIE, Pages, WebPages, web_router
from auth_client.settings import AUTH_PORT
from auth_client.verification import CurrentUser, InvalidToken, JwksCache, TokenVerifier
from messaging.outbox import Outbox
from messaging.relay import run_relay_forever
from platform_kit.db import make_engine, make_session_factory
from platform_kit.security_headers import PagePolicy, distinct_origins, inline_style_hashes
from platform_kit.service_app import Lifespan, create_ates_app
from platform_kit.settings import Settings
from platform_kit.spec import ServiceSpec, commands_in

SERVICE = "auth"
PAGE_TEMPLATES = Path(__file__).parent / "templates"
log = structlog.get_logger("auth")


@dataclass(frozen=True)
class AccountTokens:
    """How the provider's own API knows the caller: its tokens, checked against live accounts.

    Unlike other services it can look at the account itself, so a deactivation or a role
    change takes effect at once rather than when the access token expires.
    """

    verifier: TokenVerifier
    accounts: AccountQueries

    def user_from_bearer(self, token: str) -> CurrentUser:
        user = self.verifier.current_user(token)
        try:
            account = self.accounts.get_account(user.id)
        except AccountNotFound:
            raise InvalidToken("the token's account does not exist") from None
        if not account.active:
            raise InvalidToken("the account is deactivated")
        return CurrentUser(account.id, account.email, account.full_name, account.role)

    def user_from_session(self, request: Request) -> None:
        """The API takes bearer tokens only (no cookies, hence no cross-site forgery)."""
        return None


def create_app(settings: Settings, config: AuthConfig | None = None) -> FastAPI:
    config = config or AuthConfig.from_env()
    engine = make_engine(settings.database_for(SERVICE))
    sessions = make_session_factory(engine)
    accounts = AccountService(sessions, Outbox(settings), config, clock=utc_now)
    queries = AccountQueries(sessions)
    keys = SigningKeys(engine, config.retired_key_publication)
    provider = Provider(config, sessions, queries, keys)
    pages = Pages(config)

    app = create_ates_app(SERVICE, engine, settings,
                          description="Accounts and single sign-on (OAuth 2.1 / OpenID Connect).",
                          page_policy=_page_policy(config), lifespan=_lifespan(engine, keys))
    app.state.ates_auth = AccountTokens(local_verifier(config, keys), queries)
    app.state.accounts = accounts
    app.state.account_queries = queries
    app.state.provider = provider
    install_error_handlers(app)
    security = SecurityService(accounts, config)
    app.state.security = security
    security_pages = SecurityPages(security, queries, pages,
                                   Mailer(settings.smtp_url, config.mail_from),
                                   lambda request: _signed_in(sessions, request))
    # A request is matched against the routes in this order: a sign-in's (the OAuth
    # endpoints, the login form) come first, ahead of the many others.
    app.include_router(oauth_router(provider, pages))
    app.include_router(web_router(WebPages(accounts, queries, pages, config, security,
                                           security_pages.after_password,
                                           provider.authorize_after_sign_in)))
    app.include_router(accounts_router(accounts, queries))
    app.include_router(security_api_router(security, security_pages))
    app.include_router(security_router(security_pages))
    return app


def _signed_in(sessions: sessionmaker[Session], request: Request) -> SignedIn | None:
    with sessions() as session:
        return find_session(session, request.cookies.get(SSO_COOKIE))


def _page_policy(config: AuthConfig) -> PagePolicy:
    """The login and admin pages style themselves inline; the signed-out page loads every
    dashboard's front-channel sign-out URL in a frame."""
    frontchannel = [c.frontchannel_logout_uri for c in config.clients
                    if c.frontchannel_logout_uri]
    return PagePolicy(style_hashes=inline_style_hashes(*sorted(PAGE_TEMPLATES.glob("*.html"))),
                      frame_sources=distinct_origins(frontchannel))


def local_verifier(config: AuthConfig, keys: SigningKeys) -> TokenVerifier:
    """The provider's check of its own tokens. Its keys come from its own database, so an
    unknown key id is looked up there at once (no spacing of refetches, which protects a
    remote provider): a key rotated in by another process verifies from its first token."""
    return TokenVerifier(config.issuer, config.audience,
                         JwksCache(keys.jwks, max_age=60, refetch_interval=0.0))


def _lifespan(engine: Engine, keys: SigningKeys) -> Lifespan:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            keys.signing_key()  # the first start generates the signing key
        except Exception:
            log.exception("cannot prepare the signing key yet; will retry on first use")
        yield
        engine.dispose()

    return lifespan


def workers(settings: Settings) -> dict[str, Callable[[threading.Event], None]]:
    def relay(stop: threading.Event) -> None:
        engine = make_engine(settings.database_for(SERVICE), pool_size=2)
        try:
            run_relay_forever(engine, settings, stop)
        finally:
            engine.dispose()

    return {"relay": relay}


SPEC = ServiceSpec(name=SERVICE, port=AUTH_PORT, create_app=create_app, workers=workers,
                   migrations="auth.migrations", sends_mail=True, seed=seed_demo_accounts,
                   commands=commands_in("auth.cli"))
