"""The body of every service's ``migrations/env.py`` (online mode only)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import MetaData, create_engine, pool

from messaging.tables import messaging_metadata


def run_migrations(service_metadata: MetaData) -> None:
    config = context.config
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=[service_metadata, messaging_metadata],
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
