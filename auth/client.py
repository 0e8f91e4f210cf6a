"""The client side of aTES sign-in: everything other services import from ``auth``.

Tokens are verified locally against the provider's JWKS (RS256 only; ``iss``, ``aud``
and ``exp`` always checked); unknown key ids trigger a refetch, so key rotation needs no
restart. Dashboards sign browsers in through the provider with the authorization-code
flow (PKCE, ``state``, ``nonce``); one sign-in at the provider serves every dashboard, and
signing out anywhere signs out everywhere.

Usage in a dashboard::

    from fastapi import Depends, FastAPI
    from auth.client import (AuthClientConfig, CurrentUser, current_user, install_auth,
                             page_user, require_role)

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
accounts replica (``auth.replica``) refuses them at once with
``refuse_inactive_accounts(app, sessions, Account)`` after ``install_auth``: bearer tokens
answer 401 JSON, browsers are sent to sign in again (which the provider refuses).

The provider loads the front-channel logout URL ``/auth/frontchannel-logout`` in a hidden
frame, so a dashboard must not forbid framing of that path by the provider.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, Request
from sqlalchemy.orm import Session, sessionmaker

from auth.config import dashboard_url
from auth.dashboard import AuthClientConfig, DashboardAuth, install_auth
from auth.domain import ROLES, Role
from auth.forms import FormGuard
from auth.guards import (
    LoginRequired,
    UserResolver,
    current_user,
    optional_user,
    page_user,
    require_page_role,
    require_role,
)
from auth.replica import AccountReplica
from auth.verification import CurrentUser, InvalidToken, JwksCache, TokenVerifier, http_jwks
from platform_kit.security_headers import PagePolicy, inline_style_hashes, origin_of

__all__ = [
    "ROLES",
    "AuthClientConfig",
    "CurrentUser",
    "DashboardAuth",
    "FormGuard",
    "InvalidToken",
    "JwksCache",
    "LoginRequired",
    "Role",
    "TokenVerifier",
    "current_user",
    "dashboard_page_policy",
    "dashboard_url",
    "http_jwks",
    "install_auth",
    "optional_user",
    "page_user",
    "refuse_inactive_accounts",
    "require_page_role",
    "require_role",
]

FRONTCHANNEL_LOGOUT_PATH = "/auth/frontchannel-logout"


def dashboard_page_policy(config: AuthClientConfig, *templates: Path) -> PagePolicy:
    """The security headers' policy of a dashboard: the provider (and nobody else) may frame
    its front-channel sign-out URL; ``templates`` may hold inline ``<style>`` elements."""
    return PagePolicy(style_hashes=inline_style_hashes(*templates),
                      framed_by={FRONTCHANNEL_LOGOUT_PATH: origin_of(config.issuer)})


# Why an account may no longer act, by what its replica row says; None when it may.
RefusalReason = Callable[[str], str | None]


def replica_refusal(sessions: sessionmaker[Session], model: type[AccountReplica]
                    ) -> RefusalReason:
    """Asks the replica (one primary-key lookup). Service clients, whose ``sub`` is not an
    account id, and accounts the replica has not heard of yet are let through."""

    def reason(subject: str) -> str | None:
        try:
            account_id = uuid.UUID(subject)
        except ValueError:
            return None
        with sessions() as session:
            account = session.get(model, account_id)
        if account is None:
            return None
        if account.deleted:
            return "the account is deleted"
        # A row created ahead of its account.created (version 0) is not known inactive yet.
        if not account.active and account.version > 0:
            return "the account is deactivated"
        return None

    return reason


class ActiveAccountsOnly:
    """A :class:`UserResolver` that also refuses accounts no longer allowed to act."""

    def __init__(self, resolver: UserResolver, refusal: RefusalReason):
        self.resolver = resolver
        self.refusal = refusal

    def __getattr__(self, name: str):
        return getattr(self.resolver, name)

    def user_from_bearer(self, token: str) -> CurrentUser:
        user = self.resolver.user_from_bearer(token)
        reason = self.refusal(user.id)
        if reason is not None:
            raise InvalidToken(reason)
        return user

    def user_from_session(self, request: Request) -> CurrentUser | None:
        user = self.resolver.user_from_session(request)
        if user is None or self.refusal(user.id) is not None:
            return None
        return user


def refuse_inactive_accounts(app: FastAPI, sessions: sessionmaker[Session],
                             model: type[AccountReplica]) -> None:
    """Refuse callers whose account the app's replica knows deactivated or deleted."""
    app.state.ates_auth = ActiveAccountsOnly(app.state.ates_auth,
                                             replica_refusal(sessions, model))
