"""A real auth provider for tests: its own database and topics, served over HTTP.

Other suites can use it to get real tokens and to sign their dashboards in::

    from auth_client.sign_in import install_auth
    from tests.auth.support import dashboard_clients, running_provider

    port = free_port()
    clients = dashboard_clients({"tasks": port})
    with running_provider(postgres_server.url, kafka_broker.bootstrap, clients) as provider:
        admin = provider.create_login("admin")
        token = provider.token_for(admin)                  # code + PKCE over HTTP
        install_auth(app, provider.dashboard_config("tasks", port))
        with serve_app(app, port=port) as url: ...
"""

from __future__ import annotations

import html
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from urllib.parse import urljoin

import httpx
from fastapi import FastAPI
from sqlalchemy import Engine

from auth.app import create_app
from auth.config import FAST_PASSWORD_HASHING, AuthConfig
from auth.queries import AccountQueries
from auth.service import AccountService
from auth_client.settings import ClientConfig, cli_client, dashboard_client
from auth_client.sign_in import AuthClientConfig
from auth_client.token_flow import hidden_inputs, obtain_tokens
from auth_client.verification import JwksCache, TokenVerifier, http_jwks
from deploy.embedded import free_port
from deploy.serve import web_server
from messaging.kafka import ensure_topics
from platform_kit.db import drop_database, make_engine
from platform_kit.migrations import upgrade
from platform_kit.settings import Settings
from tests.helpers import serve_app

TEST_PASSWORD = "correct horse battery"
SERVICE_CLIENT = ClientConfig("reports", client_secret="reports-secret",
                              grant_types=("client_credentials",), service_role="accountant")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Login:
    email: str
    password: str
    id: str
    role: str


@dataclass
class RunningProvider:
    url: str
    config: AuthConfig
    settings: Settings
    engine: Engine
    app: FastAPI

    @property
    def accounts(self) -> AccountService:
        return self.app.state.accounts

    @property
    def queries(self) -> AccountQueries:
        return self.app.state.account_queries

    def create_login(self, role: str = "worker", password: str = TEST_PASSWORD,
                     name: str = "Test Popug") -> Login:
        email = f"{role}-{uuid.uuid4().hex[:10]}@popug.test"
        account = self.accounts.create_account(email, name, role, password)
        return Login(email, password, account.id, role)

    def tokens_for(self, login: Login) -> dict:
        """A full token response, through the code + PKCE flow over HTTP."""
        return obtain_tokens(self.url, login.email, login.password)

    def token_for(self, login: Login) -> str:
        return self.tokens_for(login)["access_token"]

    def dashboard_config(self, client_id: str, port: int) -> AuthClientConfig:
        """Client settings of a test dashboard registered with ``dashboard_clients``."""
        return AuthClientConfig(issuer=self.url, client_id=client_id,
                                client_secret=f"{client_id}-secret",
                                base_url=f"http://127.0.0.1:{port}",
                                secret_key=f"{client_id}-test-key")

    def verifier(self, leeway: int = 30) -> TokenVerifier:
        """A client-side verifier of this provider's tokens, fetching its JWKS over HTTP."""
        jwks = JwksCache(http_jwks(f"{self.url}/oauth/jwks"))
        return TokenVerifier(self.url, self.config.audience, jwks, leeway=leeway)


@dataclass(frozen=True)
class Person:
    """A signed-in account of the running provider, with its access token."""

    login: Login
    name: str
    token: str

    @property
    def id(self) -> str:
        return self.login.id

    @property
    def uuid(self) -> uuid.UUID:
        return uuid.UUID(self.login.id)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class People:
    """One account of each role, and a second worker."""

    worker: Person
    other_worker: Person
    accountant: Person
    manager: Person
    admin: Person

    @classmethod
    def create(cls, provider: RunningProvider) -> People:
        def person(role: str, name: str) -> Person:
            login = provider.create_login(role, name=name)
            return Person(login, name, provider.token_for(login))

        return cls(
            worker=person("worker", "Kesha Worker"),
            other_worker=person("worker", "Gosha Worker"),
            accountant=person("accountant", "Ada Accountant"),
            manager=person("manager", "Mona Manager"),
            admin=person("admin", "Adam Admin"),
        )


def served_as_deployed(environ: dict[str, str] | None = None):
    """A ``serve`` for :func:`running_provider`: the HTTP server ``ates serve`` runs."""

    @contextmanager
    def serve(app: FastAPI, port: int) -> Iterator[str]:
        server = web_server(app, "127.0.0.1", port, {} if environ is None else environ)
        thread = threading.Thread(target=server.run, name=f"provider-{port}", daemon=True)
        thread.start()
        try:
            wait_until_serving(server, thread)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=15)

    return serve


def wait_until_serving(server, thread: threading.Thread) -> None:
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the provider stopped during start-up")
        thread.join(timeout=0.02)


def isolated_settings(postgres_url: str, kafka_bootstrap: str) -> Settings:
    tag = uuid.uuid4().hex[:10]
    return Settings(database_url=postgres_url, kafka_bootstrap=kafka_bootstrap,
                    topic_prefix=f"t{tag}.", database_prefix=f"t{tag}_")


def dashboard_clients(ports: dict[str, int]) -> tuple[ClientConfig, ...]:
    """Confidential clients for test dashboards served on 127.0.0.1 at ``ports``."""
    return tuple(dashboard_client(name, f"http://127.0.0.1:{port}", f"{name}-secret")
                 for name, port in ports.items())


class Browser:
    """An HTTP client that acts like a browser: one cookie jar, redirects followed by hand."""

    def __init__(self) -> None:
        self.http = httpx.Client(timeout=30.0)

    def get(self, url: str, stop_at: str | None = None) -> httpx.Response:
        return self.follow(self.http.get(url), stop_at)

    def follow(self, response: httpx.Response, stop_at: str | None = None) -> httpx.Response:
        """Follow redirects until a page, or until one points at ``stop_at``."""
        for _ in range(20):
            if not response.is_redirect:
                return response
            location = urljoin(str(response.url), response.headers["location"])
            if stop_at and location.startswith(stop_at):
                return response
            response = self.http.get(location)
        raise AssertionError("redirect loop")

    def sign_in(self, login_page: httpx.Response, login: Login,
                stop_at: str | None = None) -> httpx.Response:
        """Fill in and submit the provider's login form shown on ``login_page``."""
        assert 'name="password"' in login_page.text, login_page.text[:500]
        form = hidden_inputs(login_page.text) | {"email": login.email,
                                                 "password": login.password}
        action = urljoin(str(login_page.url), "/login")
        return self.follow(self.http.post(action, data=form), stop_at)

    def confirm(self, page: httpx.Response, stop_at: str | None = None) -> httpx.Response:
        """Press the button of the page's form (e.g. "Sign out" on the confirmation page)."""
        action = re.search(r'<form[^>]*action="([^"]+)"', page.text)
        assert action, page.text[:500]
        form = hidden_inputs(page.text)
        target = urljoin(str(page.url), html.unescape(action.group(1)))
        return self.follow(self.http.post(target, data=form), stop_at)

    def frames(self, page: httpx.Response) -> list[httpx.Response]:
        """Load the page's iframes, as a browser would."""
        return [self.http.get(html.unescape(src))
                for src in re.findall(r'<iframe src="([^"]+)"', page.text)]

    def close(self) -> None:
        self.http.close()


class Browsers:
    """The browsers a test opens, each signed in to a dashboard; all closed on exit."""

    def __init__(self) -> None:
        self.opened: list[Browser] = []

    def sign_in(self, base: str, person: Person, path: str = "/"
                ) -> tuple[Browser, httpx.Response]:
        """A new browser that opened ``base + path`` and signed in there as ``person``."""
        browser = Browser()
        self.opened.append(browser)
        page = browser.sign_in(browser.get(f"{base}{path}"), person.login)
        assert page.status_code == 200 and str(page.url) == f"{base}{path}", page.text[:300]
        return browser, page

    def __enter__(self) -> Browsers:
        return self

    def __exit__(self, *_exc: object) -> None:
        for browser in self.opened:
            browser.close()


@contextmanager
def running_provider(postgres_url: str, kafka_bootstrap: str,
                     clients: tuple[ClientConfig, ...] = (), serve=serve_app,
                     smtp_url: str | None = None, **config_changes
                     ) -> Iterator[RunningProvider]:
    """Serve a provider with ``ates-cli``, the ``reports`` service client and ``clients``.

    ``serve(app, port=...)`` serves it (a context manager yielding its URL); its mails go
    to ``smtp_url`` (e.g. the suite's mail sink)."""
    settings = isolated_settings(postgres_url, kafka_bootstrap)
    if smtp_url is not None:
        settings = replace(settings, smtp_url=smtp_url)
    ensure_topics(settings, [settings.topic("accounts-stream"),
                             settings.topic("accounts-lifecycle")])
    database_url = settings.database_for("auth")
    upgrade("auth.migrations", database_url)
    port = free_port()
    config = AuthConfig(issuer=f"http://127.0.0.1:{port}", secret_key="test-secret-key",
                        clients=(cli_client(), SERVICE_CLIENT, *clients),
                        password_hashing=FAST_PASSWORD_HASHING).with_(**config_changes)
    app = create_app(settings, config)
    engine = make_engine(database_url, pool_size=2)
    try:
        with serve(app, port=port) as url:
            yield RunningProvider(url, config, settings, engine, app)
    finally:
        engine.dispose()
        drop_database(database_url)
