"""Wiring: the workers together on the real servers, the health endpoints, the command."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

from click.testing import CliRunner
from fastapi.testclient import TestClient

from accounting.app import create_app, workers
from deploy.cli import main
from messaging.dlq import read_all
from tests.accounting.conftest import (
    accounting_settings_for,
    count,
    new_id,
    publish,
    task_assigned_event,
)


def test_the_workers_book_an_assignment_and_publish_its_events(
    engine, settings, accounting_database_url
):
    platform = settings.with_(service_database_urls={"accounting": accounting_database_url})
    loops = workers(platform)
    assert set(loops) == {"relay", "consumer", "scheduler", "mailer"}
    stop = threading.Event()
    threads = [threading.Thread(target=loop, args=(stop,)) for loop in loops.values()]
    for thread in threads:
        thread.start()
    try:
        task, assignee = new_id(), new_id()
        publish(platform, [task_assigned_event(task, assignee)])
        _wait_for(lambda: count(engine, "outbox", "sent_at IS NOT NULL") == 2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(20)
    assert not any(thread.is_alive() for thread in threads)
    published = read_all(platform.kafka_bootstrap, platform.topic("accounting-lifecycle"))
    types = sorted(json.loads(message.value())["type"] for message in published)
    assert types == ["task.priced", "transaction.applied"]


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_health_endpoints(settings, accounting_database_url, mailbox):
    platform = accounting_settings_for(settings, accounting_database_url, mailbox.smtp_url)
    client = TestClient(create_app(platform.platform))
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {
        "status": "ready", "checked": ["database", "broker", "smtp"]}


def test_close_day_command(engine, accounting_database_url):
    runner = CliRunner()
    env = {"ATES_ACCOUNTING_DATABASE_URL": accounting_database_url}
    today = datetime.now(UTC).date().isoformat()

    ended = runner.invoke(main, ["accounting", "close-day", "--yes"], env=env)
    again = runner.invoke(main, ["accounting", "close-day", "--yes", "--date", today], env=env)
    future = runner.invoke(main, ["accounting", "close-day", "--yes", "--date", "2999-01-01"],
                           env=env)

    assert ended.exit_code == 0, ended.output
    assert "closed, 0 account(s) paid" in ended.output
    assert again.exit_code == 0 and "already closed" in again.output
    assert future.exit_code == 1 and "has not begun" in future.output


def test_close_day_command_refuses_a_date_that_is_not_iso_in_one_line(
    engine, accounting_database_url
):
    runner = CliRunner()
    env = {"ATES_ACCOUNTING_DATABASE_URL": accounting_database_url}

    for bad in ("0", "20261122", "2026-1-2", "1970-01-01"):
        result = runner.invoke(main, ["accounting", "close-day", "--date", bad], env=env)

        assert result.exit_code != 0, bad
        assert result.exception is None or isinstance(result.exception, SystemExit), bad
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert bad in result.stderr and "Traceback" not in result.output
    assert count(engine, "billing_days") == 0
