"""`ates outbox replay`: events a broker lost are published again from the outbox, and
consumers apply each of them once."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from deploy.cli import main
from messaging.relay import Relay
from messaging.replay import parse_since
from messaging.tables import create_messaging_tables
from messaging.tables import outbox as outbox_table
from tests.messaging.conftest import (
    account_event,
    consume_until,
    effect_rows,
    effects_metadata,
    handlers_recording,
    read_topic,
)


@pytest.fixture
def tasks_engine(make_database):
    engine = make_database("tasks")
    create_messaging_tables(engine)
    effects_metadata.create_all(engine)
    return engine


@pytest.fixture
def cli_env(postgres_server, settings, test_id, tmp_path):
    return {
        "ATES_VAR_DIR": str(tmp_path),  # no stack file: the variables below are the stack
        "ATES_DATABASE_URL": postgres_server.url,
        "ATES_DATABASE_PREFIX": f"t{test_id}_",
        "ATES_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ATES_TOPIC_PREFIX": settings.topic_prefix,
    }


def published(engine, outbox, settings, count: int) -> list:
    events = [account_event(str(uuid.uuid4())) for _ in range(count)]
    with engine.begin() as conn:
        with Session(conn) as session:
            outbox.publish_many(session, events)
    relay = Relay(engine, settings)
    try:
        while relay.run_once():
            pass
    finally:
        relay.close()
    return events


def sent_long_ago(engine, events) -> None:
    with engine.begin() as conn:
        conn.execute(update(outbox_table)
                     .where(outbox_table.c.event_id.in_([e.id for e in events]))
                     .values(sent_at=func.now() - func.make_interval(0, 0, 0, 0, 3)))


def unsent_ids(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(outbox_table.c.event_id)
                                .where(outbox_table.c.sent_at.is_(None))).scalars())


def test_replay_publishes_again_the_events_sent_since_and_consumers_apply_them_once(
    tasks_engine, outbox, settings, cli_env
):
    events = published(tasks_engine, outbox, settings, 6)
    older, recent = events[:2], events[2:]
    sent_long_ago(tasks_engine, older)  # sent three hours ago
    consume_until(tasks_engine, settings, handlers_recording(),
                  lambda: len(effect_rows(tasks_engine)) == len(events))

    result = CliRunner().invoke(
        main, ["outbox", "replay", "--since", "1h", "--service", "tasks", "--yes"],
        env=cli_env)

    assert result.exit_code == 0, result.output
    topic = settings.topic("accounts-stream")
    assert result.output.strip() == f"tasks: {len(recent)} event(s) to publish again " \
                                    f"({topic} {len(recent)})"
    assert unsent_ids(tasks_engine) == {e.id for e in recent}
    published(tasks_engine, outbox, settings, 0)  # the relay publishes them again
    on_broker = Counter(m.key() for m in read_topic(settings, topic))
    assert sorted(on_broker.values()) == [1] * len(older) + [2] * len(recent)
    consume_until(tasks_engine, settings, handlers_recording(),
                  lambda: not unsent_ids(tasks_engine))
    assert Counter(r.event_id for r in effect_rows(tasks_engine)) == \
        Counter(e.id for e in events), "each event applied once"


@pytest.mark.parametrize("arguments, message", [
    (["--since", "yesterday"], "Error: not a time: 'yesterday'"),
    (["--since", "1h", "--service", "billing"], "Error: unknown service 'billing'"),
    (["--since", "1h", "--topic", "tasks"], "Error: unknown topic 'tasks'"),
    (["--since", "1h", "--service", "tasks"], "Error: refusing to mark the outbox events"),
])
def test_bad_input_is_one_line_and_changes_nothing(
    tasks_engine, outbox, settings, cli_env, arguments, message
):
    published(tasks_engine, outbox, settings, 2)
    yes = [] if "refusing" in message else ["--yes"]

    result = CliRunner().invoke(main, ["outbox", "replay", *arguments, *yes], env=cli_env)

    assert result.exit_code != 0
    [line] = result.output.strip().splitlines()
    assert line.startswith(message), line
    assert unsent_ids(tasks_engine) == set()


def test_since_takes_an_iso_time_in_utc_unless_zoned_or_an_age():
    from datetime import UTC, datetime

    now = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
    assert parse_since("90m", now) == datetime(2026, 12, 3, 4, 30, tzinfo=UTC)
    assert parse_since("2026-12-03T05:00", now) == datetime(2026, 12, 3, 5, 0, tzinfo=UTC)
    assert parse_since("2026-12-03T07:00+01:00", now) == datetime(2026, 12, 3, 6, 0,
                                                                  tzinfo=UTC)
