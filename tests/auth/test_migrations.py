"""The first migration creates exactly what the models describe, and undoes it."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, inspect

from auth.models import Base
from messaging.tables import messaging_metadata
from platform_kit.migrations import alembic_config, upgrade


def described_by_code() -> MetaData:
    merged = MetaData()
    for table in [*Base.metadata.tables.values(), *messaging_metadata.tables.values()]:
        table.to_metadata(merged)
    return merged


def test_migrated_schema_matches_the_models(make_database):
    engine = make_database("auth_migrations")
    url = engine.url.render_as_string(hide_password=False)
    upgrade("auth.migrations", url)

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, described_by_code()) == []

    command.downgrade(alembic_config("auth.migrations", url), "base")
    with engine.connect() as conn:
        assert inspect(conn).get_table_names() == ["alembic_version"]
