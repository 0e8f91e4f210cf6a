"""Published development secrets are refused unless the provider is on a loopback address."""

from __future__ import annotations

import pytest

from auth.config import AuthConfig
from auth_client.settings import DEV_SECRET_KEY, PublicSecret
from auth_client.sign_in import AuthClientConfig

PUBLIC_ISSUER = "https://auth.popug.inc"
OWN_SECRETS = {
    "ATES_SECRET_KEY": "s3cr3t-of-this-installation-0123456789",
    "ATES_TASKS_CLIENT_SECRET": "tasks-secret-of-this-installation",
    "ATES_ACCOUNTING_CLIENT_SECRET": "accounting-secret-of-this-installation",
    "ATES_ANALYTICS_CLIENT_SECRET": "analytics-secret-of-this-installation",
}
DASHBOARD_URLS = {"ATES_TASKS_URL": "https://tasks.popug.inc",
                  "ATES_ACCOUNTING_URL": "https://accounting.popug.inc",
                  "ATES_ANALYTICS_URL": "https://analytics.popug.inc"}


def public(**variables: str) -> dict[str, str]:
    return {"ATES_AUTH_URL": PUBLIC_ISSUER, **DASHBOARD_URLS, **OWN_SECRETS, **variables}


@pytest.mark.parametrize("environ", [
    {k: v for k, v in public().items() if k != "ATES_SECRET_KEY"},
    public(ATES_SECRET_KEY=DEV_SECRET_KEY),
    public(ATES_SECRET_KEY="compose-local-secret-key-change-me"),
    {k: v for k, v in public().items() if k != "ATES_TASKS_CLIENT_SECRET"},
    public(ATES_AUTH_CLIENTS='[{"client_id": "tasks", "client_secret": "tasks-dev-secret"}]'),
], ids=["no key", "dev key", "compose key", "no client secret", "dev client secret"])
def test_the_provider_refuses_a_public_secret_off_loopback(environ):
    with pytest.raises(PublicSecret):
        AuthConfig.from_env(environ)


@pytest.mark.parametrize("environ", [
    {k: v for k, v in public().items() if k != "ATES_SECRET_KEY"},
    {k: v for k, v in public().items() if k != "ATES_ACCOUNTING_CLIENT_SECRET"},
], ids=["no key", "no client secret"])
def test_a_dashboard_refuses_a_public_secret_off_loopback(environ):
    with pytest.raises(PublicSecret):
        AuthClientConfig.from_env("accounting", environ=environ)


def test_secrets_of_the_installation_are_used_everywhere():
    provider = AuthConfig.from_env(public())
    dashboard = AuthClientConfig.from_env("tasks", environ=public())

    tasks = next(c for c in provider.clients if c.client_id == "tasks")
    assert tasks.client_secret == dashboard.client_secret == OWN_SECRETS[
        "ATES_TASKS_CLIENT_SECRET"]
    assert provider.secret_key == dashboard.secret_key == OWN_SECRETS["ATES_SECRET_KEY"]


@pytest.mark.parametrize("issuer", ["http://127.0.0.1:8000", "http://localhost:8000",
                                    "http://[::1]:8000"])
def test_development_defaults_still_work_on_loopback(issuer):
    config = AuthConfig.from_env({"ATES_AUTH_URL": issuer})
    dashboard = AuthClientConfig.from_env("tasks", environ={"ATES_AUTH_URL": issuer})

    assert config.secret_key == dashboard.secret_key == DEV_SECRET_KEY
