"""The tasks service as ``deploy.serve`` runs it: web app and background workers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from random import SystemRandom
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine

from auth_client.settings import DASHBOARD_PORTS, client_secret_variable
from auth_client.sign_in import (
    AuthClientConfig,
    dashboard_page_policy,
    install_auth,
    refuse_inactive_accounts,
)
from auth_client.verification import TokenVerifier
from dashboard_kit.pages import DashboardLinks, mount_static
from messaging.consumer import ConsumerRuntime
from messaging.relay import run_relay_forever
from platform_kit.db import make_engine, make_session_factory
from platform_kit.metrics import scrape_gauge
from platform_kit.service_app import broker_check, create_service_app, database_check, disposing
from platform_kit.settings import Settings
from platform_kit.spec import ConsumerSpec, ServiceSpec
from tasks.api import api_router, install_error_handlers
from tasks.consumers import CONSUMED_TOPICS, CONSUMER_NAME, handlers
from tasks.models import Account
from tasks.queries import TaskQueries
from tasks.service import TasksService
from tasks.settings import TasksSettings
from tasks.web import STATIC_DIR, Board, web_router

SERVICE = "tasks"

Worker = Callable[[threading.Event], None]


def engine_for(settings: Settings) -> Engine:
    return make_engine(settings.database_for(SERVICE))


def consumer_runtime(engine: Engine, settings: Settings, **options: Any) -> ConsumerRuntime:
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


def create_app(
    settings: Settings,
    auth: AuthClientConfig | None = None,
    environ: Mapping[str, str] | None = None,
    verifier: TokenVerifier | None = None,
) -> FastAPI:
    """The API and the board; ``auth`` and ``environ`` default to the process environment,
    ``verifier`` to checking tokens against the provider's published keys."""
    engine = engine_for(settings)
    sessions = make_session_factory(engine)
    tasks_settings = TasksSettings.from_env(settings, environ)
    auth = auth or AuthClientConfig.from_env(SERVICE, environ=environ)
    app = create_service_app(
        "aTES tasks",
        {"database": database_check(engine), "broker": broker_check(settings.kafka_bootstrap)},
        page_policy=dashboard_page_policy(auth),
        version="1.0",
        description="Task tracker: random assignment, reshuffles, completion.",
        lifespan=disposing(engine),
    )
    install_auth(app, auth, verifier)
    refuse_inactive_accounts(app, sessions, Account)
    install_error_handlers(app)
    commands = TasksService.from_settings(sessions, tasks_settings,
                                          clock=partial(datetime.now, UTC), random=SystemRandom())
    reads = TaskQueries(sessions)
    app.include_router(api_router(commands, reads))
    scrape_gauge("ates_tasks_open", "Tasks not done yet.", reads.count_open_tasks)
    board = Board(commands, reads, auth, DashboardLinks.from_env(environ))
    app.include_router(web_router(board))
    mount_static(app, STATIC_DIR)
    return app


SPEC = ServiceSpec(
    name=SERVICE,
    port=DASHBOARD_PORTS[SERVICE],
    create_app=create_app,
    workers=workers,
    migrations="tasks.migrations",
    consumer=ConsumerSpec(CONSUMER_NAME, CONSUMED_TOPICS),
    secrets=(client_secret_variable(SERVICE),),
)
