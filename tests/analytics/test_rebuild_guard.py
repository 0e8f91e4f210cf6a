"""`ates analytics rebuild` on a memory-only broker that forgot: refused unless --force."""

from __future__ import annotations

import uuid

import pytest
from click.testing import CliRunner

from deploy.cli import main
from tests.analytics.conftest import (
    RunningProjector,
    Topics,
    settings_for,
    snapshot,
    wait_handled,
)
from tests.analytics.test_rebuild import three_days_of_activity


@pytest.fixture
def projected(engine, sessions, postgres_server, kafka_broker, analytics_database_url):
    """A dashboard built from events on the broker; returns (settings, its snapshot)."""
    settings = settings_for(postgres_server.url, kafka_broker.bootstrap, analytics_database_url)
    events = three_days_of_activity(seed=7)
    Topics(settings).publish(*events)
    with RunningProjector(engine, settings):
        wait_handled(engine, events)
    return settings, snapshot(sessions), len(events)


def rebuild(settings, analytics_database_url, postgres_server, *options, **env):
    environment = {
        "ATES_DATABASE_URL": postgres_server.url,
        "ATES_ANALYTICS_DATABASE_URL": analytics_database_url,
        "ATES_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ATES_TOPIC_PREFIX": settings.topic_prefix,
        "ATES_KAFKA_SESSION_TIMEOUT_MS": "2000",
    } | env
    return CliRunner().invoke(main, ["analytics", "rebuild", "--yes", "--timeout", "120",
                                     *options], env=environment)


def forgotten(settings, postgres_server, kafka_broker, analytics_database_url):
    """The same platform after the broker restarted: its topics are there, empty."""
    return settings_for(postgres_server.url, kafka_broker.bootstrap, analytics_database_url,
                        topic_prefix=f"tr{uuid.uuid4().hex[:10]}.")


def test_topics_that_still_hold_every_event_are_rebuilt_from(
    projected, sessions, postgres_server, analytics_database_url
):
    settings, before, count = projected
    result = rebuild(settings, analytics_database_url, postgres_server)
    assert result.exit_code == 0, result.output
    assert f"rebuilt from {count} message(s)" in result.output
    assert snapshot(sessions) == before


def test_topics_that_forgot_are_refused_in_one_line_and_the_dashboard_stays(
    projected, sessions, postgres_server, kafka_broker, analytics_database_url
):
    settings, before, count = projected
    empty = forgotten(settings, postgres_server, kafka_broker, analytics_database_url)

    # Told it runs on the memory-only broker, whichever broker the suite runs on.
    result = rebuild(empty, analytics_database_url, postgres_server, ATES_BROKER="tansu")

    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: refusing to rebuild: the topics on ") and \
        f"hold 0 message(s) but the dashboard was built from {count} event(s)" in line
    assert "--force" in line
    assert snapshot(sessions) == before


@pytest.mark.parametrize("how", [["--force"], {"ATES_BROKER": "kafka"}],
                         ids=["forced", "on Apache Kafka"])
def test_forced_or_on_a_broker_that_keeps_its_log_the_rebuild_runs(
    projected, sessions, postgres_server, kafka_broker, analytics_database_url, how
):
    settings, before, _ = projected
    empty = forgotten(settings, postgres_server, kafka_broker, analytics_database_url)
    options, env = (how, {}) if isinstance(how, list) else ([], how)

    result = rebuild(empty, analytics_database_url, postgres_server, *options, **env)

    assert result.exit_code == 0, result.output
    assert "rebuilt from 0 message(s)" in result.output
    assert snapshot(sessions) != before
