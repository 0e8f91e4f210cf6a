"""What a dashboard service (tasks, accounting, analytics) is made of, written once.

A :class:`DashboardService` says what sets one apart: its name, what its API does, its
static files, whether it consumes events, sends mail (its readiness then checks the SMTP
server), keeps a replica of the accounts (callers whose account it knows deactivated or
deleted are refused) and how its domain errors answer. From that it builds

- :meth:`DashboardService.create_app`: the web app of ``platform_kit.service_app`` behind
  auth's sign-in, the security headers a dashboard needs, the service's own routers (made
  by a callback that gets the :class:`DashboardParts`) and its static files under
  ``/static``;
- :meth:`DashboardService.spec`: its ``ServiceSpec`` (the dashboard's port, its
  migrations package ``<name>.migrations``, its client secret).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from fastapi import APIRouter, FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from auth_client.replica import AccountReplica
from auth_client.settings import DASHBOARD_PORTS, client_secret_variable
from auth_client.sign_in import (
    AuthClientConfig,
    dashboard_page_policy,
    install_auth,
    refuse_inactive_accounts,
)
from auth_client.verification import TokenVerifier
from dashboard_kit.pages import DashboardLinks, mount_static
from platform_kit.db import make_engine, make_session_factory
from platform_kit.service_app import create_ates_app
from platform_kit.settings import Settings
from platform_kit.spec import ConsumerSpec, ServiceSpec, Worker

if TYPE_CHECKING:
    import click


@dataclass(frozen=True)
class DashboardParts:
    """What a dashboard's routers are built from: the service's database, the sign-in it
    uses and where the other dashboards are."""

    settings: Settings
    environ: Mapping[str, str] | None
    engine: Engine
    sessions: sessionmaker[Session]
    auth: AuthClientConfig
    links: DashboardLinks


Routers = Callable[[DashboardParts], Iterable[APIRouter]]


class CreateApp(Protocol):
    """The ``create_app`` of a dashboard service: ``auth`` and ``environ`` default to the
    process environment, ``verifier`` to checking tokens against the provider's published
    keys."""

    def __call__(self, settings: Settings, auth: AuthClientConfig | None = None,
                 environ: Mapping[str, str] | None = None,
                 verifier: TokenVerifier | None = None) -> FastAPI: ...


@dataclass(frozen=True)
class DashboardService:
    """A dashboard service: ``name``, its API's ``description``, its ``static`` folder, its
    ``consumer``; ``sends_mail`` (readiness checks the SMTP server); ``accounts``, the model
    of its accounts replica (callers it knows inactive are refused); ``error_handlers``,
    how its domain errors answer."""

    name: str
    description: str
    static: Path
    consumer: ConsumerSpec | None = None
    sends_mail: bool = False
    accounts: type[AccountReplica] | None = None
    error_handlers: Callable[[FastAPI], None] | None = None

    def engine(self, settings: Settings) -> Engine:
        """An engine on the service's own database."""
        return make_engine(settings.database_for(self.name))

    def create_app(self, settings: Settings, routers: Routers, *,
                   auth: AuthClientConfig | None = None,
                   environ: Mapping[str, str] | None = None,
                   verifier: TokenVerifier | None = None) -> FastAPI:
        """The service's web app; ``auth`` and ``environ`` (where the other dashboards are)
        default to the process environment, ``verifier`` to checking tokens against the
        provider's published keys."""
        engine = self.engine(settings)
        sessions = make_session_factory(engine)
        auth = auth or AuthClientConfig.from_env(self.name, environ=environ)
        app = create_ates_app(self.name, engine, settings, description=self.description,
                              page_policy=dashboard_page_policy(auth),
                              checks_smtp=self.sends_mail)
        install_auth(app, auth, verifier)
        if self.accounts is not None:
            refuse_inactive_accounts(app, sessions, self.accounts)
        if self.error_handlers is not None:
            self.error_handlers(app)
        parts = DashboardParts(settings, environ, engine, sessions, auth,
                               DashboardLinks.from_env(environ))
        for router in routers(parts):
            app.include_router(router)
        mount_static(app, self.static)
        return app

    def app_factory(self, routers: Routers) -> CreateApp:
        """The service's ``create_app``: its web app with the routers ``routers`` makes."""

        def create_app(settings: Settings, auth: AuthClientConfig | None = None,
                       environ: Mapping[str, str] | None = None,
                       verifier: TokenVerifier | None = None) -> FastAPI:
            return self.create_app(settings, routers, auth=auth, environ=environ,
                                   verifier=verifier)

        return create_app

    def spec(self, create_app: Callable[[Settings], FastAPI],
             workers: Callable[[Settings], Mapping[str, Worker]],
             commands: Callable[[], Sequence[click.Command]] | None = None) -> ServiceSpec:
        return ServiceSpec(
            name=self.name,
            port=DASHBOARD_PORTS[self.name],
            create_app=create_app,
            workers=workers,
            migrations=f"{self.name}.migrations",
            consumer=self.consumer,
            sends_mail=self.sends_mail,
            secrets=(client_secret_variable(self.name),),
            commands=commands,
        )
