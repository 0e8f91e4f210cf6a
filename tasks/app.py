"""The tasks service as ``deploy.serve`` runs it: web app and background workers."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from random import SystemRandom
from typing import Any

from fastapi import APIRouter
from sqlalchemy import Engine

from dashboard_kit.service import DashboardParts, DashboardService
from messaging import workers as outbox
from messaging.consumer import ConsumerRuntime
from platform_kit.metrics import scrape_gauge
from platform_kit.settings import Settings
from platform_kit.spec import ConsumerSpec, Worker
from tasks.api import api_router, install_error_handlers
from tasks.consumers import CONSUMED_TOPICS, CONSUMER_NAME, handlers
from tasks.models import Account
from tasks.queries import TaskQueries
from tasks.service import TasksService
from tasks.settings import TasksSettings
from tasks.web import STATIC_DIR, Board, web_router

SERVICE = "tasks"
CONSUMER = ConsumerSpec(CONSUMER_NAME, CONSUMED_TOPICS)
DASHBOARD = DashboardService(
    SERVICE, "Task tracker: random assignment, reshuffles, completion.", STATIC_DIR,
    consumer=CONSUMER, accounts=Account, error_handlers=install_error_handlers)


def consumer_runtime(engine: Engine, settings: Settings, **options: Any) -> ConsumerRuntime:
    """The consumer that feeds the accounts replica from auth's topics."""
    return outbox.consumer_runtime(CONSUMER, engine, settings, handlers, **options)


def workers(settings: Settings) -> dict[str, Worker]:
    engine = DASHBOARD.engine(settings)
    return outbox.outbox_workers(engine, settings, partial(consumer_runtime, engine, settings))


def routers(parts: DashboardParts) -> list[APIRouter]:
    """The API and the board."""
    commands = TasksService.from_settings(
        parts.sessions, TasksSettings.from_env(parts.settings, parts.environ),
        clock=partial(datetime.now, UTC), random=SystemRandom())
    reads = TaskQueries(parts.sessions)
    api = api_router(commands, reads)
    scrape_gauge("ates_tasks_open", "Tasks not done yet.", reads.count_open_tasks)
    return [api, web_router(Board(commands, reads, parts.auth, parts.links))]


create_app = DASHBOARD.app_factory(routers)


SPEC = DASHBOARD.spec(create_app, workers)
