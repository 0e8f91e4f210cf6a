"""Every service's ``/readyz`` checks each server it depends on and names the one down."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from accounting.app import create_app as accounting_app
from analytics.app import create_app as analytics_app
from auth.app import create_app as auth_app
from deploy.embedded import free_port
from tasks.app import create_app as tasks_app

SERVICES = {
    "auth": (lambda settings: auth_app(settings), ["database", "broker"]),
    "tasks": (lambda settings: tasks_app(settings, environ={}), ["database", "broker"]),
    "accounting": (lambda settings: accounting_app(settings, environ={}),
                   ["database", "broker", "smtp"]),
    "analytics": (lambda settings: analytics_app(settings), ["database", "broker"]),
}


def dependency_up(dependency: str) -> float | None:
    return REGISTRY.get_sample_value("ates_dependency_up", {"dependency": dependency})


def readiness(app) -> tuple[int, dict]:
    response = TestClient(app).get("/readyz")
    return response.status_code, response.json()


@pytest.fixture
def healthy(settings, make_database, mailbox):
    """Settings whose servers all answer (any database does for the check)."""
    url = make_database("ready").url.render_as_string(hide_password=False)
    return settings.with_(smtp_url=mailbox.smtp_url,
                          service_database_urls={name: url for name in SERVICES})


@pytest.mark.parametrize("service", list(SERVICES))
def test_ready_when_every_dependency_answers_and_not_when_one_is_down(service, healthy):
    create, dependencies = SERVICES[service]
    nowhere = f"127.0.0.1:{free_port()}"

    assert readiness(create(healthy)) == (200, {"status": "ready", "checked": dependencies})
    down = {
        "database": healthy.with_(service_database_urls={
            service: f"postgresql+psycopg://postgres@{nowhere}/ready"}),
        "broker": healthy.with_(kafka_bootstrap=nowhere),
        "smtp": healthy.with_(smtp_url=f"smtp://{nowhere}"),
    }
    assert all(dependency_up(name) == 1 for name in dependencies)
    for dependency in dependencies:
        status, body = readiness(create(down[dependency]))
        assert status == 503, (dependency, body)
        assert dependency_up(dependency) == 0  # what the DependencyUnreachable alert reads
        assert (body["status"], body["dependency"]) == ("unavailable", dependency)
        assert body["detail"]
