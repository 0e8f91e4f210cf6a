"""JSON API of sign-in security: sign-in history, sessions, password, two-factor."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from auth import two_factor
from auth.api import Responses
from auth.domain import EMAIL_MAX_LENGTH, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, Role
from auth.security import (
    ActiveSessions,
    SecurityService,
    SignInView,
    Throttled,
    TwoFactorProblem,
    TwoFactorStatus,
    WrongPassword,
)
from auth.security_pages import RESET_THROTTLED, SecurityPages
from auth.web import client_address
from auth_client.guards import current_user, require_role
from auth_client.verification import CurrentUser
from platform_kit.text_input import Text

Admin = Annotated[CurrentUser, Depends(require_role(Role.ADMIN))]
Caller = Annotated[CurrentUser, Depends(current_user)]
NO_CONTENT = status.HTTP_204_NO_CONTENT


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


NewPassword = Annotated[Text, Field(min_length=PASSWORD_MIN_LENGTH,
                                    max_length=PASSWORD_MAX_LENGTH)]
Email = Annotated[Text, Field(max_length=EMAIL_MAX_LENGTH,
                              pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
OneTimeCode = Annotated[Text, Field(min_length=6, max_length=32,
                                    description="A TOTP code, or a recovery code")]


class PasswordChange(Strict):
    current_password: Text
    new_password: NewPassword


class ResetRequest(Strict):
    email: Email


class ResetCompletion(Strict):
    token: Annotated[Text, Field(min_length=1, max_length=200)]
    new_password: NewPassword


class Code(Strict):
    code: OneTimeCode


class Password(Strict):
    password: Text


class Roles(Strict):
    roles: list[Text]


class SignIns(BaseModel):
    items: list[SignInView]


class Enrolment(BaseModel):
    secret: str
    otpauth_uri: str
    qr_code_url: str


class RecoveryCodes(BaseModel):
    recovery_codes: list[str]


class Accepted(BaseModel):
    detail: str


def _problem(status_code: int, error: Exception) -> HTTPException:
    return HTTPException(status_code, str(error))


THROTTLED: Responses = {429: {"description": "Too many attempts; try again later"}}


def security_api_router(security: SecurityService, pages: SecurityPages) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["sign-in security"])

    # --- sign-ins and sessions ------------------------------------------------------

    @router.get("/me/sign-ins", summary="My latest sign-ins and refused attempts")
    def my_sign_ins(user: Caller) -> SignIns:
        return SignIns(items=security.sign_ins(user.id))

    @router.get("/accounts/{account_id}/sign-ins", summary="An account's latest sign-ins")
    def sign_ins(account_id: str, _: Admin) -> SignIns:
        return SignIns(items=security.sign_ins(account_id))

    @router.get("/me/sessions", summary="My SSO sessions and refresh-token families")
    def my_sessions(user: Caller) -> ActiveSessions:
        return security.active_sessions(user.id)

    @router.delete("/me/sessions/{session_id}", status_code=NO_CONTENT,
                   summary="End one of my sessions (and its refresh tokens)")
    def end_session(session_id: str, user: Caller) -> Response:
        if not security.end_session(user.id, session_id):
            raise HTTPException(404, "no such active session")
        return Response(status_code=NO_CONTENT)

    @router.delete("/me/token-families/{family_id}", status_code=NO_CONTENT,
                   summary="Revoke one of my refresh-token families")
    def end_family(family_id: str, user: Caller) -> Response:
        if not security.end_token_family(user.id, family_id):
            raise HTTPException(404, "no such active refresh-token family")
        return Response(status_code=NO_CONTENT)

    @router.delete("/accounts/{account_id}/sessions", status_code=NO_CONTENT,
                   summary="End every session and refresh token of an account")
    def end_all(account_id: str, _: Admin) -> Response:
        security.end_all_sessions(account_id)
        return Response(status_code=NO_CONTENT)

    # --- password -------------------------------------------------------------------

    @router.post("/me/password", status_code=NO_CONTENT, responses=THROTTLED,
                 summary="Change my password (ends every session of the account)")
    def change_password(body: PasswordChange, user: Caller, request: Request) -> Response:
        try:
            security.change_password(user.id, body.current_password, body.new_password,
                                     client_address(request))
        except WrongPassword as error:
            raise _problem(403, error) from None
        except Throttled as error:
            raise _problem(429, error) from None
        return Response(status_code=NO_CONTENT)

    @router.post("/password-reset", status_code=status.HTTP_202_ACCEPTED, responses=THROTTLED,
                 summary="Mail a reset link (same answer whether or not the email exists)")
    def request_reset(body: ResetRequest, request: Request,
                      background: BackgroundTasks) -> Accepted:
        throttled, mail = security.request_reset(body.email, client_address(request),
                                                 security.config.issuer)
        if throttled:
            raise HTTPException(429, RESET_THROTTLED)
        if mail is not None:
            background.add_task(pages.mailer.send_quietly, mail)
        return Accepted(detail=pages.sent_text(body.email.strip()))

    @router.post("/password-reset/complete", status_code=NO_CONTENT,
                 responses={410: {"description": "The link was used, expired or replaced"}},
                 summary="Set a new password with a reset link's token")
    def complete_reset(body: ResetCompletion) -> Response:
        if not security.complete_reset(body.token, body.new_password):
            raise HTTPException(410, "the link is not valid any more: it was used, it expired, "
                                     "or a newer one was sent")
        return Response(status_code=NO_CONTENT)

    # --- two-factor -----------------------------------------------------------------

    @router.get("/me/two-factor", summary="Whether two-factor sign-in is on or required")
    def two_factor_status(user: Caller) -> TwoFactorStatus:
        return security.two_factor_status(user.id)

    @router.post("/me/two-factor/enrolment", summary="Start enrolling an authenticator app",
                 responses={409: {"description": "Two-factor sign-in is already on"}})
    def enrol(user: Caller) -> Enrolment:
        try:
            enrolment = security.begin_enrolment(user.id)
        except TwoFactorProblem as error:
            raise _problem(409, error) from None
        return Enrolment(secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri,
                         qr_code_url=f"{security.config.issuer}/api/me/two-factor/enrolment/qr.svg")

    @router.get("/me/two-factor/enrolment/qr.svg", response_class=Response,
                summary="The QR code of the enrolment under way (SVG)",
                responses={200: {"content": {"image/svg+xml": {}}},
                           404: {"description": "No enrolment under way"}})
    def enrolment_qr(user: Caller) -> Response:
        enrolment = security.pending_enrolment(user.id)
        if enrolment is None:
            raise HTTPException(404, "no two-factor enrolment is under way")
        return Response(two_factor.qr_svg(enrolment.otpauth_uri), media_type="image/svg+xml")

    @router.post("/me/two-factor/enrolment/confirm",
                 summary="Turn two-factor on with a first code; answers the recovery codes")
    def confirm(body: Code, user: Caller) -> RecoveryCodes:
        try:
            return RecoveryCodes(recovery_codes=security.confirm_enrolment(user.id, body.code))
        except TwoFactorProblem as error:
            raise _problem(422, error) from None

    @router.post("/me/two-factor/recovery-codes", summary="Replace my recovery codes")
    def replace_codes(body: Code, user: Caller) -> RecoveryCodes:
        try:
            return RecoveryCodes(recovery_codes=security.new_recovery_codes(user.id, body.code))
        except TwoFactorProblem as error:
            raise _problem(422, error) from None

    @router.post("/me/two-factor/off", status_code=NO_CONTENT,
                 summary="Turn two-factor off (confirmed by the password)",
                 responses={409: {"description": "Two-factor sign-in is off, or required"}})
    def turn_off(body: Password, user: Caller) -> Response:
        try:
            security.turn_off(user.id, body.password)
        except TwoFactorProblem as error:
            raise _problem(409, error) from None
        except WrongPassword as error:
            raise _problem(403, error) from None
        return Response(status_code=NO_CONTENT)

    @router.delete("/accounts/{account_id}/two-factor", status_code=NO_CONTENT,
                   summary="Remove an account's second factor (a lost device)")
    def reset_two_factor(account_id: str, _: Admin) -> Response:
        security.reset_two_factor(account_id)
        return Response(status_code=NO_CONTENT)

    @router.get("/two-factor/required-roles", summary="Roles that must use two-factor")
    def required_roles(_: Admin) -> Roles:
        return Roles(roles=security.required_roles())

    @router.put("/two-factor/required-roles", summary="Choose the roles that must use it")
    def set_required_roles(body: Roles, _: Admin) -> Roles:
        return Roles(roles=security.set_required_roles(body.roles))

    return router

