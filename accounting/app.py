"""The accounting service as ``deploy.serve`` runs it: web app and background workers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine

from accounting import metrics
from accounting.api import api_router, install_error_handlers
from accounting.closing import RENDERERS
from accounting.consumers import CONSUMED_TOPICS, CONSUMER_NAME, make_handlers
from accounting.ledger_sql import Books
from accounting.mailer import Mailer
from accounting.models import Account
from accounting.scheduler import run_scheduler
from accounting.settings import AccountingSettings
from accounting.web import STATIC_DIR, Dashboard, web_router
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
from platform_kit.service_app import (
    broker_check,
    create_service_app,
    database_check,
    disposing,
    smtp_check,
)
from platform_kit.settings import Settings
from platform_kit.spec import ConsumerSpec, ServiceSpec, commands_in

SERVICE = "accounting"

Worker = Callable[[threading.Event], None]


def engine_for(settings: Settings) -> Engine:
    return make_engine(settings.database_for(SERVICE))


def consumer_runtime(engine: Engine, books: Books, **options: Any) -> ConsumerRuntime:
    """The consumer that feeds replicas and ledger from auth's and tasks' topics."""
    return ConsumerRuntime(
        CONSUMER_NAME,
        engine,
        books.settings.platform,
        make_handlers(books),
        topics=CONSUMED_TOPICS,
        **options,
    )


def workers(settings: Settings) -> dict[str, Worker]:
    engine = engine_for(settings)
    books = Books.create(AccountingSettings.from_env(settings))

    def relay(stop: threading.Event) -> None:
        run_relay_forever(engine, settings, stop, renderers=RENDERERS)

    def consumer(stop: threading.Event) -> None:
        consumer_runtime(engine, books).run(stop)

    def scheduler(stop: threading.Event) -> None:
        run_scheduler(engine, books, stop)

    def mailer(stop: threading.Event) -> None:
        Mailer(make_session_factory(engine), books.settings).run(stop)

    return {"relay": relay, "consumer": consumer, "scheduler": scheduler, "mailer": mailer}


def create_app(
    settings: Settings,
    auth: AuthClientConfig | None = None,
    environ: Mapping[str, str] | None = None,
    verifier: TokenVerifier | None = None,
) -> FastAPI:
    """The API and the dashboard; ``auth`` and ``environ`` default to the process
    environment, ``verifier`` to checking tokens against the provider's published keys."""
    engine = engine_for(settings)
    sessions = make_session_factory(engine)
    books = Books.create(AccountingSettings.from_env(settings, environ))
    auth = auth or AuthClientConfig.from_env(SERVICE, environ=environ)
    platform = books.settings.platform
    app = create_service_app(
        "aTES accounting",
        {
            "database": database_check(engine),
            "broker": broker_check(platform.kafka_bootstrap),
            "smtp": smtp_check(platform.smtp_url),
        },
        page_policy=dashboard_page_policy(auth),
        version="1.0",
        description="Balances, audit logs, management earnings, day closing, CSV exports.",
        lifespan=disposing(engine),
    )
    install_auth(app, auth, verifier)
    refuse_inactive_accounts(app, sessions, Account)
    install_error_handlers(app)
    app.include_router(api_router(sessions, books))
    metrics.register_gauges(sessions, books)
    dashboard = Dashboard(sessions, books, auth, DashboardLinks.from_env(environ))
    app.include_router(web_router(dashboard))
    mount_static(app, STATIC_DIR)
    return app


SPEC = ServiceSpec(
    name=SERVICE,
    port=DASHBOARD_PORTS[SERVICE],
    create_app=create_app,
    workers=workers,
    migrations="accounting.migrations",
    consumer=ConsumerSpec(CONSUMER_NAME, CONSUMED_TOPICS),
    sends_mail=True,
    secrets=(client_secret_variable(SERVICE),),
    commands=commands_in("accounting.cli"),
)
