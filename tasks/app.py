"""The tasks service as ``deploy.serve`` runs it: web app and background workers."""

from __future__ import annotations

import threading
from collections.abc import Callable

from fastapi import FastAPI
from sqlalchemy import Engine

from messaging.consumer import ConsumerRuntime
from messaging.db import make_engine
from messaging.relay import run_relay_forever
from messaging.service_app import broker_check, create_service_app, database_check
from messaging.settings import Settings
from tasks.consumers import CONSUMED_TOPICS, CONSUMER_NAME, handlers

SERVICE = "tasks"

Worker = Callable[[threading.Event], None]


def engine_for(settings: Settings) -> Engine:
    return make_engine(settings.database_for(SERVICE))


def consumer_runtime(engine: Engine, settings: Settings, **options) -> ConsumerRuntime:
    """The consumer that feeds the accounts replica from auth's topics."""
    return ConsumerRuntime(
        CONSUMER_NAME, engine, settings, handlers, topics=CONSUMED_TOPICS, **options
    )


def workers(settings: Settings) -> dict[str, Worker]:
    engine = engine_for(settings)

    def relay(stop: threading.Event) -> None:
        run_relay_forever(engine, settings, stop)

    def consumer(stop: threading.Event) -> None:
        consumer_runtime(engine, settings).run(stop)

    return {"relay": relay, "consumer": consumer}


def create_app(settings: Settings) -> FastAPI:
    engine = engine_for(settings)
    return create_service_app(
        "aTES tasks",
        {"database": database_check(engine), "broker": broker_check(settings.kafka_bootstrap)},
        version="1.0",
        description="Task tracker: random assignment, reshuffles, completion.",
    )
