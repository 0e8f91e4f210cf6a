"""JSON API of the tasks service (bearer access tokens, verified locally).

Every error answers ``{"detail": "<one readable sentence>"}``: the domain's errors map to
the status codes of ``ERROR_STATUS``, malformed requests to 422.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi import status as http
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.convertors import StringConvertor, register_url_convertor

from auth_client.guards import BearerScheme, for_caller
from auth_client.verification import CurrentUser
from platform_kit.cursor import InvalidCursor
from platform_kit.openapi import error
from platform_kit.service_app import UNPROCESSABLE
from platform_kit.service_app import install_error_handlers as install_shared_error_handlers
from platform_kit.text_input import OptionalText, Text
from platform_kit.tracing import current_traceparent
from tasks import domain, queries
from tasks.queries import TaskQueries, TaskView
from tasks.service import Actor, TasksService

ERROR_STATUS: dict[type[Exception], int] = {
    domain.ValidationError: UNPROCESSABLE,
    InvalidCursor: UNPROCESSABLE,
    domain.NoEligibleAssignee: http.HTTP_409_CONFLICT,
    domain.TaskNotFound: http.HTTP_404_NOT_FOUND,
    domain.NotAssignee: http.HTTP_403_FORBIDDEN,
    domain.AlreadyDone: http.HTTP_409_CONFLICT,
    domain.Forbidden: http.HTTP_403_FORBIDDEN,
}

ME = "me"


class TaskIdSegment(StringConvertor):
    """A path segment that may name a task: any but ``reshuffle``, so that ``GET
    /api/tasks/reshuffle`` is 405 (only POST there) rather than a malformed task id."""

    regex = "(?!reshuffle/?$)[^/]+"


register_url_convertor("task_id", TaskIdSegment())

TaskStatus = Literal["open", "done"]  # domain.STATUSES, spelled out for the OpenAPI schema
TaskSort = Literal["newest", "oldest", "title"]  # queries.SORTS


def status_for(error: Exception) -> int:
    return next(
        (code for kind, code in ERROR_STATUS.items() if isinstance(error, kind)),
        http.HTTP_400_BAD_REQUEST,
    )


def actor_of(user: CurrentUser) -> Actor:
    """The acting account; service clients (whose ``sub`` is a client id) are refused."""
    try:
        return Actor(id=uuid.UUID(user.id), role=user.role)
    except ValueError:
        raise HTTPException(
            http.HTTP_403_FORBIDDEN, "this needs a person's account, not a service client"
        ) from None


# -- request and response bodies ----------------------------------------------------------


class NewTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Text = Field(
        description=f"1 to {domain.TITLE_MAX_LENGTH} characters, without [ or ]",
        examples=["Fix the button"],
    )
    jira_id: OptionalText = Field(
        default=None, description="A Jira key like UBERPOP-42", examples=["UBERPOP-42"]
    )
    description: OptionalText = Field(
        default=None, description=f"At most {domain.DESCRIPTION_MAX_LENGTH} characters"
    )


class TaskOut(BaseModel):
    id: uuid.UUID
    title: str
    jira_id: str | None
    description: str | None
    status: TaskStatus
    assignee_id: uuid.UUID
    created_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, task: TaskView) -> TaskOut:
        completed_at = task.completed_at
        return cls(
            id=task.id,
            title=task.title,
            jira_id=task.jira_id,
            description=task.description,
            status=task.status,  # type: ignore[arg-type]
            assignee_id=task.assignee_id,
            created_at=task.created_at.astimezone(UTC),
            completed_at=None if completed_at is None else completed_at.astimezone(UTC),
        )


class TaskPage(BaseModel):
    items: list[TaskOut]
    next: str | None = Field(description="Pass as ?cursor= for the next page; null at the end")
    total: int = Field(description="How many tasks match, over every page")
    total_exact: bool = Field(
        description=f"false when `total` is an estimate (beyond {queries.COUNT_EXACTLY_UP_TO} "
        "matching tasks, unless only open tasks are asked for)"
    )


class Reshuffled(BaseModel):
    reassigned: int = Field(description="How many open tasks got a (possibly new) assignee")


COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    401: error("No valid access token"), 422: error("Malformed request")
}


# -- routes -------------------------------------------------------------------------------


def api_router(service: TasksService, reads: TaskQueries) -> APIRouter:
    router = APIRouter(prefix="/api/tasks", tags=["tasks"], responses=COMMON_ERRORS)

    @router.post(
        "",
        status_code=http.HTTP_201_CREATED,
        responses={409: error("No eligible assignee: nothing was stored")},
    )
    async def create_task(body: NewTask, request: Request, response: Response,
                          _scheme: BearerScheme = None) -> TaskOut:
        """Create an open task, assigned to a random active account that is neither admin
        nor manager."""
        task = await for_caller(request, lambda user: service.create_task(
            actor_of(user),
            body.title,
            body.jira_id,
            body.description,
            traceparent=current_traceparent(),
        ), work_checks_standing=True)
        response.headers["Location"] = f"/api/tasks/{task.id}"
        return TaskOut.of(task)

    @router.get("")
    async def list_tasks(
        request: Request,
        _scheme: BearerScheme = None,
        assignee: Annotated[
            str | None, Query(description="`me` or an account id; every task when absent")
        ] = None,
        status: TaskStatus | None = None,
        q: Annotated[
            str | None, Query(description="Words in the title, Jira id or description")
        ] = None,
        assignee_name: Annotated[
            str | None, Query(description="Part of the assignee's full name")
        ] = None,
        creator: Annotated[
            str | None, Query(description="`me` or the account id of who created the task")
        ] = None,
        creator_name: Annotated[
            str | None, Query(description="Part of the full name of who created the task")
        ] = None,
        sort: TaskSort = "newest",
        cursor: Annotated[str | None, Query(description="`next` of the previous page")] = None,
        limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE_SIZE)] = queries.DEFAULT_PAGE_SIZE,
    ) -> TaskPage:
        """Tasks matching every given filter, one page at a time (newest first unless
        `sort` says otherwise), with how many match in all."""
        def page(user: CurrentUser) -> tuple[list[TaskView], str | None, queries.Total]:
            conditions: dict[str, queries.Condition] = {
                "assignee": _account_filter(assignee, user, "assignee"), "status": status,
                "q": q, "creator": _account_filter(creator, user, "creator"),
                "assignee_name": assignee_name, "creator_name": creator_name,
            }
            items, next_cursor = reads.list_tasks(cursor=cursor, limit=limit, sort=sort,
                                                  **conditions)
            return items, next_cursor, reads.count_tasks(**conditions)

        items, next_cursor, total = await for_caller(request, page)
        return TaskPage(items=[TaskOut.of(task) for task in items], next=next_cursor,
                        total=total.count, total_exact=total.exact)

    @router.post(
        "/reshuffle",
        responses={
            403: error("Neither admin nor manager"),
            409: error("Open tasks but no eligible assignee: nothing changed"),
        },
    )
    async def reshuffle(request: Request, _scheme: BearerScheme = None) -> Reshuffled:
        """Give every open task a uniformly random eligible assignee (admins, managers)."""
        count = await for_caller(request, lambda user: service.reshuffle(
            actor_of(user), traceparent=current_traceparent()))
        return Reshuffled(reassigned=count)

    @router.get("/{task_id:task_id}", responses={404: error("No such task")})
    async def get_task(task_id: uuid.UUID, request: Request,
                       _scheme: BearerScheme = None) -> TaskOut:
        return TaskOut.of(await for_caller(request, lambda _user: reads.get_task(task_id)))

    @router.post(
        "/{task_id}/complete",
        responses={
            403: error("Not the task's current assignee"),
            404: error("No such task"),
            409: error("The task is already done"),
        },
    )
    async def complete_task(task_id: uuid.UUID, request: Request,
                            _scheme: BearerScheme = None) -> TaskOut:
        """Mark one of the caller's open tasks done."""
        task = await for_caller(request, lambda user: service.complete_task(
            actor_of(user), task_id, traceparent=current_traceparent()))
        return TaskOut.of(task)

    return router


def _account_filter(account: str | None, user: CurrentUser, name: str) -> uuid.UUID | None:
    if account is None:
        return None
    if account == ME:
        return actor_of(user).id
    try:
        return uuid.UUID(account)
    except ValueError:
        raise domain.ValidationError(
            f"{name} must be 'me' or an account id, not {account!r}"
        ) from None


# -- errors -------------------------------------------------------------------------------


def install_error_handlers(app: FastAPI) -> None:
    for kind in (domain.TaskError, InvalidCursor):
        install_shared_error_handlers(app, kind, status_for)
