"""Configuration of the provider, read from ``ATES_*`` variables.

The variables it shares with its clients (its URL, the dashboards' URLs, the OAuth
clients, ``ATES_SECRET_KEY``) are described in :mod:`auth_client.settings`; the provider's
own are:

- ``ATES_AUTH_ACCESS_TOKEN_TTL``, ``ATES_AUTH_REFRESH_TOKEN_TTL``: lifetimes in seconds
  (15 minutes, 14 days);
- ``ATES_AUTH_MAIL_FROM``: the sender of the provider's mails.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from auth_client.settings import (
    AUDIENCE,
    AUTH_PORT,
    DEFAULT_PUBLIC_HOST,
    DEV_SECRET_KEY,
    ClientConfig,
    auth_url,
    clients_from_env,
    default_clients,
    refuse_public_secrets,
    secret_key,
)


def _cores() -> int:
    return os.cpu_count() or 2


@dataclass(frozen=True)
class PasswordHashing:
    """argon2id cost. The defaults are one of the five settings OWASP's password storage
    cheat sheet lists as giving "an equal level of defense" (46 MiB and 1 pass, 19 MiB and
    2, 12 MiB and 3, 9 MiB and 4, 7 MiB and 5; one lane each): the last, 7 MiB and five
    passes, which needs the least CPU of them on this service's machines (a hash in about
    25 ms against 32-42 ms for 19 MiB and two passes, measured side by side), so a burst
    of sign-ins on two cores answers sooner, and the least memory per hash.

    Each hash being computed holds ``memory_cost_kib``, so at most ``at_once`` are computed
    together (one per core: more would not finish sooner). Without a bound, a burst of
    sign-ins on 40 request threads took the auth process past 1 GiB (at 19 MiB a hash).
    Hashes stored with another of OWASP's settings (older accounts: 19 MiB, two passes)
    are verified with the setting they carry.
    """

    time_cost: int = 5
    memory_cost_kib: int = 7168
    parallelism: int = 1
    at_once: int = field(default_factory=_cores)


FAST_PASSWORD_HASHING = PasswordHashing(time_cost=1, memory_cost_kib=8, parallelism=1)


@dataclass(frozen=True)
class LoginThrottling:
    """Failed sign-ins allowed within ``window``: for one account from one client address,
    from one address over all accounts, and for one account from all addresses together.

    The account-wide ceiling is many times the per-address limit, so that locking an owner
    out takes failures from ``per_account / per_account_and_address`` (20) addresses.
    """

    per_account_and_address: int = 5
    per_address: int = 20
    per_account: int = 100
    window: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class PasswordResetRules:
    """Reset links: how long one stays valid, and how many may be asked for within
    ``window`` for one email and from one client address (whether or not the email has an
    account, so the limit tells nothing about which emails exist)."""

    link_ttl: timedelta = timedelta(minutes=30)
    per_email: int = 3
    per_address: int = 10
    window: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class AuthConfig:
    issuer: str = f"http://{DEFAULT_PUBLIC_HOST}:{AUTH_PORT}"
    audience: str = AUDIENCE
    clients: tuple[ClientConfig, ...] = field(default_factory=default_clients)
    secret_key: str = DEV_SECRET_KEY
    access_token_ttl: timedelta = timedelta(minutes=15)
    id_token_ttl: timedelta = timedelta(hours=1)
    refresh_token_ttl: timedelta = timedelta(days=14)
    authorization_code_ttl: timedelta = timedelta(minutes=5)
    sso_session_ttl: timedelta = timedelta(hours=12)
    # A retired signing key stays in the JWKS until every token it signed has expired.
    retired_key_publication: timedelta = timedelta(days=1)
    password_hashing: PasswordHashing = PasswordHashing()
    throttling: LoginThrottling = LoginThrottling()
    password_reset: PasswordResetRules = PasswordResetRules()
    # Sender of the provider's mails (password reset links), ``ATES_AUTH_MAIL_FROM``.
    mail_from: str = "accounts@popug.inc"

    @property
    def secure_cookies(self) -> bool:
        return self.issuer.startswith("https://")

    def with_(self, **changes: Any) -> AuthConfig:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AuthConfig:
        env = os.environ if environ is None else environ
        ttl = int(env.get("ATES_AUTH_ACCESS_TOKEN_TTL", "900"))
        refresh_ttl = int(env.get("ATES_AUTH_REFRESH_TOKEN_TTL", str(14 * 24 * 3600)))
        config = cls(
            issuer=auth_url(env),
            clients=clients_from_env(env),
            secret_key=secret_key(env),
            access_token_ttl=timedelta(seconds=ttl),
            refresh_token_ttl=timedelta(seconds=refresh_ttl),
            mail_from=env.get("ATES_AUTH_MAIL_FROM", "accounts@popug.inc"),
        )
        refuse_public_secrets(config.issuer, config.secret_key,
                              {c.client_id: c.client_secret for c in config.clients})
        return config
