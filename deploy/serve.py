"""Run one service: its web app and/or its background workers (relay, consumers, ...).

A service plugs in through its ``ServiceSpec`` (``platform_kit.spec``), published as an
entry point of the ``ates.services`` group:

- ``create_app(settings: Settings) -> fastapi.FastAPI``
- ``workers(settings: Settings) -> dict[str, Callable[[threading.Event], None]]``: long
  running loops (outbox relay, consumers, scheduler) that return once the event is set.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Collection, Mapping
from typing import Any

import structlog
import uvicorn

from messaging.kafka import ensure_topics
from platform_kit.logs import configure_logging
from platform_kit.metrics import serve_metrics
from platform_kit.settings import Settings
from platform_kit.spec import ServiceSpec, Worker, service_names, service_spec, service_specs
from platform_kit.tracing import configure_tracing

log = structlog.get_logger("deploy.serve")

ROLES = ("all", "web", "workers")


def service_ports() -> dict[str, int]:
    """The usual port of every service's web app, in start-up order."""
    return {spec.name: spec.port for spec in service_specs()}


def available_services() -> list[str]:
    """The installed services, in start-up order (auth first)."""
    return service_names()


def service_module(service: str) -> ServiceSpec:
    """What runs ``service``: its spec, with its ``create_app`` and ``workers``."""
    return service_spec(service)


def worker_names(service: str, settings: Settings) -> list[str]:
    return service_spec(service).worker_names(settings)


def start_workers(
    service: str,
    settings: Settings,
    stop: threading.Event,
    only: Collection[str] | None = None,
) -> list[threading.Thread]:
    """Start the service's workers (or ``only`` those named) in threads."""
    workers: Mapping[str, Worker] = service_spec(service).workers(settings)
    if only:
        workers = {name: loop for name, loop in workers.items() if name in only}
    threads = []
    for name, loop in workers.items():
        thread = threading.Thread(
            target=_guarded(service, name, loop, stop), name=name, daemon=True
        )
        thread.start()
        threads.append(thread)
    return threads


def _guarded(service: str, name: str, loop: Worker,
             stop: threading.Event) -> Callable[[], None]:
    def run() -> None:
        while not stop.is_set():
            try:
                loop(stop)
            except Exception:
                log.exception("worker crashed; restarting", service=service, worker=name)
                stop.wait(1.0)
            else:
                return

    return run


def serve(
    service: str,
    settings: Settings,
    host: str,
    port: int,
    role: str = "all",
    only: Collection[str] | None = None,
) -> None:
    """Run the web app and/or the workers; ``only`` picks some workers (e.g. the relay
    alone, so it can be scaled or restarted on its own)."""
    configure_logging(service=service)
    configure_tracing(service)
    if role == "workers" and settings.metrics_port:
        serve_metrics(settings.metrics_port)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    if role in ("all", "workers"):
        ensure_topics(settings)
        threads = start_workers(service, settings, stop, only)
    try:
        if role in ("all", "web"):
            app = service_spec(service).create_app(settings)
            web_server(app, host, port).run()
        else:
            _wait_for_signal()
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)


def web_server(app: Any, host: str, port: int,
               environ: Mapping[str, str] | None = None) -> uvicorn.Server:
    """The HTTP server of a service's web app.

    ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only from the proxies in
    ``ATES_TRUSTED_PROXIES`` (addresses or networks, comma-separated). Otherwise the client
    is the TCP peer: any caller could name any address and escape per-address throttling.
    """
    proxies = trusted_proxies(environ)
    return uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                       proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None)
    )


def trusted_proxies(environ: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    return [entry.strip() for entry in env.get("ATES_TRUSTED_PROXIES", "").split(",")
            if entry.strip()]


def _wait_for_signal() -> None:
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
