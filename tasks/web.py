"""The task board: server-rendered pages for people signed in through auth's SSO.

Forms are protected against cross-site forgery as auth's own pages are (double submit):
a random value lives in an HttpOnly cookie and its signature in a hidden field of every
form, which a page on another origin can neither read nor forge.

Lists take their filters, sort, view (list or board) and page from the query string, so
every state of a list is a link and works without JavaScript. ``/static/board.js`` adds
keyboard shortcuts and live updates: it listens to ``/events`` (Server-Sent Events fed by
``tasks.live``) and, on any change, fetches the page again and swaps its ``#results``.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from auth_client.sign_in import AuthClientConfig
from auth_client.verification import CurrentUser
from dashboard_kit.pages import CsrfField, DashboardLinks, DashboardPages, Visitor, page_templates
from platform_kit import live, text_input
from platform_kit.cursor import InvalidCursor
from platform_kit.db import engine_of
from platform_kit.service_app import UNPROCESSABLE
from platform_kit.tracing import current_traceparent
from tasks import domain, queries
from tasks.api import actor_of, status_for
from tasks.live import LiveFeed, conninfo_of
from tasks.queries import TaskQueries, TaskView
from tasks.service import TasksService

STATIC_DIR = Path(__file__).parent / "static"
PAGE_SIZE = 20
CSRF_COOKIE = "ates_tasks_csrf"
ALL_STATUSES = "all"
STATUS_FILTERS = (domain.OPEN, domain.DONE, ALL_STATUSES)
STATUS_PICTURES = {domain.OPEN: "bird in a cage", domain.DONE: "millet in a bowl"}
# What the page after a form says happened: carried in a signed cookie, never in the URL.
CREATED = "Task created."
COMPLETED = "Task done: millet in the bowl."
RESHUFFLED = "Reshuffle done. Open tasks handed out again: {count:,}."
LIST, BOARD = "list", "board"
VIEWS = (LIST, BOARD)
SORT_NAMES = {queries.NEWEST: "Newest first", queries.OLDEST: "Oldest first",
              queries.TITLE: "Title A to Z"}
HISTORY_SHOWN = 100
REFUSAL_TITLES = {403: "Not allowed", 404: "Not found", 409: "Not possible now"}

templates = page_templates(Path(__file__).parent / "templates")
templates.env.globals["status_pictures"] = STATUS_PICTURES
templates.env.globals["sort_names"] = SORT_NAMES


def _total_text(total: queries.Total) -> str:
    noun = "task" if total.count == 1 else "tasks"
    return f"{total.count:,} {noun}" if total.exact else f"about {total.count:,} {noun}"


templates.env.filters["total"] = _total_text


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


@dataclass(frozen=True)
class ListQuery:
    """What a list shows, as its query string says (empty: not asked)."""

    q: str = ""
    assignee: str = ""
    creator: str = ""
    status: str = ""
    sort: str = ""
    view: str = ""

    @classmethod
    def of(cls, request: Request) -> ListQuery:
        params = request.query_params
        return cls(**{f.name: params.get(f.name, "").strip() for f in fields(cls)})

    def problem(self, listing: Listing) -> str | None:
        if self.status and self.status not in STATUS_FILTERS:
            return f"Tasks are {', '.join(STATUS_FILTERS)}, not {self.status!r}."
        if self.sort and self.sort not in queries.SORTS:
            return f"Tasks are sorted {', '.join(queries.SORTS)}, not {self.sort!r}."
        if self.view and self.view not in VIEWS:
            return f"Tasks are shown as a {' or a '.join(VIEWS)}, not {self.view!r}."
        return None

    def url(self, listing: Listing, cursor: str | None = None, **changes: str) -> str:
        values = asdict(self) | changes
        query = {name: value for name, value in values.items() if value}
        query |= {"cursor": cursor} if cursor else {}
        return f"{listing.path}?{urlencode(query)}" if query else listing.path

    @property
    def searching(self) -> bool:
        return bool(self.q or self.assignee or self.creator)


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _task_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise domain.TaskNotFound(raw) from None


class Board(DashboardPages):
    def __init__(self, service: TasksService, reads: TaskQueries, auth: AuthClientConfig,
                 links: DashboardLinks):
        super().__init__(templates, auth, CSRF_COOKIE, links)
        self.service = service
        self.reads = reads
        self.live = LiveFeed(conninfo_of(engine_of(reads.sessions)))

    # --- rendering ------------------------------------------------------------------

    def user_context(self, user: CurrentUser) -> dict[str, Any]:
        return {"may_reshuffle": domain.may_reshuffle(user.role),
                "has_own_tasks": user.role not in domain.NEVER_ASSIGNED_ROLES}

    def refused(self, request: Request, user: CurrentUser, error: domain.TaskError
                ) -> HTMLResponse:
        return self.refusal(request, user, error, status_for(error), REFUSAL_TITLES)

    # --- lists ----------------------------------------------------------------------

    def tasks_page(self, request: Request, user: CurrentUser, listing: Listing,
                   cursor: str | None) -> HTMLResponse:
        wanted = ListQuery.of(request)
        problem = wanted.problem(listing)
        if problem is not None:
            return self.message(request, user, "Unknown filter", problem, 422, link=listing.path)
        status = wanted.status or listing.default_status
        view = wanted.view or LIST
        conditions: dict[str, queries.Condition] = {
            "assignee": actor_of(user).id if listing is MY_TASKS else None,
            "q": wanted.q or None, "creator_name": wanted.creator or None,
            "assignee_name": (wanted.assignee or None) if listing is ALL_TASKS else None,
        }
        sort = wanted.sort or queries.NEWEST
        try:
            if view == BOARD:
                columns = [self._column(listing, wanted, status_name, sort, conditions)
                           for status_name in domain.STATUSES]
                tasks, next_cursor, total = [t for c in columns for t in c["tasks"]], None, None
            else:
                columns = []
                only = None if status == ALL_STATUSES else status
                tasks, next_cursor = self.reads.list_tasks(
                    status=only, cursor=cursor, limit=PAGE_SIZE, sort=sort, **conditions)
                total = self.reads.count_tasks(status=only, **conditions)
        except InvalidCursor:
            return self.message(request, user, "Page not found",
                                "This page link is no longer valid.", 422, link=listing.path)
        except domain.ValidationError as error:
            return self.refusal(request, user, error, UNPROCESSABLE,
                                {UNPROCESSABLE: "Unknown filter"}, listing.path)
        context = {
            "listing": listing, "status": status, "view": view, "wanted": wanted,
            "sort": sort, "tasks": tasks, "columns": columns, "total": total,
            "names": self._names(tasks),
            "filter_urls": {s: wanted.url(listing, status=s) for s in STATUS_FILTERS},
            "view_urls": {v: wanted.url(listing, view=v) for v in VIEWS},
            "clear_url": ListQuery(view=wanted.view).url(listing),
            "next_url": next_cursor and wanted.url(listing, next_cursor, status=status),
            "first_url": cursor and wanted.url(listing, status=status),
        }
        return self.render(request, user, "tasks.html", context)

    def _column(self, listing: Listing, wanted: ListQuery, status: str, sort: str,
                conditions: dict[str, queries.Condition]) -> dict[str, Any]:
        tasks, more = self.reads.list_tasks(status=status, cursor=None, limit=PAGE_SIZE,
                                            sort=sort, **conditions)
        return {"status": status, "tasks": tasks,
                "total": self.reads.count_tasks(status=status, **conditions),
                "more_url": more and wanted.url(listing, status=status, view=LIST)}

    def _names(self, tasks: list[TaskView], *more: uuid.UUID | None) -> dict[uuid.UUID, str]:
        wanted = {task.assignee_id for task in tasks} | {task.created_by for task in tasks}
        return self.reads.account_names({a for a in wanted | set(more) if a})

    def task_page(self, request: Request, user: CurrentUser, raw_id: str) -> HTMLResponse:
        try:
            task = self.reads.get_task(_task_id(raw_id))
        except domain.TaskError as error:
            return self.refused(request, user, error)
        history = self.reads.task_history(task.id, HISTORY_SHOWN)
        people = [p for entry in history
                  for p in (entry.assignee_id, entry.previous_assignee_id, entry.actor_id)]
        context = {"task": task, "history": history, "history_shown": HISTORY_SHOWN,
                   "names": self._names([task], *people)}
        return self.render(request, user, "task.html", context)

    # --- live updates ---------------------------------------------------------------

    def events(self, request: Request) -> StreamingResponse:
        """Server-Sent Events: ``ready`` once listening, then ``change`` for every change."""
        return StreamingResponse(live.event_stream(self.live), media_type="text/event-stream",
                                 headers={"X-Accel-Buffering": "no"})

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
            task = self.service.create_task(
                actor_of(user), form.title, form.jira_id, form.description,
                traceparent=current_traceparent())
        except domain.TaskError as error:
            return self.new_task_page(request, user, form, str(error), status_for(error))
        return self.redirect(f"/tasks/{task.id}", notice=CREATED)

    # --- completing -----------------------------------------------------------------

    def complete_task(self, request: Request, user: CurrentUser, raw_id: str,
                      csrf_token: str) -> Response:
        if not self.forms.is_valid(request, csrf_token):
            return self.expired_form(request, user)
        try:
            self.service.complete_task(actor_of(user), _task_id(raw_id),
                                       traceparent=current_traceparent())
        except domain.TaskError as error:
            return self.refused(request, user, error)
        return self.redirect("/", notice=COMPLETED)

    # --- reshuffling ----------------------------------------------------------------

    def reshuffle_page(self, request: Request, user: CurrentUser) -> HTMLResponse:
        try:
            domain.ensure_may_reshuffle(user.role)
        except domain.Forbidden as refusal:
            return self.refused(request, user, refusal)
        open_tasks = self.reads.count_open_tasks()
        return self.render(request, user, "reshuffle.html", {"open_tasks": open_tasks})

    def reshuffle(self, request: Request, user: CurrentUser, csrf_token: str) -> Response:
        if not self.forms.is_valid(request, csrf_token):
            return self.expired_form(request, user)
        try:
            count = self.service.reshuffle(actor_of(user), traceparent=current_traceparent())
        except domain.TaskError as error:
            return self.refused(request, user, error)
        return self.redirect(ALL_TASKS.path, notice=RESHUFFLED.format(count=count))


def web_router(board: Board) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    def my_tasks(request: Request, user: Visitor, cursor: str | None = None) -> Response:
        if user.role in domain.NEVER_ASSIGNED_ROLES:  # they have no tasks of their own
            query = request.url.query
            return _see_other(f"{ALL_TASKS.path}?{query}" if query else ALL_TASKS.path)
        return board.tasks_page(request, user, MY_TASKS, cursor)

    @router.get("/all")
    def all_tasks(request: Request, user: Visitor, cursor: str | None = None) -> Response:
        return board.tasks_page(request, user, ALL_TASKS, cursor)

    @router.get("/events")
    async def events(request: Request, user: Visitor) -> StreamingResponse:
        return board.events(request)

    @router.get("/tasks/{task_id}")
    def task_page(request: Request, user: Visitor, task_id: str) -> Response:
        return board.task_page(request, user, task_id)

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
