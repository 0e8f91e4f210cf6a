"""A worker-only process (``ates serve <svc> --role workers``): its own /metrics, JSON logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from deploy.embedded import free_port
from messaging.outbox import Outbox
from platform_kit.db import make_session_factory
from tests.helpers import engine_of, migrated_database
from tests.messaging.conftest import account_event
from tests.observability.conftest import scraped

ATES = str(Path(sys.executable).with_name("ates"))


def wait_for_metrics(url: str, process: subprocess.Popen, wanted, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the worker process exited"
        try:
            samples = scraped(httpx.get(url, timeout=2).text)
        except httpx.TransportError:
            samples = {}
        if wanted(samples):
            return samples
        time.sleep(0.2)
    raise AssertionError(f"{url} never showed the wanted samples")


def test_a_relay_process_serves_metrics_on_its_port_and_logs_json(
    settings, postgres_server, kafka_broker, tmp_path
):
    port = free_port()
    topic = settings.topic("accounts-stream")
    with migrated_database(postgres_server.url, "tasks") as url, engine_of(url) as engine:
        with make_session_factory(engine)() as session, session.begin():
            Outbox(settings).publish(session, account_event(str(uuid.uuid4())))
        env = os.environ | {
            "ATES_DATABASE_URL": postgres_server.url,
            "ATES_TASKS_DATABASE_URL": url,
            "ATES_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
            "ATES_TOPIC_PREFIX": settings.topic_prefix,
            "ATES_METRICS_PORT": str(port),
        }
        log_path = tmp_path / "worker.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [ATES, "serve", "tasks", "--role", "workers", "--only", "relay"],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )
            try:
                samples = wait_for_metrics(
                    f"http://127.0.0.1:{port}/metrics", process,
                    lambda found: found.get(("ates_outbox_unsent_events",
                                             frozenset({("outbox", engine.url.database)}))) == 0)
            finally:
                process.send_signal(signal.SIGTERM)
                assert process.wait(30) == 0

    published = frozenset({("topic", topic), ("type", "account.updated"), ("version", "1")})
    assert samples[("ates_events_published_total", published)] == 1
    lines = [json.loads(line) for line in log_path.read_text().splitlines()
             if line.startswith("{")]
    started = [line for line in lines if line["event"] == "relay started"]
    assert started and started[0]["service"] == "tasks" and started[0]["level"] == "info"
