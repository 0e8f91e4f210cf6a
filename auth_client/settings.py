"""The ``ATES_*`` variables that the provider and its clients both read, so that they agree
on ids, secrets and URLs.

- ``ATES_AUTH_URL``: the issuer, i.e. the provider's public URL
  (default ``http://$ATES_PUBLIC_HOST:8000``, ``ATES_PUBLIC_HOST`` defaulting to 127.0.0.1);
- ``ATES_TASKS_URL``, ``ATES_ACCOUNTING_URL``, ``ATES_ANALYTICS_URL``: public URLs of the
  dashboards (default ``http://$ATES_PUBLIC_HOST:8001`` ... ``:8003``);
- ``ATES_AUTH_CLIENTS``: the OAuth clients as a JSON list, for example
  ``[{"client_id": "tasks", "client_secret": "...",
  "redirect_uris": ["https://tasks.popug.inc/auth/callback"],
  "post_logout_redirect_uris": ["https://tasks.popug.inc/"],
  "frontchannel_logout_uri": "https://tasks.popug.inc/auth/frontchannel-logout"},
  {"client_id": "ates-cli", "loopback_redirect": true},
  {"client_id": "reports", "client_secret": "...", "grant_types": ["client_credentials"],
  "service_role": "accountant"}]``.
  Without it every dashboard gets a confidential client at its URL with the secret in
  ``ATES_<CLIENT>_CLIENT_SECRET`` (a public development default, ``<client>-dev-secret``,
  when unset) and scripts get the public client ``ates-cli``;
- ``ATES_SECRET_KEY``: signs cookies and form tokens (a public development default).

The public development secrets are refused unless the issuer is on a loopback address:
anyone could forge cookies or act as a dashboard with them. ``ates up`` generates the
secrets of each installation on its first start (``<ATES_VAR_DIR>/secrets.json``).
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

DEFAULT_PUBLIC_HOST = "127.0.0.1"
AUTH_PORT = 8000
DASHBOARD_PORTS = {"tasks": 8001, "accounting": 8002, "analytics": 8003}
CLI_CLIENT_ID = "ates-cli"
AUDIENCE = "ates"
DEV_SECRET_KEY = "ates-dev-secret-key-change-me"

USER_GRANTS = ("authorization_code", "refresh_token")


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def public_host(environ: Mapping[str, str] | None = None) -> str:
    return _env(environ).get("ATES_PUBLIC_HOST", DEFAULT_PUBLIC_HOST)


def auth_url(environ: Mapping[str, str] | None = None) -> str:
    """The issuer: the public URL of the provider."""
    env = _env(environ)
    return env.get("ATES_AUTH_URL", f"http://{public_host(env)}:{AUTH_PORT}").rstrip("/")


def dashboard_url(service: str, environ: Mapping[str, str] | None = None) -> str:
    """The public URL of a dashboard: ``ATES_<SERVICE>_URL`` or its default port."""
    env = _env(environ)
    variable = f"ATES_{service.upper().replace('-', '_')}_URL"
    if variable in env:
        return env[variable].rstrip("/")
    if service not in DASHBOARD_PORTS:
        raise ValueError(f"no URL for {service!r}: set {variable}")
    return f"http://{public_host(env)}:{DASHBOARD_PORTS[service]}"


def secret_key(environ: Mapping[str, str] | None = None) -> str:
    """Key that signs cookies and form tokens; the development default is public."""
    return _env(environ).get("ATES_SECRET_KEY", DEV_SECRET_KEY)


def dev_client_secret(client_id: str) -> str:
    return f"{client_id}-dev-secret"


def client_secret_variable(client_id: str) -> str:
    return f"ATES_{client_id.upper().replace('-', '_')}_CLIENT_SECRET"


# Published (in this code, the compose file and the Kubernetes example): never secret.
PUBLISHED_SECRET_KEYS = frozenset({DEV_SECRET_KEY, "compose-local-secret-key-change-me",
                                   "CHANGE-ME-to-a-long-random-string"})


class PublicSecret(ValueError):
    """A published development secret configured where others can reach the services."""


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse_public_secrets(issuer: str, secret_key: str,
                          client_secrets: Mapping[str, str | None]) -> None:
    """Raise :class:`PublicSecret` if a development secret is used off loopback."""
    if is_loopback_url(issuer):
        return
    public = ["ATES_SECRET_KEY"] if secret_key in PUBLISHED_SECRET_KEYS else []
    public += [f"the secret of client {client_id!r}"
               for client_id, secret in client_secrets.items()
               if secret == dev_client_secret(client_id)]
    if public:
        raise PublicSecret(
            f"{' and '.join(public)}: a published development secret, refused for the "
            f"issuer {issuer} (not a loopback address). Set ATES_SECRET_KEY and "
            "ATES_<CLIENT>_CLIENT_SECRET (or ATES_AUTH_CLIENTS) to secrets of your own.")


@dataclass(frozen=True)
class ClientConfig:
    """One registered OAuth client.

    A client without ``client_secret`` is public (it proves itself with PKCE only).
    ``loopback_redirect`` allows any ``http://127.0.0.1:<port>/callback`` (RFC 8252).
    ``service_role`` is the role carried by its client-credentials tokens.
    """

    client_id: str
    client_secret: str | None = None
    redirect_uris: tuple[str, ...] = ()
    loopback_redirect: bool = False
    post_logout_redirect_uris: tuple[str, ...] = ()
    frontchannel_logout_uri: str | None = None
    grant_types: tuple[str, ...] = USER_GRANTS
    service_role: str | None = None

    @property
    def is_public(self) -> bool:
        return self.client_secret is None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ClientConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown client setting(s): {', '.join(sorted(unknown))}")
        values = dict(raw)
        for name in ("redirect_uris", "post_logout_redirect_uris", "grant_types"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)


def dashboard_client(service: str, base_url: str, secret: str) -> ClientConfig:
    """The confidential client of a dashboard served at ``base_url``."""
    return ClientConfig(
        client_id=service,
        client_secret=secret,
        redirect_uris=(f"{base_url}/auth/callback",),
        post_logout_redirect_uris=(f"{base_url}/",),
        frontchannel_logout_uri=f"{base_url}/auth/frontchannel-logout",
    )


def cli_client() -> ClientConfig:
    return ClientConfig(client_id=CLI_CLIENT_ID, loopback_redirect=True)


def default_clients(environ: Mapping[str, str] | None = None) -> tuple[ClientConfig, ...]:
    env = _env(environ)
    dashboards = tuple(
        dashboard_client(name, dashboard_url(name, env),
                         env.get(client_secret_variable(name), dev_client_secret(name)))
        for name in DASHBOARD_PORTS
    )
    return dashboards + (cli_client(),)


def clients_from_env(environ: Mapping[str, str] | None = None) -> tuple[ClientConfig, ...]:
    env = _env(environ)
    raw = env.get("ATES_AUTH_CLIENTS")
    if not raw:
        return default_clients(env)
    entries = json.loads(raw)
    if not isinstance(entries, list):
        raise ValueError("ATES_AUTH_CLIENTS must be a JSON list of client objects")
    return tuple(ClientConfig.from_dict(entry) for entry in entries)
