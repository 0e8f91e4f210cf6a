"""Friendly HTML error pages for people, JSON errors for programs.

A browser asking for a page (``Accept: text/html``, a path outside ``/api``) that meets an
unknown path, a refusal or a failure gets a small page in the dashboards' look with a way
home; API clients keep ``{"detail": "..."}``. A failure's page never shows its traceback.
"""

from __future__ import annotations

from html import escape

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from platform_kit.security_headers import PagePolicy

INTERNAL_ERROR = 500
TITLES = {
    403: ("Not allowed", "Your role may not open this page."),
    404: ("Page not found", "There is no page at this address. It may have moved, or the "
                            "link may be mistyped."),
    INTERNAL_ERROR: ("Something went wrong", "The page could not be shown. Please try again "
                                             "in a moment."),
}
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} · aTES</title>
  <link rel="icon" href="/static/ates.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/static/dashboard.css">
</head>
<body>
  <header><a class="brand" href="/">aTES</a></header>
  <main id="content">
    <section class="card narrow">
      <h1>{title}</h1>
      <p>{text}</p>
      <p class="muted">Error {status}</p>
      <a class="button" href="/">Go to the home page</a>
    </section>
  </main>
</body>
</html>
"""


def wants_page(request: Request) -> bool:
    """A person's browser asking for a page, not a program asking the API."""
    if request.url.path == "/api" or request.url.path.startswith("/api/"):
        return False
    return "text/html" in request.headers.get("accept", "")


def error_page(status: int) -> HTMLResponse:
    title, text = TITLES.get(status, TITLES[404] if status < INTERNAL_ERROR
                             else TITLES[INTERNAL_ERROR])
    body = PAGE.format(title=escape(title), text=escape(text), status=status)
    return HTMLResponse(body, status_code=status)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    if error.status_code in TITLES and wants_page(request):
        return error_page(error.status_code)
    return await http_exception_handler(request, error)


def _failure(request: Request, _error: Exception) -> Response:
    """Answered outside the other middleware, hence its own security headers."""
    headers = {**PagePolicy().headers_for(request.url.path), "cache-control": "no-store"}
    if wants_page(request):
        response = error_page(INTERNAL_ERROR)
        response.headers.update(headers)
        return response
    return JSONResponse({"detail": "Internal Server Error: the request could not be completed"},
                        status_code=INTERNAL_ERROR, headers=headers)


def install_error_pages(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _failure)
