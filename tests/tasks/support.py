"""The tasks service served over HTTP beside a real auth provider, and the people using it.

One provider and one tasks app serve the whole package; every test starts from an empty
tasks database (the ``engine`` fixture) and puts into the accounts replica exactly the
people it wants to be there, so it decides who is eligible for tasks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy.orm import Session, sessionmaker

from auth.config import LoginThrottling
from platform_kit.settings import Settings
from tasks import consumers
from tasks.app import create_app
from tests.auth.support import (
    Person,
    RunningProvider,
    dashboard_clients,
    running_provider,
)
from tests.helpers import serve_app

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OTHER_DASHBOARDS = {
    "ATES_ACCOUNTING_URL": "http://127.0.0.1:8002",
    "ATES_ANALYTICS_URL": "http://127.0.0.1:8003",
}
TASK_FIELDS = {
    "id", "title", "jira_id", "description", "status", "assignee_id", "created_at",
    "completed_at",
}


def feed_replica(sessions: sessionmaker[Session], *people: Person) -> None:
    """Tell the tasks service about these accounts, as auth's ``account.created`` would."""
    with sessions() as session, session.begin():
        for person in people:
            consumers.apply_account_state(
                session,
                uuid.UUID(person.id),
                email=person.login.email,
                full_name=person.name,
                role=person.login.role,
                active=True,
                version=1,
            )


@contextmanager
def running_provider_for_board(postgres_url: str, kafka_bootstrap: str,
                               board_port: int) -> Iterator[RunningProvider]:
    # Every sign-in comes from 127.0.0.1; throttling by address would get in the way.
    with running_provider(postgres_url, kafka_bootstrap,
                          clients=dashboard_clients({"tasks": board_port}),
                          throttling=LoginThrottling(per_address=10_000)) as provider:
        yield provider


@contextmanager
def running_tasks_app(provider: RunningProvider, platform: Settings,
                      port: int) -> Iterator[str]:
    app = create_app(platform, provider.dashboard_config("tasks", port), OTHER_DASHBOARDS)
    with serve_app(app, port=port) as url:
        yield url


def create_via_api(base_url: str, person: Person, title: str, **fields) -> dict:
    response = httpx.post(f"{base_url}/api/tasks", json={"title": title, **fields},
                          headers=person.headers)
    assert response.status_code == 201, response.text
    return response.json()
