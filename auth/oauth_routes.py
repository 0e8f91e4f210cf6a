"""HTTP routes of the OAuth / OpenID Connect endpoints."""

from __future__ import annotations

from typing import Annotated, Any

from authlib.oauth2 import OAuth2Error
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from auth.api import Responses
from auth.oauth import OAuthRequest, Provider, read_oauth_request
from auth.sessions import SignedIn, find_session
from auth.web import SSO_COOKIE, Pages
from auth_client.guards import current_user
from auth_client.verification import CurrentUser
from platform_kit.threads import ThreadLane


class OAuthErrorOut(BaseModel):
    """An OAuth error answer (RFC 6749 section 5.2)."""

    error: str
    error_description: str | None = None


def _oauth_error(description: str) -> dict[str, Any]:
    return {"model": OAuthErrorOut, "description": description}


def _page(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


REDIRECT = {"description": "To the login page, or back to the client with a code or an error"}
TOKEN_ERRORS: Responses = {400: _oauth_error("Invalid request or grant"),
                           401: _oauth_error("The client did not authenticate")}
LOGOUT_PAGES: Responses = {200: _page("The confirmation, or the signed-out page"),
                           302: {"description": "Back to the client's post-logout redirect URI"},
                           400: _page("Invalid sign-out request"),
                           403: _page("The confirmation's form has expired")}


# Token requests run on threads of their own. In a burst of sign-ins, the login forms
# wait for their turn in their own lane (auth.web.LOGIN_THREADS_PER_HASH), then at the
# password hash (auth.passwords.Turns); a sign-in's last step, its token request, must not
# wait for a thread behind later sign-ins' first steps.
TOKEN_THREADS = 8


def oauth_router(provider: Provider, pages: Pages) -> APIRouter:
    router = APIRouter(tags=["OAuth 2.1 / OpenID Connect"])
    issuer = provider.config.issuer

    def signed_in(request: Request) -> SignedIn | None:
        with provider.sessions() as session:
            return find_session(session, request.cookies.get(SSO_COOKIE))

    @router.get("/.well-known/openid-configuration", summary="OpenID provider metadata")
    @router.get("/.well-known/oauth-authorization-server", include_in_schema=False)
    def discovery() -> dict[str, Any]:
        return provider.discovery()

    @router.get("/oauth/jwks", summary="Public keys that verify the provider's tokens")
    def jwks() -> JSONResponse:
        return JSONResponse(provider.keys.jwks(), headers={"Cache-Control": "max-age=300"})

    @router.get("/oauth/authorize", summary="Authorization endpoint (code + PKCE)",
                responses={302: REDIRECT, 400: _oauth_error("Unknown client or redirect URI")})
    async def authorize(request: Request) -> Response:
        oauth_request = await read_oauth_request(request, issuer)
        return await run_in_threadpool(provider.authorize, oauth_request,
                                       request.cookies.get(SSO_COOKIE))

    token_threads = ThreadLane(TOKEN_THREADS)

    @router.post("/oauth/token", summary="Token endpoint", responses=TOKEN_ERRORS)
    async def token(request: Request) -> Response:
        oauth_request = await read_oauth_request(request, issuer)
        return await token_threads.run(provider.token, oauth_request)

    @router.post("/oauth/revoke", summary="Token revocation (RFC 7009)", responses=TOKEN_ERRORS)
    async def revoke(request: Request) -> Response:
        return await run_in_threadpool(provider.revoke, await read_oauth_request(request, issuer))

    @router.get("/oauth/userinfo", summary="OpenID userinfo")
    @router.post("/oauth/userinfo", summary="OpenID userinfo", operation_id="userinfo_post")
    def userinfo(user: Annotated[CurrentUser, Depends(current_user)]) -> dict[str, str]:
        return {"sub": user.id, "email": user.email, "name": user.name, "role": user.role}

    @router.get("/oauth/logout", summary="Ask to end the SSO session (RP-initiated logout)",
                response_class=HTMLResponse, responses=LOGOUT_PAGES)
    @router.post("/oauth/logout", summary="End the SSO session (the confirmation's form)",
                 operation_id="logout_post", response_class=HTMLResponse, responses=LOGOUT_PAGES)
    async def logout(request: Request) -> Response:
        oauth_request = await read_oauth_request(request, issuer)
        return await run_in_threadpool(lambda: _logout(request, oauth_request))

    def _logout(request: Request, oauth_request: OAuthRequest) -> Response:
        try:
            logout_request = provider.validate_logout(oauth_request)
        except OAuth2Error as error:
            return pages.message(request, "Sign-out failed", error.description or error.error,
                                 status_code=400)
        # Even with a valid id_token_hint: a link followed from anywhere must not sign out.
        if request.method == "GET":
            return _confirmation(request, logout_request.redirect_uri)
        if not pages.csrf_valid(request, oauth_request.form.get("csrf_token")):
            return pages.csrf_failure(request)
        frontchannel_urls = provider.end_sessions(signed_in(request),
                                                  logout_request.id_token_claims)
        response = _signed_out(request, frontchannel_urls, logout_request.redirect_uri)
        pages.clear_sso_cookie(response)
        return response

    def _confirmation(request: Request, continue_url: str | None) -> Response:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "csrf_token"]
        return pages.render(request, "confirm_logout.html",
                            {"params": params, "cancel_url": continue_url or "/"})

    def _signed_out(request: Request, frontchannel_urls: list[str],
                    continue_url: str | None) -> Response:
        if continue_url and not frontchannel_urls:
            return RedirectResponse(continue_url, status_code=302)
        return pages.render(request, "signed_out.html", {
            "frontchannel_urls": frontchannel_urls, "continue_url": continue_url})

    return router
