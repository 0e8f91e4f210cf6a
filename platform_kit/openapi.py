"""What every service's OpenAPI description says beyond FastAPI's own: the errors.

Every error of every service answers ``{"detail": "<one readable sentence>"}``
(:class:`ErrorOut`). :func:`document_errors` (applied by ``create_service_app``) adds to
each operation of the description the error answers it can give, by what the operation
takes:

- an operation behind the bearer scheme (:data:`BEARER`, which the ``auth`` guards
  declare): 401 (no valid access token) and 403 (a role or an account that may not);
- a path parameter: 404 (nothing there);
- path or query parameters: 400 (an address with characters no text may hold), a body:
  400 (not JSON at all);
- any parameter or a body: 422 (malformed request);

and gives every documented error without a body of its own (``responses={409:
{"description": ...}}`` in a router) the ``ErrorOut`` body; FastAPI's own 422 body (a list
of problems) is replaced by it too, as the services answer one sentence.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field

BEARER_SCHEME = "bearer"
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name=BEARER_SCHEME,
    bearerFormat="JWT",
    description="An access token of the aTES auth service: `Authorization: Bearer <token>`.",
)

ERROR_SCHEMA = "ErrorOut"
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


class ErrorOut(BaseModel):
    """The body of every error answer."""

    detail: str = Field(description="What went wrong, in one readable sentence")


def error(description: str) -> dict[str, Any]:
    """A documented error answer, for a router's ``responses=``."""
    return {"model": ErrorOut, "description": description}


UNAUTHORIZED = "No valid access token"
FORBIDDEN = "The caller may not do this"
NOT_FOUND = "Nothing there"
BAD_ADDRESS = "The address holds characters no text may hold"
BAD_BODY = "The body is not JSON"
MALFORMED = "Malformed request"

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def document_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` describe the error answers of every operation."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_errors(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def with_errors(spec: dict[str, Any]) -> dict[str, Any]:
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_SCHEMA] = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    for path_item in spec.get("paths", {}).values():
        for method in _METHODS:
            operation = path_item.get(method)
            if operation is not None:
                _document_operation(operation, path_item.get("parameters", []))
    if not _mentions(spec, _FASTAPI_VALIDATION_SCHEMAS):
        for name in _FASTAPI_VALIDATION_SCHEMAS:
            schemas.pop(name, None)
    return spec


def _document_operation(operation: dict[str, Any], shared_parameters: list[dict[str, Any]]) -> None:
    parameters = [*shared_parameters, *operation.get("parameters", [])]
    places = {parameter.get("in") for parameter in parameters}
    expected: dict[str, str] = {}
    if operation.get("security"):
        expected |= {"401": UNAUTHORIZED, "403": FORBIDDEN}
    if "path" in places:
        expected["404"] = NOT_FOUND
    if "requestBody" in operation:
        expected["400"] = BAD_BODY
    if places & {"path", "query"}:
        expected["400"] = BAD_ADDRESS
    if parameters or "requestBody" in operation:
        expected["422"] = MALFORMED
    responses = operation.setdefault("responses", {})
    for code, description in expected.items():
        responses.setdefault(code, {"description": description})
    for code, response in responses.items():
        if code.isdigit() and int(code) >= 400:
            _with_error_body(response)


def _with_error_body(response: dict[str, Any]) -> None:
    content = response.get("content") or {}
    if content and "application/json" not in content:
        return  # an error page
    schema = content.get("application/json", {}).get("schema", {})
    if not content or schema.get("$ref", "").endswith("/HTTPValidationError"):
        response["content"] = {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}
        }


def _mentions(spec: dict[str, Any], names: tuple[str, ...]) -> bool:
    refs = {f"#/components/schemas/{name}" for name in names}

    def walk(node: Any) -> bool:
        if isinstance(node, dict):
            if node.get("$ref") in refs:
                return True
            return any(walk(value) for key, value in node.items()
                       if not (node is spec.get("components", {}).get("schemas")
                               and key in names))
        if isinstance(node, list):
            return any(walk(item) for item in node)
        return False

    return walk(spec)
