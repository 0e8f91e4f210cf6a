"""Wiring: the migration matches the models, operations routes, the worker, the CLI."""

from __future__ import annotations

import threading
import time

import httpx
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import MetaData

from analytics.app import create_app, workers
from analytics.models import Base
from auth_client.sign_in import AuthClientConfig
from deploy.cli import main
from messaging.tables import messaging_metadata
from platform_kit.settings import Settings
from tests.analytics.conftest import Topics, new_id, priced, settings_for, wait_handled
from tests.helpers import serve_app


def platform_settings(postgres_server, kafka_broker, analytics_database_url, **changes):
    return Settings(database_url=postgres_server.url, kafka_bootstrap=kafka_broker.bootstrap,
                    service_database_urls={"analytics": analytics_database_url}, **changes)


def service_and_messaging_metadata() -> MetaData:
    combined = MetaData()
    for table in [*Base.metadata.tables.values(), *messaging_metadata.tables.values()]:
        table.to_metadata(combined)
    return combined


def test_the_migrations_create_exactly_the_models_and_the_inbox(analytics_engine):
    with analytics_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, service_and_messaging_metadata()) == []


def test_operations_routes_and_api_docs(postgres_server, kafka_broker, analytics_database_url):
    settings = platform_settings(postgres_server, kafka_broker, analytics_database_url)
    auth = AuthClientConfig(issuer="http://127.0.0.1:9", client_id="analytics",
                            client_secret="secret", base_url="http://127.0.0.1:8003",
                            secret_key="key")
    with serve_app(create_app(settings, auth)) as url, httpx.Client(base_url=url) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json()["status"] == "ready"
        assert client.get("/metrics").status_code == 200
        assert client.get("/docs").status_code == 200
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/api/analytics/summary", "/api/analytics/most-expensive-task",
                "/api/analytics/days"} <= set(paths)
        page = client.get("/", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/auth/login")


def test_the_stream_worker_projects_and_stops_when_told(
    engine, postgres_server, kafka_broker, analytics_database_url
):
    settings = settings_for(postgres_server.url, kafka_broker.bootstrap, analytics_database_url)
    loops = workers(settings)
    assert list(loops) == ["stream"]
    stop = threading.Event()
    thread = threading.Thread(target=loops["stream"], args=(stop,), daemon=True)
    thread.start()
    event = priced(new_id(), 3000)
    Topics(settings).publish(event)
    wait_handled(engine, [event])

    stopped_at = time.monotonic()
    stop.set()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert time.monotonic() - stopped_at < 10


def test_ates_lists_the_analytics_commands():
    result = CliRunner().invoke(main, ["analytics", "--help"])
    assert result.exit_code == 0 and "rebuild" in result.output
