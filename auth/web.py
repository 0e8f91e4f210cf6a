"""Pages of the provider: how they are rendered (templates, cookies, CSRF protection), the
login form, a home page, the admin's account pages and the frame's shared look (/static).

These pages use the provider's own SSO session cookie; dashboards never see it. The frame,
its look and one-time notices are the dashboards' too (:mod:`dashboard_kit`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from auth.config import AuthConfig
from auth.domain import ROLES, InvalidAccountData, Role
from auth.queries import AccountNotFound, AccountQueries
from auth.security import SecurityService, SignInResult
from auth.service import AccountChanges, AccountService, DuplicateEmail, SelfLockout
from auth.sessions import SignedIn, find_session
from auth_client.settings import DASHBOARD_PORTS
from auth_client.sign_in import safe_next
from dashboard_kit.forms import FormGuard, Notices
from dashboard_kit.pages import (
    SHARED_STATIC,
    SHARED_TEMPLATES,
    DashboardLinks,
    add_frame_globals,
    as_sentence,
)
from platform_kit.text_input import displayable, first_problem
from platform_kit.threads import ThreadLane

SSO_COOKIE = "ates_sso"
CSRF_COOKIE = "ates_auth_csrf"
NOTICE_COOKIE = "ates_auth_notice"

templates = Jinja2Templates(directory=[Path(__file__).parent / "templates", SHARED_TEMPLATES])
add_frame_globals(templates)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class Pages:
    def __init__(self, config: AuthConfig, links: DashboardLinks | None = None):
        self.config = config
        self.forms = FormGuard(config.secret_key, CSRF_COOKIE, config.secure_cookies)
        self.notices = Notices(config.secret_key, NOTICE_COOKIE, config.secure_cookies)
        links = links or DashboardLinks.from_env()
        self.links = DashboardLinks(links.tasks, links.accounting, links.analytics,
                                    config.issuer)

    def redirect(self, url: str, notice: str | None = None) -> RedirectResponse:
        """See other ``url``; ``notice`` is shown once on the page it leads to."""
        if notice is None:
            return RedirectResponse(url, status_code=303)
        return self.notices.redirect(url, notice)

    def render(self, request: Request, template: str, context: dict[str, Any] | None = None,
               status_code: int = 200) -> HTMLResponse:
        token, new_cookie = self.forms.token_for(request)
        context = {"csrf_token": token, "links": self.links, **(context or {})}
        if context.get("notice") is None:
            context["notice"] = self.notices.pending(request)
        response = templates.TemplateResponse(request, template, context, status_code=status_code)
        if new_cookie:
            self.forms.set_cookie(response, new_cookie)
        self.notices.clear_shown(request, response)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    def message(self, request: Request, title: str, text: str,
                status_code: int = 200) -> HTMLResponse:
        return self.render(request, "message.html", {"title": title, "text": text},
                           status_code=status_code)

    def csrf_valid(self, request: Request, form_token: str | None) -> bool:
        return self.forms.is_valid(request, form_token)

    def csrf_failure(self, request: Request) -> HTMLResponse:
        return self.message(request, "Form expired",
                            "This form has expired. Go back, reload the page and try again.",
                            status_code=403)

    def set_sso_cookie(self, response: Response, token: str) -> None:
        max_age = int(self.config.sso_session_ttl.total_seconds())
        self._set_cookie(response, SSO_COOKIE, token, max_age)

    def clear_sso_cookie(self, response: Response) -> None:
        response.delete_cookie(SSO_COOKIE, path="/", secure=self.config.secure_cookies,
                               httponly=True, samesite="lax")

    def _set_cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", httponly=True,
                            samesite="lax", secure=self.config.secure_cookies)


BAD_CREDENTIALS = "Invalid email or password."
# What the page after a form says happened (a signed cookie, never the URL).
NOTICES = {"created": "Account created.", "saved": "Saved.", "deactivated": "Deactivated.",
           "deleted": "Account deleted."}
# The frame's look and icon, shared with the dashboards (which serve them from /static too).
SHARED_ASSETS = {"dashboard.css": "text/css", "ates.svg": "image/svg+xml"}
THROTTLED = "Too many failed sign-in attempts. Please wait {minutes} minutes and try again."


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def _form(request: Request) -> dict[str, str]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


def _dashboard_links(config: AuthConfig) -> list[tuple[str, str]]:
    return [(c.client_id, c.post_logout_redirect_uris[0]) for c in config.clients
            if c.client_id in DASHBOARD_PORTS and c.post_logout_redirect_uris]


# Login forms run in a lane of their own, first come first served, twice as wide as the
# hashes computed at once: while one form waits for its hash, another does the Python
# work around its own (platform_kit.threads.ThreadLane).
LOGIN_THREADS_PER_HASH = 2


class WebPages:
    def __init__(self, accounts: AccountService, queries: AccountQueries, pages: Pages,
                 config: AuthConfig, security: SecurityService,
                 after_password: Callable[[SignInResult, str], Response],
                 authorize_after_sign_in: Callable[[str, Session, SignedIn], Response | None]):
        self.accounts = accounts
        self.queries = queries
        self.pages = pages
        self.config = config
        self.security = security
        self.after_password = after_password  # a second factor is due
        # The answer of the authorization request a sign-in was for (None: not one), given
        # in the transaction that opens the session.
        self.authorize_after_sign_in = authorize_after_sign_in

    def signed_in(self, request: Request) -> SignedIn | None:
        with self.accounts.sessions() as session:
            return find_session(session, request.cookies.get(SSO_COOKIE))

    # --- login ----------------------------------------------------------------------

    def login_form(self, request: Request, next_url: str, prompt: str | None = None) -> Response:
        if prompt != "login" and self.signed_in(request) is not None:
            return _see_other(safe_next(next_url))
        return self.pages.render(request, "login.html", {"next": safe_next(next_url)})

    def login(self, request: Request, form: dict[str, str]) -> Response:
        next_url = safe_next(form.get("next"))
        if not self.pages.csrf_valid(request, form.get("csrf_token")):
            return self.pages.csrf_failure(request)
        if (problem := first_problem(form)) is not None:
            return self._login_error(request, displayable(form.get("email", "")), "/",
                                     as_sentence(problem), 400)
        email = form.get("email", "")
        result = self.security.sign_in(email, form.get("password", ""), client_address(request),
                                       request.headers.get("user-agent"),
                                       then=partial(self.authorize_after_sign_in, next_url))
        if result.second_factor is not None:
            return self.after_password(result, next_url)
        if result.throttled:
            minutes = int(self.config.throttling.window.total_seconds() // 60)
            return self._login_error(request, email, next_url, THROTTLED.format(minutes=minutes),
                                     429)
        if result.session_token is None:
            return self._login_error(request, email, next_url, BAD_CREDENTIALS, 401)
        response = (result.answer if isinstance(result.answer, Response)
                    else _see_other(next_url))
        self.pages.set_sso_cookie(response, result.session_token)
        return response

    def _login_error(self, request: Request, email: str, next_url: str, error: str,
                     status_code: int) -> Response:
        context = {"next": next_url, "email": email, "error": error}
        return self.pages.render(request, "login.html", context, status_code=status_code)

    # --- home -----------------------------------------------------------------------

    def home(self, request: Request) -> Response:
        signed_in = self.signed_in(request)
        if signed_in is None:
            return _see_other("/login")
        context = {"user": signed_in.principal, "dashboards": _dashboard_links(self.config)}
        return self.pages.render(request, "home.html", context)

    # --- account administration -----------------------------------------------------

    def as_admin(self, request: Request, page: Callable[[SignedIn], Response]) -> Response:
        signed_in = self.signed_in(request)
        if signed_in is None:
            return _see_other("/login?" + urlencode({"next": request.url.path}))
        if signed_in.principal.role != Role.ADMIN:
            return self.pages.message(request, "Not allowed",
                                      "Only admins can manage accounts.", status_code=403)
        return page(signed_in)

    def admin_form(self, request: Request, form: dict[str, str],
                   page: Callable[[SignedIn], Response]) -> Response:
        """A form post by an admin: checked for CSRF first."""
        if not self.pages.csrf_valid(request, form.get("csrf_token")):
            return self.pages.csrf_failure(request)
        if (problem := first_problem(form)) is not None:
            return self.pages.message(request, "Invalid input", as_sentence(problem), 400)
        return self.as_admin(request, page)

    def accounts_page(self, request: Request, signed_in: SignedIn, cursor: str | None = None,
                      error: str | None = None,
                      form: dict[str, str] | None = None, status_code: int = 200) -> Response:
        context = {"user": signed_in.principal, "page": self.queries.list_accounts(cursor),
                   "roles": ROLES, "error": error,
                   "form": form or {}}
        return self.pages.render(request, "accounts.html", context, status_code=status_code)

    def create_account(self, request: Request, signed_in: SignedIn,
                       form: dict[str, str]) -> Response:
        try:
            created = self.accounts.create_account(form.get("email", ""),
                                                   form.get("full_name", ""),
                                                   form.get("role", ""), form.get("password", ""))
        except (InvalidAccountData, DuplicateEmail) as error:
            message = str(error) if isinstance(error, InvalidAccountData) else (
                f"An account with email {error} already exists.")
            status_code = 422 if isinstance(error, InvalidAccountData) else 409
            return self.accounts_page(request, signed_in, error=message, form=form,
                                      status_code=status_code)
        return self.pages.redirect(f"/admin/accounts/{created.id}",
                                   notice=NOTICES["created"])

    def account_page(self, request: Request, signed_in: SignedIn, account_id: str,
                     error: str | None = None,
                     status_code: int = 200) -> Response:
        try:
            account = self.queries.get_account(account_id)
        except AccountNotFound:
            return self.pages.message(request, "Not found", "There is no such account.", 404)
        context = {"user": signed_in.principal, "account": account, "roles": ROLES,
                   "error": error}
        return self.pages.render(request, "account.html", context, status_code=status_code)

    def confirm_delete_page(self, request: Request, signed_in: SignedIn,
                            account_id: str) -> Response:
        """What deleting the account does, and the one button that does it."""
        try:
            account = self.queries.get_account(account_id)
        except AccountNotFound:
            return self.pages.message(request, "Not found", "There is no such account.", 404)
        return self.pages.render(request, "confirm_delete.html",
                                 {"user": signed_in.principal, "account": account})

    def change_account(self, request: Request, signed_in: SignedIn, account_id: str,
                       action: str, form: dict[str, str]) -> Response:
        actor = signed_in.principal.public_id
        try:
            if action == "delete":
                self.accounts.delete_account(account_id, actor)
                return self.pages.redirect("/admin/accounts", notice=NOTICES["deleted"])
            if action == "deactivate":
                self.accounts.deactivate_account(account_id, actor)
            else:
                self.accounts.update_account(account_id, _edit_changes(form), actor)
        except AccountNotFound:
            return self.pages.message(request, "Not found", "There is no such account.", 404)
        except (InvalidAccountData, SelfLockout) as error:
            status_code = 422 if isinstance(error, InvalidAccountData) else 409
            return self.account_page(request, signed_in, account_id, error=str(error),
                                     status_code=status_code)
        notice = "deactivated" if action == "deactivate" else "saved"
        return self.pages.redirect(f"/admin/accounts/{account_id}", notice=NOTICES[notice])


def _edit_changes(form: dict[str, str]) -> AccountChanges:
    return AccountChanges(full_name=form.get("full_name"), role=form.get("role"),
                          active=form.get("active") == "true",
                          password=form.get("password") or None)


def web_router(web: WebPages) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/static/{name}")
    def shared_asset(name: str) -> Response:
        if name not in SHARED_ASSETS:
            raise HTTPException(404, "no such file")
        return FileResponse(SHARED_STATIC / name, media_type=SHARED_ASSETS[name])

    @router.get("/")
    def home(request: Request) -> Response:
        return web.home(request)

    @router.get("/login")
    def login_form(request: Request, next: str = "/", prompt: str | None = None) -> Response:
        return web.login_form(request, next, prompt)

    login_threads = ThreadLane(web.config.password_hashing.at_once * LOGIN_THREADS_PER_HASH)

    @router.post("/login")
    async def login(request: Request) -> Response:
        return await login_threads.run(web.login, request, await _form(request))

    @router.get("/admin/accounts")
    def accounts_page(request: Request, cursor: str | None = None) -> Response:
        return web.as_admin(request, lambda admin: web.accounts_page(request, admin, cursor))

    @router.post("/admin/accounts")
    async def create_account(request: Request) -> Response:
        form = await _form(request)
        return await run_in_threadpool(web.admin_form, request, form, lambda admin: (
            web.create_account(request, admin, form)))

    @router.get("/admin/accounts/{account_id}")
    def account_page(request: Request, account_id: str) -> Response:
        return web.as_admin(request, lambda admin: web.account_page(request, admin, account_id))

    @router.get("/admin/accounts/{account_id}/delete")
    def confirm_delete(request: Request, account_id: str) -> Response:
        return web.as_admin(request, lambda admin: web.confirm_delete_page(request, admin,
                                                                           account_id))

    @router.post("/admin/accounts/{account_id}")
    @router.post("/admin/accounts/{account_id}/{action}")
    async def change_account(request: Request, account_id: str, action: str = "save"
                             ) -> Response:
        form = await _form(request)
        return await run_in_threadpool(web.admin_form, request, form, lambda admin: (
            web.change_account(request, admin, account_id, action, form)))

    return router
