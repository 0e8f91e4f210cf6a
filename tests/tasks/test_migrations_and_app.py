"""The schema as migrated, and the service's wiring for ``deploy.serve``."""

from __future__ import annotations

import json
import threading
import time

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient

from deploy.embedded import free_port
from messaging.dlq import read_all
from messaging.tables import messaging_metadata
from platform_kit.migrations import upgrade
from platform_kit.settings import Settings
from tasks import app
from tasks.models import Base
from tasks.settings import TasksSettings
from tests.tasks.conftest import actor, commands


def test_a_fresh_database_migrates_to_exactly_the_models(make_database):
    engine = make_database("fresh_tasks")
    upgrade("tasks.migrations", engine.url.render_as_string(hide_password=False))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, [Base.metadata, messaging_metadata]) == []


def test_health_and_readiness(settings, tasks_database_url):
    platform = settings.with_(service_database_urls={"tasks": tasks_database_url})
    with TestClient(app.create_app(platform)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert (ready.status_code, ready.json()["status"]) == (200, "ready")
        assert set(ready.json()["checked"]) == {"database", "broker"}


def test_not_ready_without_its_database(settings):
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x"
    platform = settings.with_(service_database_urls={"tasks": unreachable})
    with TestClient(app.create_app(platform)) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert (ready.json()["status"], ready.json()["dependency"]) == ("unavailable", "database")


def test_the_relay_worker_publishes_what_the_commands_wrote(
    sessions, settings, tasks_database_url, team
):
    platform = settings.with_(service_database_urls={"tasks": tasks_database_url})
    workers = app.workers(platform)
    assert set(workers) == {"relay", "consumer"}
    creator = actor(team.workers[0])
    task = commands(sessions, TasksSettings(platform)).create_task(creator, "Feed the parrots")

    stop = threading.Event()
    relay = threading.Thread(target=workers["relay"], args=(stop,))
    relay.start()
    try:
        published = _wait_for_messages(platform, platform.topic("tasks-lifecycle"), 2)
    finally:
        stop.set()
        relay.join(timeout=30)

    assert [m.key().decode() for m in published] == [str(task.id)] * 2
    types = [json.loads(m.value())["type"] for m in published]
    assert types == ["task.added", "task.assigned"]
    [created] = read_all(platform.kafka_bootstrap, platform.topic("tasks-stream"), 5.0)
    assert json.loads(created.value())["type"] == "task.created"


def _wait_for_messages(settings: Settings, topic: str, count: int, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = read_all(settings.kafka_bootstrap, topic, 2.0)
        if len(messages) >= count:
            return messages
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} messages reached {topic}")
