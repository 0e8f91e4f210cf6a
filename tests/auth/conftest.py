"""One provider serves the whole auth suite; tests isolate themselves by their own accounts."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from auth.config import LoginThrottling
from deploy.embedded import free_ports
from tests.auth.support import Login, RunningProvider, dashboard_clients, running_provider

DASHBOARDS = ("tasks", "accounting")


@pytest.fixture(scope="package")
def dashboard_ports() -> dict[str, int]:
    """Ports on which the tests serve tiny dashboards (their clients must be registered)."""
    return free_ports(DASHBOARDS)


@pytest.fixture(scope="package")
def provider(postgres_server, kafka_broker, smtp_sink, dashboard_ports
             ) -> Iterator[RunningProvider]:
    # Every test signs in from 127.0.0.1; throttling by address has its own provider.
    throttling = LoginThrottling(per_address=10_000)
    with running_provider(postgres_server.url, kafka_broker.bootstrap,
                          clients=dashboard_clients(dashboard_ports),
                          throttling=throttling, smtp_url=smtp_sink.smtp_url) as running:
        yield running


@pytest.fixture(scope="package")
def admin(provider: RunningProvider) -> Login:
    return provider.create_login("admin", name="Ada Admin")


@pytest.fixture(scope="package")
def admin_token(provider: RunningProvider, admin: Login) -> str:
    return provider.token_for(admin)


@pytest.fixture
def make_login(provider: RunningProvider) -> Callable[..., Login]:
    """Create an account (role ``worker`` unless told) and return how to sign in as it."""
    return provider.create_login
