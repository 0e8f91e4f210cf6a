"""`ates dlq list` and `ates dlq redrive` from the command line."""

from __future__ import annotations

import json
import uuid

from click.testing import CliRunner

from deploy.cli import main
from messaging.dlq import read_dead_letters
from messaging.relay import Relay
from tests.messaging.conftest import (
    account_event,
    consume_until,
    effect_rows,
    handlers_recording,
    make_runtime,
    poll_until,
)


def cli_env(settings) -> dict[str, str]:
    return {
        "ATES_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ATES_TOPIC_PREFIX": settings.topic_prefix,
    }


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
            main, ["dlq", "redrive", "accounts-stream", "--event-id", event.id],
            env=cli_env(settings),
        )
        assert redriven.exit_code == 0 and "redriven: 1" in redriven.output
        poll_until(fixed, lambda: len(effect_rows(engine)) == 1)
    finally:
        fixed.close()
    assert [r.event_id for r in effect_rows(engine)] == [event.id]


def test_dlq_redrive_of_an_unknown_event_id_republishes_nothing(settings):
    result = CliRunner().invoke(
        main, ["dlq", "redrive", "accounts-stream", "--event-id", str(uuid.uuid4())],
        env=cli_env(settings),
    )
    assert result.exit_code == 0 and "redriven: 0" in result.output
