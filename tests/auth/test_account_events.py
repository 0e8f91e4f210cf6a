"""Every account change reaches Kafka, through the outbox and the relay, as the schemas say."""

from __future__ import annotations

import httpx
import pytest

from event_schemas import default_registry
from messaging.dlq import read_all
from messaging.relay import Relay
from tests.auth.support import RunningProvider, bearer


def relay_all(provider: RunningProvider) -> None:
    relay = Relay(provider.engine, provider.settings)
    try:
        while relay.run_once():
            pass
    finally:
        relay.close()


def events_of(provider: RunningProvider, logical_topic: str, account_id: str) -> list:
    """Events about one account on a topic, parsed (and so validated) by the registry."""
    messages = read_all(provider.settings.kafka_bootstrap, provider.settings.topic(logical_topic))
    mine = [m for m in messages if m.key().decode() == account_id]
    return [default_registry().parse(m.value()) for m in mine]


def summary(events: list) -> list[tuple]:
    return [(e.type, e.dataversion, e.source, e.data) for e in events]


@pytest.fixture
def admin_api(provider, admin_token):
    def call(method: str, path: str, **kwargs) -> httpx.Response:
        response = httpx.request(method, f"{provider.url}/api{path}",
                                 headers=bearer(admin_token), **kwargs)
        assert response.status_code < 300, response.text
        return response

    return call


def state(account_id: str, version: int, **changes) -> dict:
    return {"account_id": account_id, "email": changes.pop("email"), "full_name": "Kesha",
            "role": "worker", "active": True, "version": version} | changes


def test_each_account_change_produces_exactly_its_events(provider, admin_api):
    email = "kesha-events@popug.test"
    created = admin_api("POST", "/accounts", json={
        "email": email, "full_name": "Kesha", "role": "worker", "password": "long enough"})
    account_id = created.json()["id"]
    path = f"/accounts/{account_id}"
    admin_api("PATCH", path, json={"full_name": "Kesha Popugaev"})
    admin_api("PATCH", path, json={"role": "accountant"})
    admin_api("PATCH", path, json={"password": "a new long password"})  # not replicated
    admin_api("PATCH", path, json={"role": "accountant"})  # no change: no event
    admin_api("PATCH", path, json={"active": False})
    admin_api("DELETE", path)

    relay_all(provider)

    name = {"full_name": "Kesha Popugaev"}
    assert summary(events_of(provider, "accounts-stream", account_id)) == [
        ("account.created", 1, "auth", state(account_id, 1, email=email)),
        ("account.updated", 1, "auth", state(account_id, 2, email=email, **name)),
        ("account.updated", 1, "auth", state(account_id, 3, email=email, role="accountant",
                                             **name)),
        ("account.updated", 1, "auth", state(account_id, 4, email=email, role="accountant",
                                             active=False, **name)),
        ("account.deleted", 1, "auth", {"account_id": account_id, "version": 5}),
    ]
    assert summary(events_of(provider, "accounts-lifecycle", account_id)) == [
        ("account.role_changed", 1, "auth", {"account_id": account_id, "old_role": "worker",
                                             "new_role": "accountant", "version": 3}),
    ]


def test_refused_changes_produce_no_events(provider, admin_token, make_login):
    account_id = make_login().id
    refused = httpx.patch(f"{provider.url}/api/accounts/{account_id}",
                          json={"role": "emperor"}, headers=bearer(admin_token))
    assert refused.status_code == 422

    relay_all(provider)

    assert [e.type for e in events_of(provider, "accounts-stream", account_id)] == [
        "account.created"]
    assert events_of(provider, "accounts-lifecycle", account_id) == []
