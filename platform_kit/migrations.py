"""Run a service's Alembic migrations programmatically.

Each service keeps its migrations in ``<service>/migrations`` (``env.py`` reads the URL
from ``config.attributes["url"]``), so ``ates up``, the tests and operators all apply
them the same way.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config

from platform_kit.db import ensure_database


def migrations_dir(service: str) -> Path:
    package = importlib.import_module(service)
    return Path(next(iter(package.__path__))) / "migrations"


def alembic_config(service: str, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir(service)))
    config.attributes["url"] = url
    return config


def upgrade(service: str, url: str, revision: str = "head") -> None:
    """Create the service's database when missing and migrate it to ``revision``."""
    ensure_database(url)
    command.upgrade(alembic_config(service, url), revision)
