"""`ates dlq list` and `ates dlq redrive` from the command line."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer

from deploy.cli import main
from event_schemas import default_registry
from messaging.consumer import ConsumerRuntime
from messaging.dlq import read_dead_letters
from messaging.groups import reset_to_beginning
from messaging.relay import Relay
from messaging.tables import create_messaging_tables
from tests.messaging.conftest import (
    account_event,
    consume_until,
    effect_rows,
    effects_metadata,
    handlers_recording,
    make_runtime,
    poll_until,
    record_effect,
)


def cli_env(settings) -> dict[str, str]:
    return {
        "ATES_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ATES_TOPIC_PREFIX": settings.topic_prefix,
    }


def produce_event(settings, key: str, value: bytes | None) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    producer.produce(settings.topic("accounts-stream"), key=key.encode(), value=value)
    assert producer.flush(10) == 0


def test_dlq_list_shows_letters_and_redrive_applies_them_once_fixed(
    engine, sessions, outbox, settings
):
    event = account_event(str(uuid.uuid4()))
    with sessions() as session, session.begin():
        outbox.publish(session, event)
    while Relay(engine, settings).run_once():
        pass
    dlq = settings.dlq_topic("accounts-stream")
    consume_until(engine, settings, handlers_recording(versions=(2,)),
                  lambda: len(read_dead_letters(settings, dlq)) == 1)

    runner = CliRunner()
    listed = runner.invoke(main, ["dlq", "list", "accounts-stream"], env=cli_env(settings))
    assert listed.exit_code == 0, listed.output
    [line] = listed.output.strip().splitlines()
    letter = json.loads(line)
    assert letter["event_id"] == event.id and letter["type"] == "account.updated"
    assert "UnknownEventVersion" in letter["error"] and letter["consumer"] == "consumer"

    fixed = make_runtime(engine, settings, handlers_recording(versions=(1, 2)))
    try:
        redriven = runner.invoke(
            main, ["dlq", "redrive", "accounts-stream", "--yes", "--event-id", event.id],
            env=cli_env(settings),
        )
        assert redriven.exit_code == 0 and "redriven: 1" in redriven.output
        poll_until(fixed, lambda: len(effect_rows(engine)) == 1)
    finally:
        fixed.close()
    assert [r.event_id for r in effect_rows(engine)] == [event.id]


def test_dlq_redrive_of_an_unknown_event_id_republishes_nothing(settings):
    result = CliRunner().invoke(
        main, ["dlq", "redrive", "accounts-stream", "--yes", "--event-id", str(uuid.uuid4())],
        env=cli_env(settings),
    )
    assert result.exit_code == 0 and "redriven: 0" in result.output


def handlers_with_created(updated_versions):
    handlers = handlers_recording(versions=updated_versions)
    handlers.register("account.created", (1,), record_effect)
    return handlers


def redrive_cli(settings, *options: str) -> str:
    result = CliRunner().invoke(main, ["dlq", "redrive", "accounts-stream", "--yes", *options],
                                env=cli_env(settings))
    assert result.exit_code == 0, result.output
    return result.output


def test_redrive_reaches_only_the_named_consumer_once_per_event_and_a_second_run_does_nothing(
    engine, make_database, settings
):
    other_engine = make_database("other")
    create_messaging_tables(other_engine)
    effects_metadata.create_all(other_engine)
    account_id = str(uuid.uuid4())
    event = account_event(account_id, 1)
    produce_event(settings, account_id, event.to_json())
    dlq = settings.dlq_topic("accounts-stream")

    def letters_of(consumer: str) -> list:
        return [lt for lt in read_dead_letters(settings, dlq) if lt.consumer == consumer]

    v2_only = handlers_with_created(updated_versions=(2,))
    consume_until(engine, settings, v2_only, lambda: len(letters_of("first")) == 1, name="first")
    consume_until(other_engine, settings, v2_only, lambda: len(letters_of("second")) == 1,
                  name="second")
    group, topics = settings.topic_prefix + "first", [settings.topic("accounts-stream")]
    reset_to_beginning(settings, group, topics)  # "first" reads the event again: a second letter
    consume_until(engine, settings, v2_only, lambda: len(letters_of("first")) == 2, name="first")

    assert "redriven: 1" in redrive_cli(settings, "--consumer", "first")
    sentinel = default_registry().build("account.created", account_event(account_id, 2).data,
                                        source="test")
    produce_event(settings, account_id, sentinel.to_json())
    consume_until(other_engine, settings, v2_only,
                  lambda: sentinel.id in {r.event_id for r in effect_rows(other_engine)},
                  name="second")
    assert len(letters_of("second")) == 1  # the copy was not for "second"
    consume_until(engine, settings, handlers_with_created(updated_versions=(1, 2)),
                  lambda: len(effect_rows(engine)) == 2, name="first")
    assert sorted(r.event_id for r in effect_rows(engine)) == sorted([event.id, sentinel.id])

    assert "redriven: 0" in redrive_cli(settings, "--consumer", "first")
    assert "redriven: 1" in redrive_cli(settings, "--event-id", event.id)  # "second"'s letter
    assert "redriven: 0" in redrive_cli(settings, "--event-id", event.id)
    assert "redriven: 0" in redrive_cli(settings)


def test_dlq_list_says_so_when_there_are_no_dead_letters(settings):
    result = CliRunner().invoke(main, ["dlq", "list", "accounts-stream"], env=cli_env(settings))
    assert result.exit_code == 0 and result.output == "no dead letters\n"
    assert result.stdout == ""  # what scripts read stays one JSON object per letter


@pytest.mark.parametrize("command", ["list", "redrive"])
def test_an_unknown_topic_is_one_clear_line_and_a_failure(settings, command):
    result = CliRunner().invoke(main, ["dlq", command, "no-such-topic"], env=cli_env(settings))
    assert result.exit_code != 0
    [line] = result.output.strip().splitlines()
    assert "no-such-topic" in line and "unknown topic" in line
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_dead_letter_without_a_value_is_listed(engine, settings):
    produce_event(settings, str(uuid.uuid4()), None)
    dlq = settings.dlq_topic("accounts-stream")
    consume_until(engine, settings, handlers_recording(), lambda: read_dead_letters(settings, dlq))
    listed = CliRunner().invoke(main, ["dlq", "list", "accounts-stream"], env=cli_env(settings))
    assert listed.exit_code == 0, listed.output
    [line] = listed.output.strip().splitlines()
    assert "InvalidEnvelope" in json.loads(line)["error"]


def test_resetting_a_running_consumer_group_is_one_clear_line_and_a_failure(engine, settings):
    running = ConsumerRuntime("tasks", engine, settings, handlers_recording(),
                              topics=["accounts-stream", "accounts-lifecycle"])
    try:
        running.wait_for_assignment()
        result = CliRunner().invoke(main, ["consumers", "reset", "tasks", "--yes"],
                                    env=cli_env(settings))
    finally:
        running.close()
    assert result.exit_code != 0
    [line] = result.output.strip().splitlines()
    assert "stop" in line and settings.topic_prefix + "tasks" in line
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_dead_letter_topic_missing_on_the_broker_is_one_clear_line_and_a_failure(settings):
    env = cli_env(settings) | {"ATES_TOPIC_PREFIX": f"missing{uuid.uuid4().hex[:8]}."}
    result = CliRunner().invoke(main, ["dlq", "list", "accounts-stream"], env=env)
    assert result.exit_code != 0
    [line] = result.output.strip().splitlines()
    assert "unknown topic" in line and "accounts-stream.dlq" in line
