"""The outbox and inbox are the messaging branch's, migrated in every service's database
beside the service's own branch. A database migrated while each service's first revision
created them (and a later one gave the outbox its ``renderer``) records only the service's
revisions: it upgrades to the new layout without creating them again, and keeps its rows."""

from __future__ import annotations

import importlib
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text

from messaging.tables import messaging_metadata
from platform_kit.migrations import upgrade

# Each service's head before the messaging tables had a branch of their own.
OLD_HEADS = {"auth": "0003", "tasks": "0004", "accounting": "0011", "analytics": "0005"}
EVENT = uuid.UUID("00000000-0000-4000-8000-000000000001")


def recorded(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.scalars(text("SELECT version_num FROM alembic_version")))


def as_recorded_before_the_branch(engine: Engine, revision: str) -> None:
    """The schema is the same as the old revisions made; this is what they recorded."""
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM alembic_version"))
        connection.execute(text("INSERT INTO alembic_version VALUES (:r)"), {"r": revision})


def write_outbox_and_inbox(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO outbox (event_id, topic, key, event_type, dataversion, payload)"
            " VALUES (:event, 'topic', 'key', 'thing.happened', 1, 'payload')"
        ), {"event": EVENT})
        connection.execute(text(
            "INSERT INTO inbox (consumer, event_id, event_type)"
            " VALUES ('consumer', :event, 'thing.happened')"
        ), {"event": EVENT})


def assert_kept(engine: Engine) -> None:
    with engine.connect() as connection:
        assert connection.execute(text("SELECT event_id, payload FROM outbox")).all() == [
            (EVENT, b"payload")]
        assert connection.execute(text("SELECT consumer, event_id FROM inbox")).all() == [
            ("consumer", EVENT)]


@pytest.mark.parametrize("service", sorted(OLD_HEADS))
def test_a_database_at_the_old_head_upgrades_keeping_its_rows(make_database, service):
    engine = make_database(f"old_head_{service}")
    url = engine.url.render_as_string(hide_password=False)
    upgrade(f"{service}.migrations", url, OLD_HEADS[service])
    as_recorded_before_the_branch(engine, OLD_HEADS[service])
    write_outbox_and_inbox(engine)

    upgrade(f"{service}.migrations", url)

    assert_kept(engine)
    models = importlib.import_module(f"{service}.models").Base.metadata
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, [models, messaging_metadata]) == []


# tasks' first revision wrote the outbox out, before deferred rows; analytics' made it from
# the models of the day it ran, so a database it made lately has the renderer already.
@pytest.mark.parametrize("service,had_renderer", [("tasks", False), ("analytics", True)])
def test_an_outbox_of_a_first_revision_ends_with_its_renderer(
    make_database, service, had_renderer
):
    engine = make_database(f"first_revision_{service}")
    url = engine.url.render_as_string(hide_password=False)
    upgrade(f"{service}.migrations", url, "0001")
    as_recorded_before_the_branch(engine, "0001")
    if had_renderer:
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE outbox ADD COLUMN renderer text"))
    write_outbox_and_inbox(engine)

    upgrade(f"{service}.migrations", url)

    assert "0001" not in recorded(engine)
    assert_kept(engine)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT renderer FROM outbox")) is None
