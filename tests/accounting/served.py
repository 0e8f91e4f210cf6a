"""Fixtures serving the accounting app beside a real auth provider, once for the package.

The package conftest imports them, so every test module of the package can use them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from accounting.app import create_app
from accounting.ledger_sql import Books
from auth.config import LoginThrottling
from deploy.embedded import free_port
from tests.accounting.support import OTHER_DASHBOARDS
from tests.auth.support import People, RunningProvider, dashboard_clients, running_provider
from tests.helpers import serve_app, settings_on


@pytest.fixture(scope="package")
def accounting_port() -> int:
    return free_port()


@pytest.fixture(scope="package")
def auth_provider(postgres_server, kafka_broker, accounting_port) -> Iterator[RunningProvider]:
    # Every sign-in comes from 127.0.0.1; throttling by address would get in the way.
    with running_provider(postgres_server.url, kafka_broker.bootstrap,
                          clients=dashboard_clients({"accounting": accounting_port}),
                          throttling=LoginThrottling(per_address=10_000)) as provider:
        yield provider


@pytest.fixture(scope="package")
def people(auth_provider) -> People:
    return People.create(auth_provider)


@pytest.fixture(scope="package")
def accounting_url(auth_provider, postgres_server, kafka_broker, accounting_database_url,
                   accounting_port) -> Iterator[str]:
    platform = settings_on(postgres_server, kafka_broker, accounting=accounting_database_url)
    app = create_app(platform, auth_provider.dashboard_config("accounting", accounting_port),
                     OTHER_DASHBOARDS)
    with serve_app(app, port=accounting_port) as url:
        yield url


@pytest.fixture
def live_books(accounting_settings) -> Books:
    """Books on the real clock, as the served app's: their days agree."""
    return Books.create(accounting_settings)
