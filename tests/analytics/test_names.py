"""Names instead of ids: analytics keeps a replica of auth's accounts from
``account.created`` and ``account.updated`` on the accounts topic (it never asks auth),
takes only the newest state of each account, and rebuilds it with the rest of the
projection."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from analytics import queries
from analytics.stream import rebuild
from tests.analytics import test_dashboard as served
from tests.analytics.conftest import (
    RunningProjector,
    Topics,
    new_id,
    poll_until,
    settings_for,
    snapshot,
    transaction,
    wait_handled,
)
from tests.analytics.test_dashboard import account_state
from tests.auth.support import bearer

# The served app and its people, as the dashboard's own tests have them.
dashboard_port, provider, logins, tokens = (served.dashboard_port, served.provider,
                                            served.logins, served.tokens)
dashboard = served.dashboard


def negative_names(sessions) -> list[str | None]:
    with sessions() as session:
        return [b.name for b in queries.negative_balances(session).accounts]


def summary_accounts(dashboard: str, token: str) -> list[dict]:
    response = httpx.get(f"{dashboard}/api/analytics/summary", headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()["negative_balances"]["accounts"]


def test_a_renamed_account_shows_its_new_name_once_its_update_is_read_from_the_topic(
    engine, sessions, postgres_server, kafka_broker, analytics_database_url, dashboard, tokens
):
    settings = settings_for(postgres_server.url, kafka_broker.bootstrap, analytics_database_url)
    topics = Topics(settings)
    alice = new_id()
    created = [account_state(alice, "Alice Popug"),
               transaction(alice, "fee", 1500, -1500)]
    renamed = [account_state(alice, "Alice Parrot", version=2, event_type="account.updated")]

    with RunningProjector(engine, settings):
        topics.publish(*created)
        wait_handled(engine, created)
        before = summary_accounts(dashboard, tokens["admin"])
        topics.publish(*renamed)
        wait_handled(engine, renamed)
        after = summary_accounts(dashboard, tokens["admin"])

    assert before == [{"id": alice, "name": "Alice Popug", "balance": -1500}]
    assert after == [{"id": alice, "name": "Alice Parrot", "balance": -1500}]


def test_a_stale_state_arriving_late_does_not_bring_back_an_old_name(project, sessions):
    alice = new_id()
    project(account_state(alice, "Alice Parrot", version=3, event_type="account.updated"),
            transaction(alice, "fee", 1500, -1500))
    project(account_state(alice, "Alice Popug", version=1),
            account_state(alice, "Alice P.", version=2, event_type="account.updated"))

    assert negative_names(sessions) == ["Alice Parrot"]


def test_an_account_without_its_created_event_yet_has_no_name_until_it_comes(project, sessions):
    alice = new_id()
    project(transaction(alice, "fee", 1500, -1500))
    assert negative_names(sessions) == [None]

    project(account_state(alice, "Alice Popug"))
    assert negative_names(sessions) == ["Alice Popug"]


def test_a_rebuild_replays_the_accounts_topic_and_brings_the_names_back(
    engine, sessions, postgres_server, kafka_broker, analytics_database_url
):
    settings = settings_for(postgres_server.url, kafka_broker.bootstrap, analytics_database_url)
    alice, bob = new_id(), new_id()
    events = [
        account_state(alice, "Alice Popug"), transaction(alice, "fee", 1500, -1500),
        account_state(bob, "Bob Popug"), transaction(bob, "fee", 700, -700),
        account_state(bob, "Bob Parrot", version=2, event_type="account.updated"),
    ]
    Topics(settings).publish(*events)
    with RunningProjector(engine, settings):
        wait_handled(engine, events)
    before = snapshot(sessions)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM accounts"))
    assert negative_names(sessions) == [None, None]

    replayed = rebuild(engine, settings, timeout=120)

    assert replayed == len(events)
    assert poll_until(lambda: negative_names(sessions) == ["Alice Popug", "Bob Parrot"])
    assert snapshot(sessions) == before
    assert len(before["accounts"]) == 2
