"""Pages of sign-in security: the second step of a sign-in, password change and reset,
two-factor enrolment, the user's sessions, and the admin's view of an account's sign-ins.

Between the password and the second factor the browser holds a signed, short-lived
cookie naming the account and what is asked next (a code, or an enrolment when the role
requires a second factor the account does not have yet); no SSO session exists before
the second factor is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from auth import two_factor
from auth.domain import ROLES, InvalidAccountData, Role
from auth.mail import Mailer
from auth.queries import AccountNotFound, AccountQueries
from auth.security import (
    Enrolment,
    SecurityService,
    SignInResult,
    Throttled,
    TwoFactorProblem,
    WrongPassword,
)
from auth.sessions import SignedIn
from auth.web import Pages, client_address
from auth_client.sign_in import safe_next
from dashboard_kit.pages import as_sentence
from platform_kit.text_input import first_problem

PENDING_COOKIE = "ates_auth_pending"
PENDING_MAX_AGE = 600
RESET_SENT = ("If an account exists for {email}, we sent it a link to choose a new password. "
              "The link works once, within {minutes} minutes.")
RESET_THROTTLED = "Too many reset links were asked for. Please wait an hour and try again."
BAD_LINK = "This link is not valid any more: it was used, it expired, or a newer one was sent."
WRONG_CODE = "That code is not right."
# What the page after a form says happened (a signed cookie, never the URL).
NOTICES = {
    "password": "Your password is changed. Your other sessions have ended.",
    "two-factor-off": "Two-factor sign-in is off.",
    "ended": "Ended.",
    "ended-all": "Every session of this account has ended.",
    "two-factor-reset": "The account's second factor is removed.",
    "roles": "Saved.",
}
SVG_HEADERS = {"Cache-Control": "no-store"}


class PendingSignIn(TypedDict):
    """What the pending cookie holds between the password and the second factor."""

    account: str  # the account's public id
    stage: str  # "verify" (a code is asked) or "enrol" (the role requires a second factor)
    next: str


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def _form(request: Request) -> dict[str, str]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


def _user_agent(request: Request) -> str | None:
    return request.headers.get("user-agent")


class SecurityPages:
    def __init__(self, security: SecurityService, queries: AccountQueries, pages: Pages,
                 mailer: Mailer, signed_in: Callable[[Request], SignedIn | None]):
        self.security = security
        self.queries = queries
        self.pages = pages
        self.mailer = mailer
        self.signed_in = signed_in
        config = pages.config
        self.issuer = config.issuer
        self._pending = URLSafeTimedSerializer(config.secret_key, salt="ates-auth-second-factor")

    # --- the second step of a sign-in -----------------------------------------------

    def after_password(self, result: SignInResult, next_url: str) -> Response:
        """The answer to a right password that still needs a second factor."""
        assert result.principal is not None and result.second_factor is not None
        response = _see_other("/login/two-factor")
        pending = PendingSignIn(account=result.principal.public_id,
                                stage=result.second_factor, next=next_url)
        value = self._pending.dumps(pending)
        response.set_cookie(PENDING_COOKIE, value, max_age=PENDING_MAX_AGE, path="/login",
                            httponly=True, samesite="lax", secure=self.pages.config.secure_cookies)
        return response

    def _pending_sign_in(self, request: Request) -> PendingSignIn | None:
        raw = request.cookies.get(PENDING_COOKIE)
        if not raw:
            return None
        try:
            pending: PendingSignIn = self._pending.loads(raw, max_age=PENDING_MAX_AGE)
        except BadSignature:
            return None
        return pending

    def _start_over(self, request: Request) -> Response:
        return self.pages.render(request, "message.html", {
            "title": "Sign in again", "link": "/login", "link_text": "Sign in",
            "text": "The sign-in took too long or cookies are disabled."}, status_code=400)

    def second_factor_form(self, request: Request, error: str | None = None,
                           status_code: int = 200) -> Response:
        pending = self._pending_sign_in(request)
        if pending is None:
            return self._start_over(request)
        if pending["stage"] == "enrol":
            enrolment = (self.security.pending_enrolment(pending["account"])
                         or self.security.begin_enrolment(pending["account"]))
            return self.pages.render(request, "two_factor_enrol.html", {
                "enrolment": enrolment, "qr_url": "/login/two-factor/qr.svg",
                "action": "/login/two-factor", "required": True, "error": error},
                status_code=status_code)
        return self.pages.render(request, "two_factor_login.html", {"error": error},
                                 status_code=status_code)

    def second_factor(self, request: Request, form: dict[str, str]) -> Response:
        if not self.pages.csrf_valid(request, form.get("csrf_token")):
            return self.pages.csrf_failure(request)
        if (problem := first_problem(form)) is not None:
            return self.second_factor_form(request, as_sentence(problem), 400)
        pending = self._pending_sign_in(request)
        if pending is None:
            return self._start_over(request)
        address, agent = client_address(request), _user_agent(request)
        codes: list[str] = []
        response: Response
        if pending["stage"] == "enrol":
            result, codes = self.security.finish_enforced_enrolment(
                pending["account"], form.get("code", ""), address, agent)
        else:
            result = self.security.complete_sign_in(pending["account"], form.get("code", ""),
                                                    address, agent)
        if result.throttled:
            return self.second_factor_form(
                request, "Too many failed attempts. Please wait a while and try again.", 429)
        if result.session_token is None:
            return self.second_factor_form(request, WRONG_CODE, 401)
        next_url = safe_next(pending.get("next"))
        if codes:
            response = self.pages.render(request, "recovery_codes.html",
                                         {"codes": codes, "continue_url": next_url})
        else:
            response = _see_other(next_url)
        self.pages.set_sso_cookie(response, result.session_token)
        response.delete_cookie(PENDING_COOKIE, path="/login")
        return response

    def pending_qr(self, request: Request) -> Response:
        pending = self._pending_sign_in(request)
        enrolment = None
        if pending is not None and pending["stage"] == "enrol":
            enrolment = self.security.pending_enrolment(pending["account"])
        return self._qr(enrolment)

    @staticmethod
    def _qr(enrolment: Enrolment | None) -> Response:
        if enrolment is None:
            return Response(status_code=404)
        return Response(two_factor.qr_svg(enrolment.otpauth_uri), media_type="image/svg+xml",
                        headers=SVG_HEADERS)

    # --- the user's own security page ---------------------------------------------------

    def as_user(self, request: Request, page: Callable[[SignedIn], Response],
                form: dict[str, str] | None = None) -> Response:
        if form is not None:
            if not self.pages.csrf_valid(request, form.get("csrf_token")):
                return self.pages.csrf_failure(request)
            if (problem := first_problem(form)) is not None:
                return self.pages.message(request, "Invalid input", as_sentence(problem), 400)
        signed_in = self.signed_in(request)
        if signed_in is None:
            return _see_other("/login?next=/account/security")
        return page(signed_in)

    def security_page(self, request: Request, signed_in: SignedIn,
                      error: str | None = None, status_code: int = 200) -> Response:
        me = signed_in.principal.public_id
        context: dict[str, Any] = {
            "user": signed_in.principal, "error": error,
            "active": self.security.active_sessions(me, signed_in.session_id),
            "two_factor": self.security.two_factor_status(me),
            "sign_ins": self.security.sign_ins(me, limit=10)}
        return self.pages.render(request, "security.html", context, status_code=status_code)

    def change_password(self, request: Request, signed_in: SignedIn,
                        form: dict[str, str]) -> Response:
        new = form.get("new_password", "")
        if new != form.get("confirm_password", ""):
            return self.security_page(request, signed_in, error="The new passwords differ.",
                                      status_code=422)
        try:
            self.security.change_password(signed_in.principal.public_id,
                                          form.get("current_password", ""), new,
                                          client_address(request), signed_in.session_id)
        except InvalidAccountData as error:
            return self.security_page(request, signed_in, error=as_sentence(str(error)),
                                      status_code=422)
        except WrongPassword:
            return self.security_page(request, signed_in,
                                      error="The current password is not right.",
                                      status_code=401)
        except Throttled:
            return self.security_page(request, signed_in, error="Too many failed attempts. "
                                      "Please wait a while and try again.", status_code=429)
        return self.pages.redirect("/account/security", notice=NOTICES["password"])

    def start_enrolment(self, request: Request, signed_in: SignedIn) -> Response:
        try:
            self.security.begin_enrolment(signed_in.principal.public_id)
        except TwoFactorProblem as error:
            return self.security_page(request, signed_in, error=as_sentence(str(error)),
                                      status_code=409)
        return _see_other("/account/two-factor")

    def enrolment_page(self, request: Request, signed_in: SignedIn, error: str | None = None,
                       status_code: int = 200) -> Response:
        enrolment = self.security.pending_enrolment(signed_in.principal.public_id)
        if enrolment is None:
            return _see_other("/account/security")
        return self.pages.render(request, "two_factor_enrol.html", {
            "user": signed_in.principal, "enrolment": enrolment,
            "qr_url": "/account/two-factor/qr.svg", "action": "/account/two-factor/confirm",
            "required": False, "error": error}, status_code=status_code)

    def my_qr(self, request: Request) -> Response:
        signed_in = self.signed_in(request)
        if signed_in is None:
            return Response(status_code=404)
        return self._qr(self.security.pending_enrolment(signed_in.principal.public_id))

    def confirm_enrolment(self, request: Request, signed_in: SignedIn,
                          form: dict[str, str]) -> Response:
        try:
            codes = self.security.confirm_enrolment(signed_in.principal.public_id,
                                                    form.get("code", ""))
        except TwoFactorProblem as error:
            return self.enrolment_page(request, signed_in, as_sentence(str(error)), 422)
        return self._codes(request, signed_in, codes)

    def replace_codes(self, request: Request, signed_in: SignedIn,
                      form: dict[str, str]) -> Response:
        try:
            codes = self.security.new_recovery_codes(signed_in.principal.public_id,
                                                     form.get("code", ""))
        except TwoFactorProblem as error:
            return self.security_page(request, signed_in, error=as_sentence(str(error)),
                                      status_code=422)
        return self._codes(request, signed_in, codes)

    def _codes(self, request: Request, signed_in: SignedIn, codes: list[str]) -> Response:
        return self.pages.render(request, "recovery_codes.html", {
            "user": signed_in.principal, "codes": codes, "continue_url": "/account/security"})

    def turn_off(self, request: Request, signed_in: SignedIn, form: dict[str, str]) -> Response:
        try:
            self.security.turn_off(signed_in.principal.public_id, form.get("password", ""))
        except (TwoFactorProblem, WrongPassword) as error:
            return self.security_page(request, signed_in, error=as_sentence(str(error)),
                                      status_code=409 if isinstance(error, TwoFactorProblem)
                                      else 401)
        return self.pages.redirect("/account/security", notice=NOTICES["two-factor-off"])

    def end_session(self, request: Request, signed_in: SignedIn, session_id: str) -> Response:
        self.security.end_session(signed_in.principal.public_id, session_id)
        if session_id == signed_in.session_public_id:
            response = _see_other("/login")
            self.pages.clear_sso_cookie(response)
            return response
        return self.pages.redirect("/account/security", notice=NOTICES["ended"])

    def end_family(self, request: Request, signed_in: SignedIn, family_id: str) -> Response:
        self.security.end_token_family(signed_in.principal.public_id, family_id)
        return self.pages.redirect("/account/security", notice=NOTICES["ended"])

    # --- password reset -------------------------------------------------------------

    def forgot_form(self, request: Request) -> Response:
        return self.pages.render(request, "password_forgot.html", {})

    def forgot(self, request: Request, form: dict[str, str]) -> Response:
        if not self.pages.csrf_valid(request, form.get("csrf_token")):
            return self.pages.csrf_failure(request)
        if (problem := first_problem(form)) is not None:
            return self.pages.render(request, "password_forgot.html",
                                     {"error": as_sentence(problem)}, status_code=400)
        email = form.get("email", "").strip()
        if not email:
            return self.pages.render(request, "password_forgot.html",
                                     {"error": "Enter your email."}, status_code=422)
        try:
            throttled, mail = self.security.request_reset(email, client_address(request),
                                                          self.issuer)
        except InvalidAccountData as error:
            return self.pages.render(request, "password_forgot.html",
                                     {"error": as_sentence(str(error)), "email": email}, 422)
        if throttled:
            return self.pages.render(request, "password_forgot.html",
                                     {"error": RESET_THROTTLED, "email": email}, status_code=429)
        response = self.pages.render(request, "password_forgot.html",
                                     {"sent": self.sent_text(email)})
        if mail is not None:
            response.background = BackgroundTask(self.mailer.send_quietly, mail)
        return response

    def sent_text(self, email: str) -> str:
        minutes = int(self.security.config.password_reset.link_ttl.total_seconds() // 60)
        return RESET_SENT.format(email=email, minutes=minutes)

    def reset_form(self, request: Request, token: str) -> Response:
        if not self.security.reset_link_valid(token):
            return self.pages.message(request, "Link not valid", BAD_LINK, 410)
        return self.pages.render(request, "password_reset.html", {"token": token})

    def reset(self, request: Request, token: str, form: dict[str, str]) -> Response:
        if not self.pages.csrf_valid(request, form.get("csrf_token")):
            return self.pages.csrf_failure(request)
        if (problem := first_problem(form)) is not None:
            return self.pages.render(request, "password_reset.html",
                                     {"token": token, "error": as_sentence(problem)}, 400)
        new = form.get("new_password", "")
        if new != form.get("confirm_password", ""):
            return self.pages.render(request, "password_reset.html",
                                     {"token": token, "error": "The new passwords differ."}, 422)
        try:
            done = self.security.complete_reset(token, new)
        except InvalidAccountData as error:
            return self.pages.render(request, "password_reset.html",
                                     {"token": token, "error": as_sentence(str(error))}, 422)
        if not done:
            return self.pages.message(request, "Link not valid", BAD_LINK, 410)
        response = self.pages.render(request, "message.html", {
            "title": "Password changed", "link": "/login", "link_text": "Sign in",
            "text": "Your new password is set, and every session of your account has ended."})
        self.pages.clear_sso_cookie(response)
        return response

    # --- admin ----------------------------------------------------------------------

    def as_admin(self, request: Request, page: Callable[[SignedIn], Response],
                 form: dict[str, str] | None = None) -> Response:
        def admin_only(signed_in: SignedIn) -> Response:
            if signed_in.principal.role != Role.ADMIN:
                return self.pages.message(request, "Not allowed",
                                          "Only admins can manage accounts.", status_code=403)
            return page(signed_in)

        signed_in = self.signed_in(request)
        if signed_in is None and form is None:
            return _see_other("/login?next=" + request.url.path)
        return self.as_user(request, admin_only, form)

    def admin_account_page(self, request: Request, signed_in: SignedIn, account_id: str
                           ) -> Response:
        try:
            account = self.queries.get_account(account_id)
            context = {"user": signed_in.principal, "account": account,
                       "sign_ins": self.security.sign_ins(account_id),
                       "active": self.security.active_sessions(account_id),
                       "two_factor": self.security.two_factor_status(account_id)}
        except AccountNotFound:
            return self.pages.message(request, "Not found", "There is no such account.", 404)
        return self.pages.render(request, "account_security.html", context)

    def admin_action(self, request: Request, account_id: str, action: str) -> Response:
        try:
            if action == "end-sessions":
                self.security.end_all_sessions(account_id)
                notice = "ended-all"
            elif action == "reset-two-factor":
                self.security.reset_two_factor(account_id)
                notice = "two-factor-reset"
            else:
                return self.pages.message(request, "Not found", "There is no such action.", 404)
        except AccountNotFound:
            return self.pages.message(request, "Not found", "There is no such account.", 404)
        return self.pages.redirect(f"/admin/accounts/{account_id}/security",
                                   notice=NOTICES[notice])

    def roles_page(self, request: Request, signed_in: SignedIn) -> Response:
        return self.pages.render(request, "two_factor_roles.html", {
            "user": signed_in.principal, "roles": ROLES,
            "required": self.security.required_roles()})

    def save_roles(self, request: Request, form_roles: list[str]) -> Response:
        try:
            self.security.set_required_roles(form_roles)
        except InvalidAccountData as error:
            return self.pages.message(request, "Invalid input", as_sentence(str(error)), 422)
        return self.pages.redirect("/admin/two-factor", notice=NOTICES["roles"])


def security_router(web: SecurityPages) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/login/two-factor")
    async def second_factor_form(request: Request) -> Response:
        return await run_in_threadpool(web.second_factor_form, request)

    @router.post("/login/two-factor")
    async def second_factor(request: Request) -> Response:
        return await run_in_threadpool(web.second_factor, request, await _form(request))

    @router.get("/login/two-factor/qr.svg")
    async def pending_qr(request: Request) -> Response:
        return await run_in_threadpool(web.pending_qr, request)

    @router.get("/account/security")
    async def security_page(request: Request) -> Response:
        return await run_in_threadpool(web.as_user, request,
                                       lambda me: web.security_page(request, me))

    @router.post("/account/password")
    async def change_password(request: Request) -> Response:
        form = await _form(request)
        return await run_in_threadpool(web.as_user, request,
                                       lambda me: web.change_password(request, me, form), form)

    @router.post("/account/two-factor/enrol")
    async def start_enrolment(request: Request) -> Response:
        form = await _form(request)
        return await run_in_threadpool(web.as_user, request,
                                       lambda me: web.start_enrolment(request, me), form)

    @router.get("/account/two-factor")
    async def enrolment_page(request: Request) -> Response:
        return await run_in_threadpool(web.as_user, request,
                                       lambda me: web.enrolment_page(request, me))

    @router.get("/account/two-factor/qr.svg")
    async def my_qr(request: Request) -> Response:
        return await run_in_threadpool(web.my_qr, request)

    @router.post("/account/two-factor/confirm")
    async def confirm_enrolment(request: Request) -> Response:
        form = await _form(request)
        return await run_in_threadpool(web.as_user, request,
                                       lambda me: web.confirm_enrolment(request, me, form), form)

    @router.post("/account/two-factor/recovery-codes")
    async def replace_codes(request: Request) -> Response:
        form = await _form(request)
        return await run_in_threadpool(web.as_user, request,
                                       lambda me: web.replace_codes(request, me, form), form)

    @router.post("/account/two-factor/off")
    async def turn_off(request: Request) -> Response:
        form = await _form(request)
        return await run_in_threadpool(web.as_user, request,
                                       lambda me: web.turn_off(request, me, form), form)

    @router.post("/account/sessions/{session_id}/end")
    async def end_session(request: Request, session_id: str) -> Response:
        form = await _form(request)
        return await run_in_threadpool(web.as_user, request,
                                       lambda me: web.end_session(request, me, session_id), form)

    @router.post("/account/token-families/{family_id}/end")
    async def end_family(request: Request, family_id: str) -> Response:
        form = await _form(request)
        return await run_in_threadpool(web.as_user, request,
                                       lambda me: web.end_family(request, me, family_id), form)

    @router.get("/password/forgot")
    def forgot_form(request: Request) -> Response:
        return web.forgot_form(request)

    @router.post("/password/forgot")
    async def forgot(request: Request) -> Response:
        return await run_in_threadpool(web.forgot, request, await _form(request))

    @router.get("/password/reset/{token}")
    async def reset_form(request: Request, token: str) -> Response:
        return await run_in_threadpool(web.reset_form, request, token)

    @router.post("/password/reset/{token}")
    async def reset(request: Request, token: str) -> Response:
        return await run_in_threadpool(web.reset, request, token, await _form(request))

    @router.get("/admin/accounts/{account_id}/security")
    async def admin_account_page(request: Request, account_id: str) -> Response:
        return await run_in_threadpool(web.as_admin, request, lambda admin: web.admin_account_page(
            request, admin, account_id))

    @router.post("/admin/accounts/{account_id}/security/{action}")
    async def admin_action(request: Request, account_id: str, action: str) -> Response:
        form = await _form(request)
        return await run_in_threadpool(web.as_admin, request,
                                       lambda admin: web.admin_action(request, account_id, action),
                                       form)

    @router.get("/admin/two-factor")
    async def roles_page(request: Request) -> Response:
        return await run_in_threadpool(web.as_admin, request,
                                       lambda admin: web.roles_page(request, admin))

    @router.post("/admin/two-factor")
    async def save_roles(request: Request) -> Response:
        raw = await request.form()
        form = {k: v for k, v in raw.items() if isinstance(v, str)}
        roles = [v for v in raw.getlist("roles") if isinstance(v, str)]
        return await run_in_threadpool(web.as_admin, request,
                                       lambda admin: web.save_roles(request, roles), form)

    return router
