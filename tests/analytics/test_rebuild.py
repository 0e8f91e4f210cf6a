"""Rebuilding: empty the projection, replay every topic from the start, same projection."""

from __future__ import annotations

import random
from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import text

from analytics.stream import rebuild
from deploy.cli import main
from event_schemas import Event
from tests.analytics.conftest import (
    DAY,
    RunningProjector,
    Topics,
    at,
    completed,
    day_closed,
    inbox_size,
    new_id,
    priced,
    settings_for,
    snapshot,
    task_state,
    transaction,
    wait_handled,
)


def three_days_of_activity(seed: int) -> list[Event]:
    rng = random.Random(seed)
    popugs = [new_id() for _ in range(4)]
    balances = dict.fromkeys(popugs, 0)
    events: list[Event] = []
    for offset in range(3):
        day = DAY + timedelta(days=offset)
        for n in range(8):
            task_id, popug = new_id(), rng.choice(popugs)
            fee, reward = rng.randint(1000, 2000), rng.randint(2000, 4000)
            balances[popug] -= fee
            events += [
                task_state(task_id, f"Task {offset}-{n}", f"UBERPOP-{offset * 10 + n}",
                           dataversion=rng.choice([1, 2])),
                priced(task_id, reward, fee, day),
                transaction(popug, "fee", fee, balances[popug], day, at(day, 9, n), task_id),
            ]
            if rng.random() < 0.6:
                balances[popug] += reward
                events += [
                    completed(task_id, at(day, 15, n), popug),
                    transaction(popug, "reward", reward, balances[popug], day,
                                at(day, 15, n), task_id),
                ]
        events.append(day_closed(day))
    rng.shuffle(events)
    return events


def test_rebuild_next_to_a_running_projector_ends_with_the_same_projection(
    engine, sessions, postgres_server, kafka_broker, analytics_database_url
):
    settings = settings_for(postgres_server.url, kafka_broker.bootstrap, analytics_database_url)
    topics = Topics(settings)
    events = three_days_of_activity(seed=3)
    topics.publish(*events, *events[:10])
    topics.send("tasks-lifecycle", new_id(), b"not an event")
    topics.flush()
    with RunningProjector(engine, settings):
        wait_handled(engine, events)
        before = snapshot(sessions)
        replayed = rebuild(engine, settings, timeout=120)
        assert snapshot(sessions) == before
        late = [priced(new_id(), 2222)]
        topics.publish(*late)
        wait_handled(engine, late)  # the live projector carries on

    assert replayed == len(events) + 11
    assert inbox_size(engine) == len(events) + 1
    assert sum(len(rows) for rows in before.values()) > len(events) // 3


def test_ates_analytics_rebuild_repairs_a_damaged_projection(
    engine, sessions, postgres_server, kafka_broker, analytics_database_url
):
    settings = settings_for(postgres_server.url, kafka_broker.bootstrap, analytics_database_url)
    events = three_days_of_activity(seed=4)
    Topics(settings).publish(*events)
    with RunningProjector(engine, settings):
        wait_handled(engine, events)
    before = snapshot(sessions)
    with engine.begin() as connection:
        connection.execute(text("UPDATE daily_earnings SET fees = 0"))
        connection.execute(text("DELETE FROM tasks WHERE reward > 3000"))

    env = {
        "ATES_DATABASE_URL": postgres_server.url,
        "ATES_ANALYTICS_DATABASE_URL": analytics_database_url,
        "ATES_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "ATES_TOPIC_PREFIX": settings.topic_prefix,
        "ATES_KAFKA_SESSION_TIMEOUT_MS": "2000",
    }
    result = CliRunner().invoke(main, ["analytics", "rebuild", "--yes", "--timeout", "120"],
                                env=env)

    assert result.exit_code == 0, result.output
    assert f"rebuilt from {len(events)} message(s)" in result.output
    assert snapshot(sessions) == before
