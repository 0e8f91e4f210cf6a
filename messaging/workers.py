"""The background loops a service runs around its outbox and its consumer.

A service's ``workers`` (``platform_kit.spec.ServiceSpec``) are built from these: the relay
that publishes its outbox, and the consumer that reads the topics of its
``ConsumerSpec`` into its handlers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Engine

from messaging.consumer import ConsumerRuntime, HandlerRegistry
from messaging.outbox import Renderer
from messaging.relay import run_relay_forever
from platform_kit.settings import Settings
from platform_kit.spec import ConsumerSpec, Worker


def consumer_runtime(spec: ConsumerSpec, engine: Engine, settings: Settings,
                     handlers: HandlerRegistry, **options: Any) -> ConsumerRuntime:
    """The consumer ``spec`` names, reading its topics into ``handlers``; ``options`` as
    ``ConsumerRuntime`` takes them (batch size, back-off ...)."""
    return ConsumerRuntime(spec.name, engine, settings, handlers, topics=spec.topics, **options)


def outbox_workers(engine: Engine, settings: Settings,
                   consumer: Callable[[], ConsumerRuntime] | None = None,
                   renderers: Mapping[str, Renderer] | None = None) -> dict[str, Worker]:
    """``relay`` (with the outbox's ``renderers``, if any) and, given ``consumer`` (which
    makes the consumer when the worker starts), ``consumer``."""

    def relay(stop: threading.Event) -> None:
        run_relay_forever(engine, settings, stop, renderers=renderers)

    workers: dict[str, Worker] = {"relay": relay}
    if consumer is not None:

        def consume(stop: threading.Event) -> None:
            consumer().run(stop)

        workers["consumer"] = consume
    return workers
