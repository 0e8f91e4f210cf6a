"""The task board: server-rendered pages for people signed in through auth's SSO.

Forms are protected against cross-site forgery as auth's own pages are (double submit):
a random value lives in an HttpOnly cookie and its signature in a hidden field of every
form, which a page on another origin can neither read nor forge.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from auth.client import AuthClientConfig, CurrentUser
from auth.dashboard_ui import CsrfField, DashboardLinks, DashboardPages, Visitor, page_templates
from messaging import text_input
from messaging.service_app import UNPROCESSABLE, as_sentence
from messaging.tracing import current_traceparent
from tasks import domain, service
from tasks.api import actor_of, status_for
from tasks.service import Sessions, TaskView
from tasks.settings import TasksSettings

STATIC_DIR = Path(__file__).parent / "static"
PAGE_SIZE = 20
CSRF_COOKIE = "ates_tasks_csrf"
ALL_STATUSES = "all"
STATUS_FILTERS = (domain.OPEN, domain.DONE, ALL_STATUSES)
STATUS_PICTURES = {domain.OPEN: "bird in a cage", domain.DONE: "millet in a bowl"}
# Pages say what just happened through a fixed code in the URL, never through free text.
NOTICES = {
    "created": "Task created.",
    "completed": "Task done: millet in the bowl.",
    "reshuffled": "Reshuffle done.",
}
REASSIGNED = " Open tasks handed out again: {count}."

templates = page_templates(Path(__file__).parent / "templates")
templates.env.globals["status_pictures"] = STATUS_PICTURES


@dataclass(frozen=True)
class TaskForm:
    title: str = ""
    jira_id: str = ""
    description: str = ""


@dataclass(frozen=True)
class Listing:
    """One of the two task lists: the visitor's own tasks, or everyone's."""

    name: str
    path: str
    heading: str
    default_status: str


MY_TASKS = Listing("mine", "/", "My tasks", domain.OPEN)
ALL_TASKS = Listing("all", "/all", "All tasks", ALL_STATUSES)


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _task_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise domain.TaskNotFound(raw) from None


def _notice(code: str | None, reassigned: str | None) -> str | None:
    text = NOTICES.get(code or "")
    if text is not None and code == "reshuffled" and reassigned and reassigned.isdigit():
        text += REASSIGNED.format(count=int(reassigned))
    return text


class Board(DashboardPages):
    def __init__(self, sessions: Sessions, settings: TasksSettings, auth: AuthClientConfig,
                 links: DashboardLinks):
        super().__init__(templates, auth, CSRF_COOKIE, links)
        self.sessions = sessions
        self.settings = settings

    # --- rendering ------------------------------------------------------------------

    def user_context(self, user: CurrentUser) -> dict[str, Any]:
        return {"may_reshuffle": domain.may_reshuffle(user.role)}

    def refused(self, request: Request, user: CurrentUser, error: domain.TaskError
                ) -> HTMLResponse:
        titles = {403: "Not allowed", 404: "Not found", 409: "Not possible now"}
        code = status_for(error)
        return self.message(request, user, titles.get(code, "Cannot do that"),
                            as_sentence(str(error)), code)

    # --- lists ----------------------------------------------------------------------

    def tasks_page(self, request: Request, user: CurrentUser, listing: Listing,
                   status: str | None, cursor: str | None, notice: str | None,
                   count: str | None) -> HTMLResponse:
        status = status or listing.default_status
        if status not in STATUS_FILTERS:
            return self.message(request, user, "Unknown filter",
                                f"Tasks are {', '.join(STATUS_FILTERS)}, not {status!r}.", 422,
                                link=listing.path)
        assignee = actor_of(user).id if listing is MY_TASKS else None
        try:
            tasks, next_cursor = service.list_tasks(
                self.sessions, assignee, None if status == ALL_STATUSES else status, cursor,
                PAGE_SIZE)
        except domain.ValidationError:
            return self.message(request, user, "Page not found",
                                "This page link is no longer valid.", 422, link=listing.path)
        context = {
            "listing": listing, "status": status, "tasks": tasks,
            "names": self._names(tasks), "notice": _notice(notice, count),
            "filter_urls": {s: self._list_url(listing, s) for s in STATUS_FILTERS},
            "next_url": next_cursor and self._list_url(listing, status, next_cursor),
            "first_url": cursor and self._list_url(listing, status),
        }
        return self.render(request, user, "tasks.html", context)

    def _list_url(self, listing: Listing, status: str, cursor: str | None = None) -> str:
        query = {"status": status} | ({"cursor": cursor} if cursor else {})
        return f"{listing.path}?{urlencode(query)}"

    def _names(self, tasks: list[TaskView]) -> dict[uuid.UUID, str]:
        return service.account_names(self.sessions, {task.assignee_id for task in tasks})

    def task_page(self, request: Request, user: CurrentUser, raw_id: str,
                  notice: str | None) -> HTMLResponse:
        try:
            task = service.get_task(self.sessions, _task_id(raw_id))
        except domain.TaskError as error:
            return self.refused(request, user, error)
        context = {"task": task, "names": self._names([task]), "notice": _notice(notice, None)}
        return self.render(request, user, "task.html", context)

    # --- creating -------------------------------------------------------------------

    def new_task_page(self, request: Request, user: CurrentUser, form: TaskForm | None = None,
                      error: str | None = None, status_code: int = 200) -> HTMLResponse:
        context = {"form": form or TaskForm(), "error": error,
                   "title_max_length": domain.TITLE_MAX_LENGTH,
                   "description_max_length": domain.DESCRIPTION_MAX_LENGTH}
        return self.render(request, user, "new_task.html", context, status_code)

    def create_task(self, request: Request, user: CurrentUser, form: TaskForm,
                    csrf_token: str) -> Response:
        if not self.forms.is_valid(request, csrf_token):
            return self.expired_form(request, user)
        problem = text_input.first_problem(asdict(form))
        if problem is not None:
            shown = TaskForm(**{k: text_input.displayable(v) for k, v in asdict(form).items()})
            return self.new_task_page(request, user, shown, problem, UNPROCESSABLE)
        try:
            task = service.create_task(
                self.sessions, self.settings, actor_of(user), form.title, form.jira_id,
                form.description, traceparent=current_traceparent())
        except domain.TaskError as error:
            return self.new_task_page(request, user, form, str(error), status_for(error))
        return _see_other(f"/tasks/{task.id}?notice=created")

    # --- completing -----------------------------------------------------------------

    def complete_task(self, request: Request, user: CurrentUser, raw_id: str,
                      csrf_token: str) -> Response:
        if not self.forms.is_valid(request, csrf_token):
            return self.expired_form(request, user)
        try:
            service.complete_task(self.sessions, self.settings, actor_of(user),
                                  _task_id(raw_id), traceparent=current_traceparent())
        except domain.TaskError as error:
            return self.refused(request, user, error)
        return _see_other("/?notice=completed")

    # --- reshuffling ----------------------------------------------------------------

    def reshuffle_page(self, request: Request, user: CurrentUser) -> HTMLResponse:
        try:
            domain.ensure_may_reshuffle(user.role)
        except domain.Forbidden as refusal:
            return self.refused(request, user, refusal)
        open_tasks = service.count_open_tasks(self.sessions)
        return self.render(request, user, "reshuffle.html", {"open_tasks": open_tasks})

    def reshuffle(self, request: Request, user: CurrentUser, csrf_token: str) -> Response:
        if not self.forms.is_valid(request, csrf_token):
            return self.expired_form(request, user)
        try:
            count = service.reshuffle(self.sessions, self.settings, actor_of(user),
                                      traceparent=current_traceparent())
        except domain.TaskError as error:
            return self.refused(request, user, error)
        return _see_other(f"/all?notice=reshuffled&count={count}")


def web_router(board: Board) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    def my_tasks(request: Request, user: Visitor, status: str | None = None,
                 cursor: str | None = None, notice: str | None = None,
                 count: str | None = None) -> Response:
        return board.tasks_page(request, user, MY_TASKS, status, cursor, notice, count)

    @router.get("/all")
    def all_tasks(request: Request, user: Visitor, status: str | None = None,
                  cursor: str | None = None, notice: str | None = None,
                  count: str | None = None) -> Response:
        return board.tasks_page(request, user, ALL_TASKS, status, cursor, notice, count)

    @router.get("/tasks/{task_id}")
    def task_page(request: Request, user: Visitor, task_id: str,
                  notice: str | None = None) -> Response:
        return board.task_page(request, user, task_id, notice)

    @router.get("/new")
    def new_task_page(request: Request, user: Visitor) -> Response:
        return board.new_task_page(request, user)

    @router.post("/new")
    def create_task(request: Request, user: Visitor, csrf_token: CsrfField = "",
                    title: Annotated[str, Form()] = "", jira_id: Annotated[str, Form()] = "",
                    description: Annotated[str, Form()] = "") -> Response:
        # Browsers send the line breaks of a textarea as CRLF.
        form = TaskForm(title, jira_id, description.replace("\r\n", "\n"))
        return board.create_task(request, user, form, csrf_token)

    @router.post("/tasks/{task_id}/complete")
    def complete_task(request: Request, user: Visitor, task_id: str,
                      csrf_token: CsrfField = "") -> Response:
        return board.complete_task(request, user, task_id, csrf_token)

    @router.get("/reshuffle")
    def reshuffle_page(request: Request, user: Visitor) -> Response:
        return board.reshuffle_page(request, user)

    @router.post("/reshuffle")
    def reshuffle(request: Request, user: Visitor, csrf_token: CsrfField = "") -> Response:
        return board.reshuffle(request, user, csrf_token)

    return router
