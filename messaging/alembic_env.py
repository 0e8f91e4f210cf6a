"""The body of every service's ``migrations/env.py`` (online mode only).

The revisions run are the service's and, alongside, the messaging tables' branch
(``messaging/migrations``). The service's first revision depends on the branch's first and
its revision that once added ``outbox.renderer`` on the branch's revision that adds it now:
a database migrated before the branch existed records only the service's revisions, and
those dependencies tell which of the branch's it has already.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import MetaData, create_engine, pool

from messaging.tables import messaging_metadata


def run_migrations(service_metadata: MetaData) -> None:
    config = context.config
    url: str | None = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database to migrate: pass its URL as the config's 'url'")
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
