"""The accounting service as ``deploy.serve`` runs it: web app and background workers."""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

from fastapi import APIRouter
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
from dashboard_kit.service import DashboardParts, DashboardService
from messaging import workers as outbox
from messaging.consumer import ConsumerRuntime
from platform_kit.db import make_session_factory
from platform_kit.settings import Settings
from platform_kit.spec import ConsumerSpec, Worker, commands_in

SERVICE = "accounting"
CONSUMER = ConsumerSpec(CONSUMER_NAME, CONSUMED_TOPICS)
DASHBOARD = DashboardService(
    SERVICE, "Balances, audit logs, management earnings, day closing, CSV exports.", STATIC_DIR,
    consumer=CONSUMER, sends_mail=True, accounts=Account, error_handlers=install_error_handlers)
engine_for = DASHBOARD.engine  # the service's database, for its commands


def consumer_runtime(engine: Engine, books: Books, **options: Any) -> ConsumerRuntime:
    """The consumer that feeds replicas and ledger from auth's and tasks' topics."""
    return outbox.consumer_runtime(CONSUMER, engine, books.settings.platform,
                                   make_handlers(books), **options)


def workers(settings: Settings) -> dict[str, Worker]:
    engine = engine_for(settings)
    books = Books.create(AccountingSettings.from_env(settings))

    def scheduler(stop: threading.Event) -> None:
        run_scheduler(engine, books, stop)

    def mailer(stop: threading.Event) -> None:
        Mailer(make_session_factory(engine), books.settings).run(stop)

    return {**outbox.outbox_workers(engine, settings, partial(consumer_runtime, engine, books),
                                    renderers=RENDERERS),
            "scheduler": scheduler, "mailer": mailer}


def routers(parts: DashboardParts) -> list[APIRouter]:
    """The API and the dashboard."""
    books = Books.create(AccountingSettings.from_env(parts.settings, parts.environ))
    api = api_router(parts.sessions, books)
    metrics.register_gauges(parts.sessions, books)
    return [api, web_router(Dashboard(parts.sessions, books, parts.auth, parts.links))]


create_app = DASHBOARD.app_factory(routers)


SPEC = DASHBOARD.spec(create_app, workers, commands_in("accounting.cli"))
