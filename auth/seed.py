"""Demo accounts for the development stack."""

from __future__ import annotations

import secrets

from auth.config import AuthConfig
from auth.queries import AccountQueries
from auth.service import AccountService
from messaging.outbox import Outbox
from platform_kit.db import make_engine, make_session_factory
from platform_kit.migrations import upgrade
from platform_kit.settings import Settings

ADMIN_EMAIL = "admin@popug.inc"
DEMO_ACCOUNTS: tuple[tuple[str, str, str], ...] = (
    (ADMIN_EMAIL, "Ada Admin", "admin"),
    ("manager@popug.inc", "Max Manager", "manager"),
    ("accountant@popug.inc", "Abby Accountant", "accountant"),
    ("worker1@popug.inc", "Kesha Popugaev", "worker"),
    ("worker2@popug.inc", "Gosha Popugaev", "worker"),
    ("worker3@popug.inc", "Rio Ara", "worker"),
    ("worker4@popug.inc", "Coco Kakadu", "worker"),
    ("worker5@popug.inc", "Zhako Sery", "worker"),
)


def demo_password(email: str) -> str:
    """Fixed, documented passwords for the demo popugs (never for the admin)."""
    return f"{email.split('@')[0]}-popug"


def seed_demo_accounts(settings: Settings, admin_password: str | None,
                       config: AuthConfig | None = None) -> list[dict[str, str | None]]:
    """Create the demo accounts that are missing; safe to run on every start.

    Returns ``{email, password, role}`` for each; ``password`` is None for accounts that
    already existed (their password is not touched). Without ``admin_password`` the admin
    gets a generated one.
    """
    url = settings.database_for("auth")
    upgrade("auth.migrations", url)
    engine = make_engine(url, pool_size=2)
    try:
        sessions = make_session_factory(engine)
        accounts = AccountService(sessions, Outbox(settings), config or AuthConfig.from_env())
        return [_ensure(accounts, AccountQueries(sessions), email, name, role, admin_password)
                for email, name, role in DEMO_ACCOUNTS]
    finally:
        engine.dispose()


def _ensure(accounts: AccountService, queries: AccountQueries, email: str, full_name: str,
            role: str, admin_password: str | None) -> dict[str, str | None]:
    if queries.find_account_by_email(email) is not None:
        return {"email": email, "password": None, "role": role}
    if email == ADMIN_EMAIL:
        password = admin_password or secrets.token_urlsafe(12)
    else:
        password = demo_password(email)
    accounts.create_account(email, full_name, role, password)
    return {"email": email, "password": password, "role": role}
