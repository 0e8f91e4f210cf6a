"""The operations routes every service shares."""

from __future__ import annotations

import httpx

from deploy.embedded import free_port
from platform_kit.service_app import broker_check, create_service_app, database_check, smtp_check
from tests.helpers import serve_app


def test_readyz_checks_every_dependency_and_names_the_one_down(make_database, settings, mailbox):
    engine = make_database("ops")
    nobody_listens = f"smtp://127.0.0.1:{free_port()}"
    healthy = create_service_app("ok", {
        "database": database_check(engine),
        "broker": broker_check(settings.kafka_bootstrap),
        "smtp": smtp_check(mailbox.smtp_url),
    })
    broken = create_service_app("broken", {
        "database": database_check(engine), "smtp": smtp_check(nobody_listens, timeout=0.5),
    })
    with serve_app(healthy) as ok_url, serve_app(broken) as broken_url:
        ready = httpx.get(f"{ok_url}/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checked": ["database", "broker", "smtp"]}
        assert httpx.get(f"{ok_url}/healthz").json() == {"status": "ok"}

        down = httpx.get(f"{broken_url}/readyz")
        assert down.status_code == 503 and down.json()["dependency"] == "smtp"
        assert httpx.get(f"{broken_url}/healthz").status_code == 200


def test_api_docs_are_served_without_any_cdn(make_database):
    app = create_service_app("docs", {})
    with serve_app(app) as url:
        page = httpx.get(f"{url}/docs").text
        assert "swagger" in page.lower()
        assert "cdn" not in page and "//unpkg" not in page
        assets = [part.split('"')[0] for part in page.split('src="')[1:]]
        assert assets, "the docs page loads its script from the service"
        for asset in assets:
            assert asset.startswith("/"), asset
            assert httpx.get(f"{url}{asset}").status_code == 200
        metrics = httpx.get(f"{url}/metrics")
        assert metrics.status_code == 200 and "python_info" in metrics.text
