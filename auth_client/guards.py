"""FastAPI dependencies that say who is calling and whether they may.

An app opts in by putting a :class:`UserResolver` on ``app.state.ates_auth`` (done by
``auth_client.sign_in.install_auth`` for dashboards and by the provider for itself).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Protocol, TypeVar
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool

from auth_client.replica import AccountMayNotAct
from auth_client.verification import CurrentUser, InvalidToken
from platform_kit.openapi import BEARER

# Declares the bearer scheme in the OpenAPI description; the header itself is read below.
BearerScheme = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]


class UserResolver(Protocol):
    def user_from_bearer(self, token: str) -> CurrentUser:
        """The caller behind an access token; raises ``InvalidToken``."""

    def user_from_session(self, request: Request) -> CurrentUser | None:
        """The caller behind the browser's session cookie, if any."""


# Why an account may no longer act, by what the service's replica says; None when it may.
RefusalReason = Callable[[str], str | None]


class ActiveAccountsOnly:
    """A :class:`UserResolver` that also refuses accounts no longer allowed to act."""

    def __init__(self, resolver: UserResolver, refusal: RefusalReason):
        self.resolver = resolver
        self.refusal = refusal

    def __getattr__(self, name: str) -> Any:
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


class LoginRequired(Exception):
    """Raised by page dependencies; turned into a redirect to ``/auth/login?next=...``."""

    def __init__(self, next_url: str):
        super().__init__(next_url)
        self.next_url = next_url

    def login_url(self) -> str:
        return "/auth/login?next=" + quote(self.next_url, safe="")


def _resolver(request: Request) -> UserResolver:
    resolver: UserResolver | None = getattr(request.app.state, "ates_auth", None)
    if resolver is None:
        raise RuntimeError("authentication is not installed on this app (see auth_client.sign_in)")
    return resolver


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail,
                         headers={"WWW-Authenticate": "Bearer"})


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("Authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Authorization header must be 'Bearer <access token>'")
    return token.strip()


def optional_user(request: Request, _scheme: BearerScheme = None) -> CurrentUser | None:
    """The caller, from a bearer token or else the session cookie; None when anonymous."""
    return _identify(request, _resolver(request))


def _identify(request: Request, resolver: UserResolver) -> CurrentUser | None:
    token = _bearer_token(request)
    if token is None:
        return resolver.user_from_session(request)
    try:
        return resolver.user_from_bearer(token)
    except InvalidToken as error:
        raise _unauthorized(str(error)) from error


def current_user(request: Request, _scheme: BearerScheme = None) -> CurrentUser:
    """Dependency for APIs: the caller, or 401 JSON."""
    user = optional_user(request)
    if user is None:
        raise _unauthorized("not authenticated")
    return user


Result = TypeVar("Result")


async def for_caller(request: Request, work: Callable[[CurrentUser], Result], *,
                     work_checks_standing: bool = False) -> Result:
    """``work`` for the request's caller (401 JSON when there is none), on a worker thread:
    identifying the caller (whose account is checked in the database) and the work both
    wait on I/O, so one thread does both, and the answer is built back on the event loop.

    ``work_checks_standing`` says the work itself refuses, with :class:`AccountMayNotAct`,
    an account no longer allowed to act, in its own transaction: the separate look-up in
    the replica is then left out (one round trip fewer).
    """
    resolver = _resolver(request)
    if work_checks_standing and isinstance(resolver, ActiveAccountsOnly):
        resolver = resolver.resolver

    def identified_work() -> Result:
        user = _identify(request, resolver)
        if user is None:
            raise _unauthorized("not authenticated")
        try:
            return work(user)
        except AccountMayNotAct as refusal:
            raise _unauthorized(str(refusal)) from refusal

    return await run_in_threadpool(identified_work)


def _forbidden(roles: tuple[str, ...]) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN,
                         f"this needs one of the roles: {', '.join(roles)}")


def _with_role(roles: tuple[str, ...], identify: Callable[[Request], CurrentUser]
               ) -> Callable[[Request], CurrentUser]:
    def dependency(request: Request, _scheme: BearerScheme = None) -> CurrentUser:
        user = identify(request)
        if not user.has_role(*roles):
            raise _forbidden(roles)
        return user

    return dependency


def require_role(*roles: str) -> Callable[[Request], CurrentUser]:
    """Dependency for APIs: the caller if their role is one of ``roles`` (401/403 JSON)."""
    return _with_role(roles, current_user)


def page_user(request: Request) -> CurrentUser:
    """Dependency for pages: the caller, or a redirect of the browser to the login."""
    user = optional_user(request)
    if user is None:
        query = f"?{request.url.query}" if request.url.query else ""
        raise LoginRequired(request.url.path + query)
    return user


def require_page_role(*roles: str) -> Callable[[Request], CurrentUser]:
    """Dependency for pages: like ``page_user``, then 403 for the wrong role."""
    return _with_role(roles, page_user)
