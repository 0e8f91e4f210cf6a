"""Helpers shared by the test suites: migrated databases, and ASGI apps over real HTTP."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from sqlalchemy import Engine

from deploy.embedded import free_port
from messaging.db import drop_database, make_engine
from messaging.migrations import upgrade
from messaging.settings import with_database


@contextmanager
def migrated_database(server_url: str, service: str) -> Iterator[str]:
    """A fresh database of ``service`` on the server, migrated to head; dropped afterwards."""
    url = with_database(server_url, f"t{uuid.uuid4().hex[:10]}_{service}")
    upgrade(service, url)
    try:
        yield url
    finally:
        drop_database(url)


@contextmanager
def engine_of(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def serve_app(app, port: int | None = None, host: str = "127.0.0.1",
              startup_timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a background thread; yields its base URL.

    Pass ``port`` when the app must know its own URL before it starts (pick one with
    ``deploy.embedded.free_port``).
    """
    port = port or free_port(host)
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                            lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        _wait_until_started(server, thread, startup_timeout)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread,
                        timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the app server stopped during start-up")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the app server did not start within {timeout}s")
        time.sleep(0.02)
