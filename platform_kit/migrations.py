"""Run a database's Alembic migrations programmatically.

A migrations package (``"tasks.migrations"``) holds ``env.py`` (which reads the URL from
``config.attributes["url"]``) and its revisions in ``versions/``; it may name in
``ALONGSIDE`` other packages of revisions, branches of their own applied to the same
database. ``ates migrate``, the tests and operators all apply them the same way.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from alembic import command
from alembic.config import Config

from platform_kit.db import ensure_database


def _directory(package: str) -> Path:
    return Path(next(iter(importlib.import_module(package).__path__)))


def version_locations(migrations: str) -> list[Path]:
    """The directories of revisions a database of ``migrations`` gets: its own, then those
    of the branches it names in ``ALONGSIDE``."""
    alongside: tuple[str, ...] = getattr(importlib.import_module(migrations), "ALONGSIDE", ())
    return [_directory(migrations) / "versions", *map(_directory, alongside)]


def alembic_config(migrations: str, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_directory(migrations)))
    config.set_main_option("path_separator", "os")
    config.set_main_option(
        "version_locations", os.pathsep.join(map(str, version_locations(migrations)))
    )
    config.attributes["url"] = url
    return config


def upgrade(migrations: str, url: str, revision: str = "heads") -> None:
    """Create the database when missing and migrate it to ``revision`` (every branch's
    head unless told)."""
    ensure_database(url)
    command.upgrade(alembic_config(migrations, url), revision)
