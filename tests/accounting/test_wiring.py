"""The web app's wiring: operations routes, the API documented, the pages' assets."""

from __future__ import annotations

from fastapi.testclient import TestClient

from accounting.app import create_app
from tests.accounting.conftest import accounting_settings_for


def test_health_readiness_docs_and_assets(settings, accounting_database_url, mailbox):
    platform = accounting_settings_for(settings, accounting_database_url, mailbox.smtp_url)
    with TestClient(create_app(platform.platform)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {
            "status": "ready", "checked": ["database", "broker", "smtp"]}
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/api/me/account", "/api/accounts/{account_id}/transactions",
                "/api/billing/close-day", "/api/exports/transactions.csv"} <= set(paths)
        assert client.get("/static/accounting.css").status_code == 200
        assert client.get("/api/me/account").status_code == 401
