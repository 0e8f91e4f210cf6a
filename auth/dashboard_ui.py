"""What the server-rendered dashboards (tasks, accounting) share besides sign-in.

- templates: a dashboard's own folder first, then ``shared_templates`` here:
  ``dashboard_base.html`` (the frame of every aTES page: header, the dashboards the role
  may open, sign-out as a POST) that the dashboard's ``base.html`` extends, setting
  ``service`` and ``icon`` and filling block ``nav`` with its own pages through
  ``nav.html``'s ``nav_link`` (``aria-current="page"`` on the page shown);
  ``message.html``; ``page_links.html``;
- static files under ``/static``: the dashboard's own folder, then ``shared_static`` here
  (``dashboard.css``, the look of every dashboard; ``ates.svg``, the default favicon);
- :class:`DashboardPages`: renders a page with the signed-in user, the links to the other
  dashboards and a CSRF token for its forms (never cached nor framed: the security
  headers of ``platform_kit.security_headers`` see to that), and carries a notice across
  a redirect in a short-lived signed cookie (never in the URL, so a link cannot make a
  page say something that did not happen).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from auth.dashboard import AuthClientConfig
from auth.forms import FormGuard
from auth.guards import page_user
from auth.pages import SHARED_TEMPLATES, DashboardLinks, Notices, add_frame_globals
from auth.verification import CurrentUser
from platform_kit.service_app import add_page_filters

__all__ = ["CsrfField", "DashboardLinks", "DashboardPages", "Notices", "Visitor",
           "mount_static", "page_templates"]

Visitor = Annotated[CurrentUser, Depends(page_user)]
CsrfField = Annotated[str, Form()]


def page_templates(directory: Path) -> Jinja2Templates:
    templates = Jinja2Templates(directory=[directory, SHARED_TEMPLATES])
    add_page_filters(templates)
    add_frame_globals(templates)
    return templates


def mount_static(app: FastAPI, directory: Path) -> None:
    files = StaticFiles(directory=directory, packages=[("auth", "shared_static")])
    app.mount("/static", files, name="static")


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
        self.notices.clear_shown(request, response)
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
