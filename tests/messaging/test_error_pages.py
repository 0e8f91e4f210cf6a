"""Browsers get friendly HTML error pages; API clients keep JSON errors."""

from __future__ import annotations

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from platform_kit.service_app import create_service_app

PAGE = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
SECRET = "password=hunter2 in a stack frame"


@pytest.fixture
def client() -> TestClient:
    app = create_service_app("errors", {})

    @app.get("/broken")
    @app.get("/api/broken")
    def broken() -> None:
        raise RuntimeError(SECRET)

    @app.get("/admin-only")
    @app.get("/api/admin-only")
    def admin_only() -> None:
        raise HTTPException(403, "admins only")

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(("path", "status", "title"), [
    ("/no/such/page", 404, "Page not found"),
    ("/admin-only", 403, "Not allowed"),
    ("/broken", 500, "Something went wrong"),
])
def test_browsers_get_a_page_with_a_way_home(client, path, status, title):
    page = client.get(path, headers=PAGE)

    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")
    assert f"<h1>{title}</h1>" in page.text and '<html lang="en">' in page.text
    assert '<a class="button" href="/">' in page.text
    assert "content-security-policy" in page.headers


def test_a_failure_page_shows_no_traceback(client):
    page = client.get("/broken", headers=PAGE)
    answer = client.get("/api/broken", headers=PAGE)

    for body in (page.text, answer.text):
        assert SECRET not in body and "Traceback" not in body and "RuntimeError" not in body
    assert answer.status_code == 500 and "detail" in answer.json()


@pytest.mark.parametrize(("path", "headers", "status", "detail"), [
    ("/api/no/such/thing", PAGE, 404, "Not Found"),
    ("/no/such/page", {"accept": "application/json"}, 404, "Not Found"),
    ("/api/admin-only", PAGE, 403, "admins only"),
    ("/admin-only", {}, 403, "admins only"),
])
def test_the_api_and_json_clients_keep_json_errors(client, path, headers, status, detail):
    answer = client.get(path, headers=headers)

    assert answer.status_code == status
    assert answer.json() == {"detail": detail}


def test_a_wrong_method_still_lists_the_allowed_ones(client):
    answer = client.post("/admin-only", headers=PAGE)

    assert answer.status_code == 405 and answer.headers["allow"] == "GET"
