"""``ates token``, ``ates auth ...`` and the demo accounts, against a running provider."""

from __future__ import annotations

import json

import httpx
import pytest
from click.testing import CliRunner

from auth.seed import ADMIN_EMAIL, DEMO_ACCOUNTS, seed_demo_accounts
from auth.service import AccountService
from deploy.cli import main
from messaging.outbox import Outbox
from platform_kit.db import drop_database, make_engine, make_session_factory
from tests.auth.support import Login, RunningProvider, bearer, isolated_settings


def provider_env(provider: RunningProvider) -> dict[str, str]:
    """The environment of an operator working on this provider's database."""
    return {"ATES_DATABASE_URL": provider.settings.database_url,
            "ATES_DATABASE_PREFIX": provider.settings.database_prefix,
            "ATES_AUTH_URL": provider.url}


def test_ates_token_prints_an_access_token(provider, make_login):
    login = make_login("manager")

    result = CliRunner().invoke(main, ["token", "--email", login.email, "--password",
                                       login.password, "--auth-url", provider.url])

    assert result.exit_code == 0, result.output
    user = provider.verifier().current_user(result.output.strip())
    assert (user.id, user.role) == (login.id, "manager")


def test_ates_token_reads_the_provider_from_the_environment(provider, make_login):
    login = make_login()

    result = CliRunner().invoke(main, ["token", "--email", login.email, "--json"],
                                input=login.password + "\n", env=provider_env(provider))

    tokens = json.loads(result.output[result.output.index("{"):])
    assert {"access_token", "refresh_token", "id_token"} <= set(tokens)


def test_ates_token_with_a_wrong_password_fails_clearly(provider, make_login):
    login = make_login()

    result = CliRunner().invoke(main, ["token", "--email", login.email, "--password",
                                       "not the password", "--auth-url", provider.url])

    assert result.exit_code == 1 and "invalid email or password" in result.output


def test_ates_auth_rotate_key_publishes_a_new_signing_key(provider):
    before = {k["kid"] for k in httpx.get(f"{provider.url}/oauth/jwks").json()["keys"]}

    result = CliRunner().invoke(main, ["auth", "rotate-key"], env=provider_env(provider))

    assert result.exit_code == 0, result.output
    new_kid = result.output.split()[-1]
    after = {k["kid"] for k in httpx.get(f"{provider.url}/oauth/jwks").json()["keys"]}
    assert after == before | {new_kid}


@pytest.fixture(scope="module")
def seeded(provider: RunningProvider) -> list[dict]:
    return seed_demo_accounts(provider.settings, "admin-demo-password", provider.config)


def test_seeding_creates_the_demo_accounts_with_their_logins(provider, seeded):
    assert [(s["email"], s["role"]) for s in seeded] == [(e, r) for e, _, r in DEMO_ACCOUNTS]
    assert [s["role"] for s in seeded].count("worker") == 5
    assert all(s["password"] for s in seeded)
    admin = next(s for s in seeded if s["email"] == ADMIN_EMAIL)
    assert admin["password"] == "admin-demo-password"

    token = provider.token_for(Login(ADMIN_EMAIL, admin["password"], "", "admin"))
    me = httpx.get(f"{provider.url}/api/me", headers=bearer(token)).json()
    assert me["role"] == "admin"


def test_seeding_again_creates_nothing_and_reveals_no_password(provider, seeded):
    again = seed_demo_accounts(provider.settings, "another password", provider.config)

    assert [s["email"] for s in again] == [s["email"] for s in seeded]
    assert all(s["password"] is None for s in again)


def test_seeding_generates_an_admin_password_when_none_is_given(provider, postgres_server):
    settings = isolated_settings(postgres_server.url, provider.settings.kafka_bootstrap)
    try:
        password = seed_demo_accounts(settings, None, provider.config)[0]["password"]
        engine = make_engine(settings.database_for("auth"), pool_size=1)
        accounts = AccountService(make_session_factory(engine), Outbox(settings), provider.config)
        assert len(password) >= 12 and accounts.authenticate(ADMIN_EMAIL, password)
        engine.dispose()
    finally:
        drop_database(settings.database_for("auth"))
