"""Server-rendered pages of the provider: templates, cookies and CSRF protection.

The frame, its look and one-time notices are the dashboards' too (:mod:`dashboard_kit`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from auth.config import AuthConfig
from dashboard_kit.forms import FormGuard, Notices
from dashboard_kit.pages import SHARED_TEMPLATES, DashboardLinks, add_frame_globals

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

    def set_sso_cookie(self, response: HTMLResponse | RedirectResponse, token: str) -> None:
        max_age = int(self.config.sso_session_ttl.total_seconds())
        self._set_cookie(response, SSO_COOKIE, token, max_age)

    def clear_sso_cookie(self, response: HTMLResponse | RedirectResponse) -> None:
        response.delete_cookie(SSO_COOKIE, path="/", secure=self.config.secure_cookies,
                               httponly=True, samesite="lax")

    def _set_cookie(self, response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", httponly=True,
                            samesite="lax", secure=self.config.secure_cookies)
