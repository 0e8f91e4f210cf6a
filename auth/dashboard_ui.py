"""What the server-rendered dashboards (tasks, accounting) share besides sign-in.

- templates: a dashboard's own folder first, then ``shared_templates`` here:
  ``dashboard_base.html`` (header, navigation, sign-out) that the dashboard's ``base.html``
  extends, setting ``service`` and ``icon``; ``message.html``; ``page_links.html``;
- static files under ``/static``: the dashboard's own folder, then ``shared_static`` here
  (``dashboard.css``, the look of every dashboard);
- :class:`DashboardPages`: renders a page with the signed-in user, the links to the other
  dashboards and a CSRF token for its forms (never cached nor framed: the security
  headers of ``messaging.security_headers`` see to that), and carries a notice across
  a redirect in a short-lived signed cookie (never in the URL, so a link cannot make a
  page say something that did not happen).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer

from auth.config import dashboard_url
from auth.dashboard import AuthClientConfig
from auth.forms import FormGuard
from auth.guards import page_user
from auth.pages import SHARED_TEMPLATES
from auth.verification import CurrentUser
from messaging.service_app import add_page_filters

Visitor = Annotated[CurrentUser, Depends(page_user)]
CsrfField = Annotated[str, Form()]


@dataclass(frozen=True)
class DashboardLinks:
    """Where the dashboards are, for the navigation."""

    tasks: str
    accounting: str
    analytics: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DashboardLinks:
        return cls(*(dashboard_url(name, environ) for name in ("tasks", "accounting", "analytics")))


def page_templates(directory: Path) -> Jinja2Templates:
    templates = Jinja2Templates(directory=[directory, SHARED_TEMPLATES])
    add_page_filters(templates)
    return templates


def mount_static(app: FastAPI, directory: Path) -> None:
    files = StaticFiles(directory=directory, packages=[("auth", "shared_static")])
    app.mount("/static", files, name="static")


NOTICE_MAX_AGE_SECONDS = 120


class Notices:
    """A one-time notice for the next page, in a signed cookie set by a redirect."""

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


class DashboardPages:
    def __init__(self, templates: Jinja2Templates, auth: AuthClientConfig, csrf_cookie: str,
                 links: DashboardLinks):
        self.templates = templates
        self.links = links
        self.forms = FormGuard(auth.secret_key, csrf_cookie, auth.secure_cookies)
        self.notices = Notices(auth.secret_key, f"{csrf_cookie}_notice", auth.secure_cookies)

    def redirect(self, url: str, notice: str | None = None) -> RedirectResponse:
        """See other ``url``; ``notice`` is shown once on the page it leads to."""
        if notice is None:
            return RedirectResponse(url, status_code=303)
        return self.notices.redirect(url, notice)

    def user_context(self, user: CurrentUser) -> dict[str, Any]:
        """What every page of the dashboard needs to know about ``user``."""
        return {}

    def render(self, request: Request, user: CurrentUser, template: str,
               context: dict[str, Any] | None = None, status_code: int = 200) -> HTMLResponse:
        token, new_cookie = self.forms.token_for(request)
        notice = self.notices.pending(request)
        full_context = {"user": user, "links": self.links, "csrf_token": token,
                        "notice": notice, **self.user_context(user), **(context or {})}
        response = self.templates.TemplateResponse(request, template, full_context,
                                                   status_code=status_code)
        if new_cookie is not None:
            self.forms.set_cookie(response, new_cookie)
        if request.cookies.get(self.notices.cookie_name) is not None:
            self.notices.clear(response)
        return response

    def message(self, request: Request, user: CurrentUser, title: str, text: str,
                status_code: int, link: str = "/") -> HTMLResponse:
        context = {"title": title, "text": text, "link": link, "link_text": "Back"}
        return self.render(request, user, "message.html", context, status_code)

    def expired_form(self, request: Request, user: CurrentUser, link: str = "/"
                     ) -> HTMLResponse:
        return self.message(request, user, "Form expired",
                            "This form has expired. Go back, reload the page and try again.",
                            403, link)
