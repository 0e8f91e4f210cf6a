from __future__ import annotations

import time

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Text, func, insert, select

from event_schemas import default_registry
from messaging.consumer import ConsumerRuntime, HandlerRegistry
from messaging.dlq import read_all
from messaging.outbox import Outbox
from messaging.tables import create_messaging_tables
from platform_kit.db import make_session_factory

effects_metadata = MetaData()
effects = Table(
    "effects",
    effects_metadata,
    Column("event_id", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("seq", Integer, nullable=False),
)


@pytest.fixture
def engine(make_database):
    engine = make_database("messaging")
    create_messaging_tables(engine)
    effects_metadata.create_all(engine)
    return engine


@pytest.fixture
def sessions(engine):
    return make_session_factory(engine)


@pytest.fixture
def outbox(settings):
    return Outbox(settings)


def account_event(account_id: str, version: int = 1, **overrides):
    data = {
        "account_id": account_id,
        "email": f"popug-{account_id[:8]}@popug.inc",
        "full_name": "Popug",
        "role": "worker",
        "active": True,
        "version": version,
    } | overrides
    return default_registry().build("account.updated", data, source="test")


def record_effect(session, event):
    session.execute(
        insert(effects).values(
            event_id=event.id, key=event.data["account_id"], seq=event.data["version"]
        )
    )


def handlers_recording(event_type="account.updated", versions=(1,), handler=record_effect):
    registry = HandlerRegistry()
    registry.register(event_type, versions, handler)
    return registry


def make_runtime(engine, settings, handlers, name="consumer", **kwargs):
    return ConsumerRuntime(
        name,
        engine,
        settings,
        handlers,
        topics=["accounts-stream"],
        backoff_base=0.01,
        backoff_max=0.05,
        **kwargs,
    )


def poll_until(runtime, condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runtime.poll_once(0.5)
        if condition():
            return
    raise AssertionError("condition not reached in time")


def consume_until(engine, settings, handlers, condition, **kwargs):
    """Poll a consumer (see ``make_runtime``) until ``condition`` holds, then close it."""
    runtime = make_runtime(engine, settings, handlers, **kwargs)
    try:
        poll_until(runtime, condition)
    finally:
        runtime.close()


def effect_rows(engine):
    with engine.connect() as conn:
        return conn.execute(select(effects.c.event_id, effects.c.key, effects.c.seq)).all()


def effect_count(engine):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(effects)).scalar()


def read_topic(settings, topic, timeout=10.0):
    """Every message currently in ``topic`` (all partitions)."""
    return read_all(settings.kafka_bootstrap, topic, timeout)
