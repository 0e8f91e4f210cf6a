"""JSON API: account management (admins) and ``/api/me`` (anyone signed in)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StrictBool

from auth.domain import InvalidAccountData, Role
from auth.queries import AccountNotFound, AccountQueries, AccountView
from auth.service import AccountChanges, AccountService, DuplicateEmail, SelfLockout
from auth_client.guards import current_user, require_role
from auth_client.verification import CurrentUser
from platform_kit.text_input import OptionalText, Text


class NewAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Text
    full_name: Text
    role: Text
    password: Text


class AccountPatch(BaseModel):
    """Only the fields sent are changed."""

    model_config = ConfigDict(extra="forbid")

    full_name: OptionalText = None
    role: OptionalText = None
    active: StrictBool | None = None
    password: OptionalText = None


class AccountList(BaseModel):
    items: list[AccountView]
    next: str | None


Admin = Annotated[CurrentUser, Depends(require_role(Role.ADMIN))]
Caller = Annotated[CurrentUser, Depends(current_user)]

# Documented answers besides the success, by status code (OpenAPI).
Responses = dict[int | str, dict[str, Any]]
ERRORS: Responses = {401: {"description": "No valid access token"},
                     403: {"description": "Not an admin"}}
DUPLICATE: Responses = {409: {"description": "An account with this email already exists"}}
LOCKOUT: Responses = {409: {"description": "Admins cannot deactivate, demote or delete themselves"}}


def accounts_router(accounts: AccountService, queries: AccountQueries) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["accounts"])

    @router.post("/accounts", status_code=status.HTTP_201_CREATED,
                 responses=ERRORS | DUPLICATE)
    def create_account(body: NewAccount, _: Admin) -> AccountView:
        return accounts.create_account(body.email, body.full_name, body.role, body.password)

    @router.get("/accounts", responses=ERRORS)
    def list_accounts(_: Admin, cursor: str | None = None,
                      limit: Annotated[int, Query(ge=1, le=200)] = 50) -> AccountList:
        page = queries.list_accounts(cursor, limit)
        return AccountList(items=page.items, next=page.next)

    @router.get("/accounts/{account_id}", responses=ERRORS)
    def get_account(account_id: str, _: Admin) -> AccountView:
        return queries.get_account(account_id)

    @router.patch("/accounts/{account_id}", responses=ERRORS | LOCKOUT)
    def update_account(account_id: str, body: AccountPatch,
                       actor: Admin) -> AccountView:
        changes = AccountChanges(**body.model_dump(exclude_unset=True))
        return accounts.update_account(account_id, changes, actor.id)

    @router.delete("/accounts/{account_id}", status_code=status.HTTP_204_NO_CONTENT,
                   responses=ERRORS | LOCKOUT)
    def delete_account(account_id: str, actor: Admin) -> Response:
        accounts.delete_account(account_id, actor.id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.get("/me", responses={401: ERRORS[401]})
    def me(user: Caller) -> AccountView:
        return queries.get_account(user.id)

    return router


def _detail(status_code: int) -> Callable[[Request, Exception], JSONResponse]:
    def handler(_request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=status_code)

    return handler


def _not_found(_request: Request, _error: Exception) -> JSONResponse:
    return JSONResponse({"detail": "account not found"}, status_code=404)


def _duplicate(_request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"detail": f"an account with email {error} already exists"},
                        status_code=409)


def _invalid_request(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [
        f"{'.'.join(str(p) for p in problem['loc'] if p != 'body')}: {problem['msg']}"
        for problem in error.errors()
    ]
    return JSONResponse({"detail": "; ".join(problems)}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """Every error answers ``{"detail": "<one readable sentence>"}``."""
    app.add_exception_handler(InvalidAccountData, _detail(422))
    app.add_exception_handler(SelfLockout, _detail(409))
    app.add_exception_handler(DuplicateEmail, _duplicate)
    app.add_exception_handler(AccountNotFound, _not_found)
    app.add_exception_handler(RequestValidationError, _invalid_request)
