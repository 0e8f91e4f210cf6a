"""The web app's wiring: operations routes, the API documented, the pages' assets."""

from __future__ import annotations

from fastapi.testclient import TestClient

from accounting.app import create_app


def test_health_readiness_docs_and_assets(accounting_settings):
    with TestClient(create_app(accounting_settings.platform)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready", "checked": ["database"]}
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/api/me/account", "/api/accounts/{account_id}/transactions",
                "/api/billing/close-day", "/api/exports/transactions.csv"} <= set(paths)
        assert client.get("/static/accounting.css").status_code == 200
        assert client.get("/api/me/account").status_code == 401
