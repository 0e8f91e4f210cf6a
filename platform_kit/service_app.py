"""What every service's web app has in common: docs served locally and operations routes.

- ``/docs`` and ``/redoc`` with their assets served by the service itself (no CDN);
- ``/healthz``: the process is alive;
- ``/readyz``: every dependency the service names answers (its database, the broker, the
  SMTP server of a service that sends mail ...), else 503 naming the one that does not;
- ``/metrics``: Prometheus exposition;
- on every request: a request id, a server span and HTTP metrics (``http_telemetry``);
- paths and query strings with characters no text may hold answer 400 (``text_input``);
- HTML error pages (404, 403, 500) for browsers, JSON errors for the API (``error_pages``);
- security headers on every answer (``security_headers``; ``page_policy`` says what the
  service's pages need beyond the strict default);
- an OpenAPI description that documents every error answer (``openapi``).
"""

from __future__ import annotations

import smtplib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import psycopg
import sqlalchemy.exc
from confluent_kafka.admin import AdminClient
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, text
from starlette.routing import Match

from platform_kit.error_pages import install_error_pages
from platform_kit.http_telemetry import RequestTelemetry
from platform_kit.metrics import DEPENDENCY_UP
from platform_kit.openapi import document_errors
from platform_kit.security_headers import PagePolicy, SecurityHeaders
from platform_kit.settings import Settings
from platform_kit.text_input import StorableQueryAndPath

ReadinessCheck = Callable[[], None]
UNPROCESSABLE = 422
METHOD_NOT_ALLOWED = 405
HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def create_service_app(
    title: str, checks: dict[str, ReadinessCheck], page_policy: PagePolicy | None = None,
    **fastapi_options: Any,
) -> FastAPI:
    app = FastAPIOffline(title=title, **fastapi_options)
    app.add_middleware(StorableQueryAndPath)
    app.add_middleware(RequestTelemetry)
    app.add_middleware(SecurityHeaders, policy=page_policy)
    add_operations_routes(app, checks)
    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, _database_unavailable)
    document_errors(app)
    app.add_exception_handler(RequestValidationError, _malformed_request)
    app.add_exception_handler(METHOD_NOT_ALLOWED, _method_not_allowed)
    install_error_pages(app)
    return app


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_ates_app(
    service: str, engine: Engine, settings: Settings, *, description: str,
    page_policy: PagePolicy | None = None, checks_smtp: bool = False,
    lifespan: Lifespan | None = None,
) -> FastAPI:
    """The web app of the aTES service ``service`` (titled ``aTES <service>``, version 1.0),
    ready once its database (``engine``), the broker and, with ``checks_smtp``, the SMTP
    server answer; its lifespan closes the database connections by default."""
    return create_service_app(
        f"aTES {service}",
        dependency_checks(engine, settings, checks_smtp=checks_smtp),
        page_policy=page_policy,
        version="1.0",
        description=description,
        lifespan=lifespan or disposing(engine),
    )


def dependency_checks(engine: Engine, settings: Settings,
                      checks_smtp: bool = False) -> dict[str, ReadinessCheck]:
    """The readiness checks of a service: its database, the broker, the SMTP server."""
    checks = {"database": database_check(engine), "broker": broker_check(settings.kafka_bootstrap)}
    if checks_smtp:
        checks["smtp"] = smtp_check(settings.smtp_url)
    return checks


def _method_not_allowed(request: Request, _error: Exception) -> JSONResponse:
    """405 whose ``Allow`` lists every method of the address, not only those of the first
    route that matched its path."""
    methods = [method for method in HTTP_METHODS
               if any(route.matches({**request.scope, "method": method})[0] == Match.FULL
                      for route in request.app.router.routes)]
    return JSONResponse({"detail": "Method Not Allowed"}, status_code=METHOD_NOT_ALLOWED,
                        headers={"Allow": ", ".join(methods)})


# What a request meets while the database is down, restarting or out of connections.
DATABASE_UNAVAILABLE = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
                        sqlalchemy.exc.TimeoutError, psycopg.OperationalError)
RETRY_AFTER_SECONDS = 5


def _database_unavailable(_request: Request, _error: Exception) -> JSONResponse:
    """503 with ``Retry-After`` while the database cannot be reached (or gives up on a
    lock, a timeout or a conflicting transaction), not a plain 500."""
    return JSONResponse({"detail": "the database is unavailable or busy; try again shortly"},
                        status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def add_operations_routes(app: FastAPI, checks: dict[str, ReadinessCheck]) -> None:
    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        for name, check in checks.items():
            try:
                check()
            except Exception as error:
                DEPENDENCY_UP.labels(name).set(0)
                return JSONResponse(
                    {"status": "unavailable", "dependency": name, "detail": str(error)},
                    status_code=503,
                )
            DEPENDENCY_UP.labels(name).set(1)
        return JSONResponse({"status": "ready", "checked": list(checks)})

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def database_check(engine: Engine) -> ReadinessCheck:
    def check() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    return check


def broker_check(bootstrap: str, timeout: float = 2.0) -> ReadinessCheck:
    admin = AdminClient({"bootstrap.servers": bootstrap})

    def check() -> None:
        admin.list_topics(timeout=timeout)

    return check


def smtp_check(smtp_url: str, timeout: float = 2.0) -> ReadinessCheck:
    parts = urlsplit(smtp_url)

    def check() -> None:
        with smtplib.SMTP(parts.hostname or "127.0.0.1", parts.port or 25, timeout=timeout) as smtp:
            smtp.noop()

    return check


def disposing(engine: Engine) -> Lifespan:
    """A lifespan that closes the app's database connections when it shuts down."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    return lifespan


def install_error_handlers(
    app: FastAPI, domain_error: type[Exception], status_for: Callable[[Exception], int]
) -> None:
    """Every error answers ``{"detail": "..."}``: domain errors with the status their
    service gives them, malformed requests with 422 and a readable message."""

    def on_domain_error(_request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=status_for(error))

    app.add_exception_handler(domain_error, on_domain_error)
    app.add_exception_handler(RequestValidationError, _malformed_request)


def _malformed_request(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return JSONResponse(
        {"detail": "; ".join(_problem(problem) for problem in error.errors())},
        status_code=UNPROCESSABLE,
    )


def _problem(problem: Mapping[str, Any]) -> str:
    """``title: Field required`` rather than pydantic's nested structure."""
    location = [str(part) for part in problem.get("loc", ())]
    if location and location[0] in ("body", "query", "path", "header"):
        location = location[1:]
    message = str(problem.get("msg", "invalid"))
    return f"{'.'.join(location)}: {message}" if location else message
