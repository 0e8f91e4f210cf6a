"""Services publish their specs as entry points; the platform finds and runs them by spec."""

from __future__ import annotations

import importlib
import json
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from platform_kit.settings import LOGICAL_TOPICS, Settings, catalog_topics
from platform_kit.spec import (
    ENTRY_POINT_GROUP,
    ConsumerSpec,
    ServiceSpec,
    UnknownService,
    service_names,
    service_spec,
    service_specs,
)

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("auth", "tasks", "accounting", "analytics")


def test_the_entry_points_give_the_four_specs():
    points = {entry.name: entry.value for entry in entry_points(group=ENTRY_POINT_GROUP)}
    assert points == {name: f"{name}.app:SPEC" for name in SERVICES}
    specs = service_specs()
    assert [spec.name for spec in specs] == list(SERVICES) == service_names()
    assert all(isinstance(spec, ServiceSpec) for spec in specs)
    for spec in specs:
        assert importlib.import_module(f"{spec.name}.app").SPEC is spec


def test_a_service_is_found_by_name():
    assert service_spec("tasks").name == "tasks"
    assert service_spec("tasks") is service_specs()[1]
    with pytest.raises(UnknownService, match="'billing'; the services are auth, tasks, "
                                             "accounting, analytics"):
        service_spec("billing")


def test_specs_start_in_the_order_of_their_ports():
    ports = [spec.port for spec in service_specs()]
    assert ports == sorted(set(ports)) == [8000, 8001, 8002, 8003]


def test_each_spec_names_its_migrations_and_database():
    settings = Settings(database_url="postgresql+psycopg://u@db:5432/postgres")
    for spec in service_specs():
        assert spec.migrations == f"{spec.name}.migrations"
        assert (Path(next(iter(importlib.import_module(spec.migrations).__path__)))
                / "versions").is_dir()
        assert spec.database == spec.name
        assert spec.database_url(settings) == f"postgresql+psycopg://u@db:5432/ates_{spec.name}"


def test_the_consumers_read_what_the_catalog_says_they_consume():
    catalog = json.loads((ROOT / "event_schemas" / "catalog.json").read_text())
    consumed: dict[str, set[str]] = {}
    for entry in catalog.values():
        for consumer in entry["consumers"]:
            consumed.setdefault(consumer, set()).add(entry["topic"])
    consumers = {spec.name: spec.consumer for spec in service_specs() if spec.consumer}
    assert set(consumers) == set(consumed) == {"tasks", "accounting", "analytics"}
    for service, consumer in consumers.items():
        assert consumer.name == service
        assert set(consumer.topics) == consumed[service]
        assert consumer.topics == catalog_topics(service)
    assert set(LOGICAL_TOPICS) == {entry["topic"] for entry in catalog.values()}


def test_a_consumer_names_its_group_and_topics_after_the_prefix():
    settings = Settings(topic_prefix="t1.", topic_overrides={"accounts-stream": "accounts"})
    consumer = ConsumerSpec("tasks", ("accounts-stream", "accounts-lifecycle"))
    assert consumer.group_id(settings) == "t1.tasks"
    assert consumer.kafka_topics(settings) == ["accounts", "t1.accounts-lifecycle"]
    assert ConsumerSpec.from_catalog("tasks") == consumer


def test_what_deploy_needs_comes_from_the_specs():
    by_name = {spec.name: spec for spec in service_specs()}
    assert {name for name, spec in by_name.items() if spec.sends_mail} == {"auth", "accounting"}
    assert {name: spec.secrets for name, spec in by_name.items() if spec.secrets} == {
        name: (f"ATES_{name.upper()}_CLIENT_SECRET",)
        for name in ("tasks", "accounting", "analytics")}
    assert [name for name, spec in by_name.items() if spec.seed] == ["auth"]
    commands = {name: [command.name for command in spec.commands()]
                for name, spec in by_name.items() if spec.commands}
    assert set(commands) == {"auth", "accounting", "analytics"}
    assert all(commands.values())
    settings = Settings()
    assert {name: spec.worker_names(settings) for name, spec in by_name.items()} == {
        "auth": ["relay"], "tasks": ["relay", "consumer"],
        "accounting": ["relay", "consumer", "scheduler", "mailer"], "analytics": ["stream"]}


def test_a_service_database_elsewhere_is_read_for_any_service():
    settings = Settings.from_env({
        "ATES_DATABASE_URL": "postgresql://u@db/postgres",
        "ATES_TASKS_DATABASE_URL": "postgresql://u@other/tasks_db",
        "ATES_BILLING_DATABASE_URL": "postgresql://u@third/billing",
    })
    assert settings.database_for("tasks") == "postgresql+psycopg://u@other/tasks_db"
    assert settings.database_for("billing") == "postgresql+psycopg://u@third/billing"
    assert settings.database_for("auth") == "postgresql+psycopg://u@db/ates_auth"
