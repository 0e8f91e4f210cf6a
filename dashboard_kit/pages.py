"""What the server-rendered pages of aTES share: the frame, its look and page rendering.

- templates: a dashboard's own folder first, then ``shared_templates`` here:
  ``dashboard_base.html`` (the frame of every aTES page: header, the dashboards the role
  may open, sign-out as a POST) that the dashboard's ``base.html`` extends, setting
  ``service`` and ``icon`` and filling block ``nav`` with its own pages through
  ``nav.html``'s ``nav_link`` (``aria-current="page"`` on the page shown);
  ``message.html``; ``page_links.html``. The provider's pages use the same frame;
- the frame's navigation (:class:`DashboardLinks`, :func:`dashboards_for`) and the
  filters every page may use (``when``: a UTC timestamp, ``sentence``);
- static files under ``/static``: the dashboard's own folder, then ``shared_static`` here
  (``dashboard.css``, the look of every dashboard; ``ates.svg``, the default favicon);
- :class:`DashboardPages`: renders a page with the signed-in user, the links to the other
  dashboards and a CSRF token for its forms (never cached nor framed: the security
  headers of ``platform_kit.security_headers`` see to that), and carries a notice across
  a redirect in a short-lived signed cookie (never in the URL, so a link cannot make a
  page say something that did not happen).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from auth_client.guards import page_user
from auth_client.settings import auth_url, dashboard_url
from auth_client.sign_in import AuthClientConfig
from auth_client.verification import CurrentUser
from dashboard_kit.forms import FormGuard, Notices

__all__ = ["SHARED_STATIC", "SHARED_TEMPLATES", "CsrfField", "DashboardLinks", "DashboardPages",
           "Notices", "Visitor", "add_frame_globals", "add_page_filters", "as_sentence",
           "dashboards_for", "mount_static", "page_templates"]

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
        return cls(tasks=dashboard_url("tasks", environ),
                   accounting=dashboard_url("accounting", environ),
                   analytics=dashboard_url("analytics", environ), auth=auth_url(environ))


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


def add_page_filters(templates: Jinja2Templates) -> None:
    """Jinja filters the dashboards share: ``when`` (a UTC timestamp) and ``sentence``."""
    templates.env.filters["when"] = _when
    templates.env.filters["sentence"] = as_sentence


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def as_sentence(text: str) -> str:
    """A domain message (``title is required``) as a sentence (``Title is required.``)."""
    return f"{text[:1].upper()}{text[1:]}{'' if text.endswith('.') else '.'}"


Visitor = Annotated[CurrentUser, Depends(page_user)]
CsrfField = Annotated[str, Form()]


def page_templates(directory: Path) -> Jinja2Templates:
    templates = Jinja2Templates(directory=[directory, SHARED_TEMPLATES])
    add_page_filters(templates)
    add_frame_globals(templates)
    return templates


def mount_static(app: FastAPI, directory: Path) -> None:
    files = StaticFiles(directory=directory, packages=[("dashboard_kit", "shared_static")])
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

    def refusal(self, request: Request, user: CurrentUser, error: Exception, status_code: int,
                titles: Mapping[int, str], link: str = "/") -> HTMLResponse:
        """The page of an action the domain refused: titled as ``titles`` says for the status
        (``Cannot do that`` otherwise), the error as a sentence."""
        return self.message(request, user, titles.get(status_code, "Cannot do that"),
                            as_sentence(str(error)), status_code, link)

    def expired_form(self, request: Request, user: CurrentUser, link: str = "/"
                     ) -> HTMLResponse:
        return self.message(request, user, "Form expired",
                            "This form has expired. Go back, reload the page and try again.",
                            403, link)
