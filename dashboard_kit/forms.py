"""The signed cookies of server-rendered forms: protection against cross-site request
forgery, and the one-time notice a form's redirect carries to the next page.

Cross-site request forgery (double submit): forms carry a token that is the signature of
a random value kept in an HttpOnly cookie: a page on another origin can neither read the
cookie nor forge the signature, so it cannot post a form in the user's name. The provider
and every dashboard use this.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

MAX_AGE_SECONDS = 4 * 3600


class FormGuard:
    def __init__(self, secret_key: str, cookie_name: str, secure_cookies: bool):
        self.cookie_name = cookie_name
        self._signer = URLSafeTimedSerializer(secret_key, salt=f"{cookie_name}-csrf")
        self._secure_cookies = secure_cookies

    def token_for(self, request: Request) -> tuple[str, str | None]:
        """The token for the forms of a page, and the cookie value to set with it when the
        browser has none yet."""
        cookie_value = request.cookies.get(self.cookie_name)
        new_cookie = None if cookie_value else secrets.token_urlsafe(24)
        return self._signer.dumps(cookie_value or new_cookie), new_cookie

    def set_cookie(self, response: Response, cookie_value: str) -> None:
        response.set_cookie(self.cookie_name, cookie_value, max_age=MAX_AGE_SECONDS, path="/",
                            httponly=True, samesite="lax", secure=self._secure_cookies)

    def is_valid(self, request: Request, form_token: str | None) -> bool:
        cookie_value = request.cookies.get(self.cookie_name)
        if not cookie_value or not form_token:
            return False
        try:
            signed_value = self._signer.loads(form_token, max_age=MAX_AGE_SECONDS)
        except BadSignature:
            return False
        return hmac.compare_digest(str(signed_value), cookie_value)


NOTICE_MAX_AGE_SECONDS = 120


class Notices:
    """A one-time notice for the next page, in a signed cookie set by a redirect (never in
    the URL, so a link cannot make a page say something that did not happen)."""

    def __init__(self, secret_key: str, cookie_name: str, secure_cookies: bool):
        self.cookie_name = cookie_name
        self._signer = URLSafeTimedSerializer(secret_key, salt=f"{cookie_name}-notice")
        self._secure_cookies = secure_cookies

    def redirect(self, url: str, text: str) -> RedirectResponse:
        response = RedirectResponse(url, status_code=303)
        response.set_cookie(self.cookie_name, self._signer.dumps(text),
                            max_age=NOTICE_MAX_AGE_SECONDS, path="/", httponly=True,
                            samesite="lax", secure=self._secure_cookies)
        return response

    def pending(self, request: Request) -> str | None:
        raw = request.cookies.get(self.cookie_name)
        if not raw:
            return None
        try:
            text = self._signer.loads(raw, max_age=NOTICE_MAX_AGE_SECONDS)
        except BadSignature:
            return None
        return text if isinstance(text, str) else None

    def clear(self, response: Response) -> None:
        response.delete_cookie(self.cookie_name, path="/", httponly=True, samesite="lax",
                               secure=self._secure_cookies)

    def clear_shown(self, request: Request, response: Response) -> None:
        """Forget the notice once a page has been rendered for it."""
        if request.cookies.get(self.cookie_name) is not None:
            self.clear(response)
