"""The analytics service as ``deploy.serve`` runs it: web app and the stream worker."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from sqlalchemy import Engine

from analytics.api import api_router
from analytics.consumers import CONSUMED_TOPICS, CONSUMER_NAME
from analytics.queries import AnalyticsQueries
from analytics.stream import run_projector
from analytics.web import STATIC_DIR, Dashboard, web_router
from auth_client.settings import DASHBOARD_PORTS, client_secret_variable
from auth_client.sign_in import AuthClientConfig, dashboard_page_policy, install_auth
from dashboard_kit.pages import DashboardLinks, mount_static
from platform_kit.db import make_engine, make_session_factory
from platform_kit.service_app import broker_check, create_service_app, database_check, disposing
from platform_kit.settings import Settings
from platform_kit.spec import ConsumerSpec, ServiceSpec, commands_in

SERVICE = "analytics"

Worker = Callable[[threading.Event], None]


def engine_for(settings: Settings) -> Engine:
    return make_engine(settings.database_for(SERVICE))


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
    """The API and the dashboard; ``auth`` and ``environ`` (where the other dashboards
    are) default to the process environment."""
    engine = engine_for(settings)
    analytics = AnalyticsQueries(make_session_factory(engine), ZoneInfo(settings.timezone), clock)
    auth = auth or AuthClientConfig.from_env(SERVICE)
    app = create_service_app(
        "aTES analytics",
        {"database": database_check(engine), "broker": broker_check(settings.kafka_bootstrap)},
        page_policy=dashboard_page_policy(auth),
        version="1.0",
        description="Admin dashboard projected from the event streams.",
        lifespan=disposing(engine),
    )
    install_auth(app, auth)
    app.include_router(api_router(analytics))
    app.include_router(web_router(Dashboard(analytics, auth, DashboardLinks.from_env(environ))))
    mount_static(app, STATIC_DIR)
    return app


SPEC = ServiceSpec(
    name=SERVICE,
    port=DASHBOARD_PORTS[SERVICE],
    create_app=create_app,
    workers=workers,
    migrations="analytics.migrations",
    consumer=ConsumerSpec(CONSUMER_NAME, CONSUMED_TOPICS),
    secrets=(client_secret_variable(SERVICE),),
    commands=commands_in("analytics.cli"),
)
