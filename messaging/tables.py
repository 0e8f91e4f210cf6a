"""The outbox and inbox tables that every service keeps in its own database.

Their migrations are a branch of their own (``messaging/migrations``) that every service's
database gets alongside the service's; the shared migrations environment includes
``messaging_metadata`` in the ``target_metadata``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

messaging_metadata = MetaData()

outbox = Table(
    "outbox",
    messaging_metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
    Column("topic", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("dataversion", Integer, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True)),
    # Set on a deferred row: the name of what renders its events when the relay publishes
    # them (messaging.outbox.Outbox.defer); its payload then holds the renderer's arguments.
    Column("renderer", Text),
    Index("outbox_unsent", "id", postgresql_where=text("sent_at IS NULL")),
)

inbox = Table(
    "inbox",
    messaging_metadata,
    Column("consumer", Text, nullable=False),
    Column("event_id", UUID(as_uuid=False), nullable=False),
    Column("event_type", Text, nullable=False),
    Column("handled_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("consumer", "event_id"),
)


def create_messaging_tables(bind: Engine | Connection) -> None:
    """Create the outbox and inbox as they are now (test fixtures, benchmarks)."""
    messaging_metadata.create_all(bind)

