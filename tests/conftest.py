"""Real servers for the whole test run: embedded PostgreSQL, Tansu broker, SMTP sink.

``ATES_TEST_BROKER=kafka`` runs the tests on a 3-node Apache Kafka cluster instead of
Tansu (``deploy/kafka.py``: replication factor 3, ``min.insync.replicas`` 2; the
end-to-end platform then starts one too); ``make test-kafka`` does.

They start once per run; every test gets its own database(s) and its own topic prefix,
so tests never see each other's data or events.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from deploy.embedded import EmbeddedPostgres, TansuBroker, free_port
from deploy.kafka import ApacheKafka
from deploy.mailsink import MailSink
from messaging.kafka import ensure_topics
from platform_kit.db import drop_database, ensure_database, make_engine
from platform_kit.settings import Settings, with_database


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory) -> EmbeddedPostgres:
    external = os.environ.get("ATES_TEST_DATABASE_URL")
    if external:
        yield _External(external)
        return
    # Not under pytest's tmp dirs: those are private to root, and the server runs as an
    # unprivileged user when the suite runs as root.
    base = Path(tempfile.mkdtemp(prefix="ates-test-pg-"))
    base.chmod(0o755)
    server = EmbeddedPostgres(base / "data", port=free_port(), fast_unsafe=True)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


class _External:
    def __init__(self, url: str):
        self.url = url


REPO = Path(__file__).resolve().parent.parent


def broker_under_test() -> str:
    """The broker the tests run on: ``tansu`` (default) or ``kafka`` (ATES_TEST_BROKER)."""
    return os.environ.get("ATES_TEST_BROKER", "tansu").strip().lower() or "tansu"


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory) -> TansuBroker | ApacheKafka:
    if broker_under_test() == "kafka":
        broker = ApacheKafka(Path(tmp_path_factory.mktemp("kafka")), nodes=3,
                             cache_dir=REPO / "var")
    else:
        log = Path(tmp_path_factory.mktemp("tansu")) / "tansu.log"
        broker = TansuBroker(port=free_port(), log_path=log)
    broker.start()
    yield broker
    # Destroy clients nothing refers to any more before their broker goes away, so they
    # do not report a refused connection after the run's summary.
    gc.collect()
    broker.stop()


@pytest.fixture(scope="session")
def smtp_sink() -> MailSink:
    """A real SMTP server keeping every mail; tests clear it before use."""
    with MailSink(smtp_port=0, http_port=0) as sink:
        yield sink


@pytest.fixture
def mailbox(smtp_sink) -> MailSink:
    smtp_sink.clear()
    if smtp_sink.paused:
        smtp_sink.resume()
    return smtp_sink


@pytest.fixture
def test_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def settings(postgres_server, kafka_broker, test_id) -> Settings:
    """Settings isolated to this test: own database prefix and own topic prefix."""
    settings = Settings(
        database_url=postgres_server.url,
        kafka_bootstrap=kafka_broker.bootstrap,
        topic_prefix=f"t{test_id}.",
        topic_partitions=3,
        database_prefix=f"t{test_id}_",
        kafka_session_timeout_ms=2000,
    )
    ensure_topics(settings)
    return settings


@pytest.fixture
def make_database(postgres_server, test_id):
    """Create a fresh database for this test; dropped afterwards."""
    created: list[str] = []
    engines = []

    def factory(name: str = "db"):
        url = with_database(postgres_server.url, f"t{test_id}_{name}")
        ensure_database(url)
        created.append(url)
        engine = make_engine(url)
        engines.append(engine)
        return engine

    yield factory
    for engine in engines:
        engine.dispose()
    for url in created:
        drop_database(url)


CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium():
    """Headless Debian Chromium driven by Playwright (one browser for the whole run)."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_context(chromium):
    """A fresh browser profile (own cookies) for one test; phone-sized when asked."""
    contexts = []

    def factory(**options):
        context = chromium.new_context(**options)
        contexts.append(context)
        return context

    yield factory
    for context in contexts:
        context.close()
