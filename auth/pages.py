"""Server-rendered pages of the provider: templates, cookies and CSRF protection.

What the provider's pages share with the dashboards' (``auth.dashboard_ui``) lives here too:
the frame's navigation (:class:`DashboardLinks`, :func:`dashboards_for`) and one-time
notices carried across a redirect in a signed cookie (:class:`Notices`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer

from auth.config import AuthConfig, auth_url, dashboard_url
from auth.forms import FormGuard

SSO_COOKIE = "ates_sso"
CSRF_COOKIE = "ates_auth_csrf"
NOTICE_COOKIE = "ates_auth_notice"

# Pages the provider shares with the dashboards (``auth.dashboard_ui``).
SHARED_TEMPLATES = Path(__file__).parent / "shared_templates"
SHARED_STATIC = Path(__file__).parent / "shared_static"


@dataclass(frozen=True)
class DashboardLinks:
    """Where the dashboards are, for the navigation; ``auth`` is the provider."""

    tasks: str
    accounting: str
    analytics: str
    auth: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DashboardLinks:
        dashboards = (dashboard_url(name, environ) for name in ("tasks", "accounting",
                                                                 "analytics"))
        return cls(*dashboards, auth=auth_url(environ))


ADMIN = "admin"


def dashboards_for(user: Any, links: DashboardLinks) -> list[tuple[str, str, str]]:
    """(service, text, url) of every dashboard ``user``'s role may open, in the frame's
    order: everyone has tasks and an account; analytics and the accounts are the admins'."""
    shown = [("tasks", "Tasks", links.tasks), ("accounting", "Accounting", links.accounting)]
    if getattr(user, "role", None) == ADMIN:
        shown += [("analytics", "Analytics", links.analytics),
                  ("auth", "Accounts", f"{links.auth}/admin/accounts")]
    return shown


def add_frame_globals(templates: Jinja2Templates) -> None:
    templates.env.globals["dashboards_for"] = dashboards_for


templates = Jinja2Templates(directory=[Path(__file__).parent / "templates", SHARED_TEMPLATES])
add_frame_globals(templates)

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


def safe_next(target: str | None, default: str = "/") -> str:
    """Only same-site paths: never an absolute or protocol-relative URL (open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    return target


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

    def set_sso_cookie(self, response: HTMLResponse | RedirectResponse, token: str) -> None:
        max_age = int(self.config.sso_session_ttl.total_seconds())
        self._set_cookie(response, SSO_COOKIE, token, max_age)

    def clear_sso_cookie(self, response: HTMLResponse | RedirectResponse) -> None:
        response.delete_cookie(SSO_COOKIE, path="/", secure=self.config.secure_cookies,
                               httponly=True, samesite="lax")

    def _set_cookie(self, response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", httponly=True,
                            samesite="lax", secure=self.config.secure_cookies)
