"""The analytics service as ``deploy.serve`` runs it: web app and the stream worker."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, FastAPI

from analytics.api import api_router
from analytics.consumers import CONSUMED_TOPICS, CONSUMER_NAME
from analytics.queries import AnalyticsQueries
from analytics.stream import run_projector
from analytics.web import STATIC_DIR, Dashboard, web_router
from auth_client.sign_in import AuthClientConfig
from dashboard_kit.service import DashboardParts, DashboardService
from platform_kit.settings import Settings
from platform_kit.spec import ConsumerSpec, Worker, commands_in

SERVICE = "analytics"
DASHBOARD = DashboardService(
    SERVICE, "Admin dashboard projected from the event streams.", STATIC_DIR,
    consumer=ConsumerSpec(CONSUMER_NAME, CONSUMED_TOPICS))
engine_for = DASHBOARD.engine  # the service's database, for its commands


def workers(settings: Settings) -> dict[str, Worker]:
    engine = engine_for(settings)

    def stream(stop: threading.Event) -> None:
        run_projector(engine, settings, stop)

    return {"stream": stream}


def create_app(
    settings: Settings,
    auth: AuthClientConfig | None = None,
    clock: Callable[[], datetime] | None = None,
    environ: Mapping[str, str] | None = None,
) -> FastAPI:
    """The API and the dashboard; ``auth`` defaults to the process environment, and so
    does ``environ`` (where the other dashboards are)."""

    def routers(parts: DashboardParts) -> list[APIRouter]:
        analytics = AnalyticsQueries(parts.sessions, ZoneInfo(settings.timezone), clock)
        return [api_router(analytics), web_router(Dashboard(analytics, parts.auth, parts.links))]

    return DASHBOARD.create_app(settings, routers, environ=environ,
                                auth=auth or AuthClientConfig.from_env(SERVICE))


SPEC = DASHBOARD.spec(create_app, workers, commands_in("analytics.cli"))
