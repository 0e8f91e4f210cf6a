"""The schema registry: examples, building, parsing and its typed errors."""

from __future__ import annotations

import copy
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from rfc3339_validator import validate_rfc3339

from event_schemas import (
    Event,
    EventSchemaError,
    InvalidEnvelope,
    InvalidEventData,
    SchemaRegistry,
    UnknownEventType,
    UnknownEventVersion,
    default_registry,
)
from event_schemas._loader import PACKAGE_ROOT

TASK_ID = "5c8e1f3a-7b2d-4a9e-b6c4-0d1f3e5a7b92"
ACCOUNT_ID = "9b2d7e4f-1a3c-4b5d-8e6f-2c4a6b8d0e12"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

EXPECTED = {
    "account.created": ("accounts-stream", "cud", "account_id", "auth"),
    "account.updated": ("accounts-stream", "cud", "account_id", "auth"),
    "account.deleted": ("accounts-stream", "cud", "account_id", "auth"),
    "account.role_changed": ("accounts-lifecycle", "business", "account_id", "auth"),
    "account.logged_in": ("accounts-lifecycle", "business", "account_id", "auth"),
    "account.login_failed": ("accounts-lifecycle", "business", "account_id", "auth"),
    "task.created": ("tasks-stream", "cud", "task_id", "tasks"),
    "task.updated": ("tasks-stream", "cud", "task_id", "tasks"),
    "task.added": ("tasks-lifecycle", "business", "task_id", "tasks"),
    "task.assigned": ("tasks-lifecycle", "business", "task_id", "tasks"),
    "task.completed": ("tasks-lifecycle", "business", "task_id", "tasks"),
    "task.priced": ("accounting-lifecycle", "business", "task_id", "accounting"),
    "transaction.applied": ("accounting-lifecycle", "business", "account_id", "accounting"),
    "transaction.corrected": ("accounting-lifecycle", "business", "account_id", "accounting"),
    "payment.made": ("accounting-lifecycle", "business", "account_id", "accounting"),
    "billing_cycle.closed": ("accounting-lifecycle", "business", "day", "accounting"),
}


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return default_registry()


def _all_versions() -> list[tuple[str, int]]:
    reg = default_registry()
    return [(t, v) for t in reg.types() for v in reg.versions(t)]


def _task_v2() -> dict[str, Any]:
    return copy.deepcopy(default_registry().schema("task.created", 2)["examples"][0])


def _envelope(**changes: Any) -> dict[str, Any]:
    event = default_registry().build("task.created", _task_v2(), source="tasks")
    envelope = event.envelope()
    envelope.update(changes)
    return envelope


def test_default_registry_is_cached() -> None:
    assert default_registry() is default_registry()


def test_types_match_catalog(registry: SchemaRegistry) -> None:
    assert set(registry.types()) == set(EXPECTED)
    assert registry.versions("task.created") == [1, 2]
    assert registry.versions("task.updated") == [1, 2]
    assert registry.latest_version("task.created") == 2
    assert registry.latest_version("account.created") == 1


@pytest.mark.parametrize("event_type", sorted(EXPECTED))
def test_catalog_entries(registry: SchemaRegistry, event_type: str) -> None:
    topic, kind, key, producer = EXPECTED[event_type]
    entry = registry.catalog_entry(event_type)
    assert (entry["topic"], entry["kind"], entry["key"], entry["producer"]) == (
        topic,
        kind,
        key,
        producer,
    )
    assert registry.topic_of(event_type) == topic
    # Sign-in events have no consumer inside the platform: they are for security monitoring.
    assert entry["consumers"] or event_type.startswith("account.log")
    assert entry["description"]


def test_catalog_entry_is_a_copy(registry: SchemaRegistry) -> None:
    registry.catalog_entry("task.created")["consumers"].append("nobody")
    assert "nobody" not in registry.catalog_entry("task.created")["consumers"]


@pytest.mark.parametrize(("event_type", "version"), _all_versions())
def test_every_example_validates_and_round_trips(
    registry: SchemaRegistry, event_type: str, version: int
) -> None:
    schema = registry.schema(event_type, version)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f"/{event_type}/{version}.json")
    assert schema["examples"]
    for example in schema["examples"]:
        registry.validate(event_type, version, example)
        event = registry.build(event_type, example, source="test", version=version)
        parsed = registry.parse(event.to_json())
        assert parsed == event
        assert registry.key_of(parsed) == example[registry.catalog_entry(event_type)["key"]]


def test_build_defaults(registry: SchemaRegistry) -> None:
    event = registry.build("task.created", _task_v2(), source="tasks")
    assert event.dataversion == 2
    assert uuid.UUID(event.id).version == 4
    assert validate_rfc3339(event.time) and event.time.endswith("Z")
    assert event.traceparent is None
    assert registry.key_of(event) == TASK_ID


def test_build_copies_data(registry: SchemaRegistry) -> None:
    data = _task_v2()
    event = registry.build("task.created", data, source="tasks")
    data["title"] = "changed"
    assert event.data["title"] == "Fix the button"


def test_envelope_and_json(registry: SchemaRegistry) -> None:
    event = registry.build(
        "task.created",
        _task_v2(),
        source="tasks",
        id="0b7e6f52-3c1d-4a8e-9f20-5d6c7b8a9e01",
        time="2026-11-22T10:15:00.123456Z",
        traceparent=TRACEPARENT,
    )
    envelope = event.envelope()
    assert list(envelope) == [
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "datacontenttype",
        "dataversion",
        "data",
        "traceparent",
    ]
    assert envelope["specversion"] == "1.0"
    assert envelope["datacontenttype"] == "application/json"
    raw = event.to_json()
    assert raw == json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
    assert b", " not in raw and b": " not in raw
    assert json.loads(raw) == envelope
    without = registry.build("task.created", _task_v2(), source="tasks")
    assert "traceparent" not in without.envelope()


def test_to_json_is_utf8(registry: SchemaRegistry) -> None:
    data = dict(_task_v2(), title="Починить кнопку")
    raw = registry.build("task.created", data, source="tasks").to_json()
    assert "Починить кнопку".encode() in raw
    assert registry.parse(raw).data["title"] == "Починить кнопку"


@pytest.mark.parametrize("raw_form", ["bytes", "str", "dict"])
def test_parse_accepts_every_form(registry: SchemaRegistry, raw_form: str) -> None:
    event = registry.build("task.created", _task_v2(), source="tasks", traceparent=TRACEPARENT)
    raw = {"bytes": event.to_json(), "str": event.to_json().decode(), "dict": event.envelope()}
    assert registry.parse(raw[raw_form]) == event


def test_parse_reads_version_one(registry: SchemaRegistry) -> None:
    data = registry.schema("task.created", 1)["examples"][0]
    event = registry.build("task.created", data, source="tasks", version=1)
    parsed = registry.parse(event.to_json())
    assert parsed.dataversion == 1
    assert parsed.data["title"] == "[UBERPOP-42] Fix the button"


def test_parse_ignores_unknown_extension_attributes(registry: SchemaRegistry) -> None:
    event = registry.parse(_envelope(partitionkey="x"))
    assert event.type == "task.created"


def test_parse_drops_malformed_traceparent(registry: SchemaRegistry) -> None:
    assert registry.parse(_envelope(traceparent="garbage")).traceparent is None
    assert registry.parse(_envelope(traceparent=TRACEPARENT)).traceparent == TRACEPARENT


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"\xff\xfe", "", "[1, 2]", "42", "null"],
    ids=["malformed", "not-utf8", "empty", "array", "number", "null"],
)
def test_parse_rejects_non_objects(registry: SchemaRegistry, raw: bytes | str) -> None:
    with pytest.raises(InvalidEnvelope):
        registry.parse(raw)


def _without(name: str) -> dict[str, Any]:
    envelope = _envelope()
    del envelope[name]
    return envelope


@pytest.mark.parametrize(
    ("envelope", "fragment"),
    [
        (_without("specversion"), "specversion"),
        (_envelope(specversion="0.3"), "specversion"),
        (_without("id"), "'id' is missing"),
        (_envelope(id="not-a-uuid"), "'id' must be a UUID"),
        (_envelope(id=None), "'id' must be a UUID"),
        (_envelope(id=uuid.UUID(TASK_ID).int), "'id' must be a UUID"),
        (_envelope(source=None), "'source' must be a non-empty string"),
        (_envelope(time=None), "'time' must be an RFC 3339"),
        (_envelope(time="2026-02-30T10:15:00Z"), "'time' must be an RFC 3339"),
        (_without("source"), "'source'"),
        (_envelope(source=""), "'source'"),
        (_without("type"), "'type'"),
        (_envelope(type=7), "'type'"),
        (_without("time"), "'time'"),
        (_envelope(time="22.11.2026 10:15"), "'time' must be an RFC 3339"),
        (_without("dataversion"), "'dataversion'"),
        (_envelope(dataversion=0), "'dataversion' must be an integer >= 1"),
        (_envelope(dataversion="2"), "'dataversion'"),
        (_envelope(dataversion=True), "'dataversion'"),
        (_envelope(dataversion=2.0), "'dataversion'"),
        (_without("data"), "'data'"),
        (_envelope(data=[1]), "'data' must be a JSON object"),
        (_envelope(data=None), "'data'"),
        (_envelope(datacontenttype="text/plain"), "datacontenttype"),
    ],
)
def test_parse_rejects_bad_envelopes(
    registry: SchemaRegistry, envelope: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidEnvelope, match=fragment.replace("(", r"\(")):
        registry.parse(json.dumps(envelope))


def test_unknown_type(registry: SchemaRegistry) -> None:
    with pytest.raises(UnknownEventType, match="task.exploded"):
        registry.parse(_envelope(type="task.exploded"))
    with pytest.raises(UnknownEventType):
        registry.versions("task.exploded")
    with pytest.raises(UnknownEventType):
        registry.build("task.exploded", {}, source="tasks")
    with pytest.raises(UnknownEventType):
        registry.topic_of("task.exploded")


def test_unknown_version(registry: SchemaRegistry) -> None:
    with pytest.raises(UnknownEventVersion, match="no schema version 9"):
        registry.parse(_envelope(dataversion=9))
    with pytest.raises(UnknownEventVersion):
        registry.validate("task.created", 3, _task_v2())
    with pytest.raises(UnknownEventVersion):
        registry.schema("account.created", 2)


def _broken(**changes: Any) -> dict[str, Any]:
    data = _task_v2()
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "path", "reason"),
    [
        (_broken(task_id="not-a-uuid"), "$.task_id", "is not a 'uuid'"),
        (_broken(assignee_id="5c8e1f3a7b2d4a9eb6c40d1f3e5a7b92"), "$.assignee_id", "uuid"),
        (_broken(created_at="2026-11-22 10:15"), "$.created_at", "is not a 'date-time'"),
        (_broken(created_at="2026-11-22T10:15:00"), "$.created_at", "date-time"),
        (_broken(completed_at="yesterday"), "$.completed_at", "date-time"),
        (_broken(status="closed"), "$.status", "is not one of"),
        (_broken(extra=1), "$", "Additional properties are not allowed"),
        (_broken(title="[UBERPOP-42] Fix the button"), "$.title", "does not match"),
        (_broken(title=""), "$.title", "should be non-empty"),
        (_broken(title="x" * 201), "$.title", "is too long"),
        (_broken(jira_id="uberpop-42"), "$.jira_id", "does not match"),
        (_broken(version=0), "$.version", "less than the minimum"),
        (_broken(version=1.0), "$.version", "is not of type 'integer'"),
        ({k: v for k, v in _task_v2().items() if k != "jira_id"}, "$", "'jira_id' is a required"),
    ],
)
def test_invalid_data_names_path_and_reason(
    registry: SchemaRegistry, data: dict[str, Any], path: str, reason: str
) -> None:
    with pytest.raises(InvalidEventData) as caught:
        registry.validate("task.created", 2, data)
    message = str(caught.value)
    assert f"{path}: " in message and reason in message
    assert any(error.startswith(f"{path}: ") for error in caught.value.errors)
    with pytest.raises(InvalidEventData):
        registry.build("task.created", data, source="tasks")
    envelope = _envelope()
    envelope["data"] = data
    with pytest.raises(InvalidEventData):
        registry.parse(envelope)


@pytest.mark.parametrize(
    ("event_type", "change"),
    [
        ("account.created", {"email": "not-an-email"}),
        ("account.created", {"role": "boss"}),
        ("account.role_changed", {"new_role": None}),
        ("transaction.applied", {"day": "2026-13-01"}),
        ("transaction.applied", {"amount": 1437}),
        ("transaction.applied", {"amount": -14.37}),
        ("transaction.applied", {"task_id": None}),
        ("transaction.corrected", {"amount": 0}),
        ("transaction.corrected", {"reason": ""}),
        ("transaction.corrected", {"counts_as": "payout"}),
        ("transaction.corrected", {"corrects_transaction_id": None}),
        ("transaction.corrected", {"type": "payout"}),
        ("task.priced", {"fee": 999}),
        ("task.priced", {"reward": 4001}),
        ("task.assigned", {"reason": "random"}),
        ("payment.made", {"amount": 0}),
        ("billing_cycle.closed", {"total_paid": -1}),
    ],
)
def test_other_violations(registry: SchemaRegistry, event_type: str, change: dict) -> None:
    data = dict(registry.schema(event_type, 1)["examples"][0], **change)
    with pytest.raises(InvalidEventData):
        registry.validate(event_type, 1, data)


def test_payout_transaction_rules(registry: SchemaRegistry) -> None:
    payout = registry.schema("transaction.applied", 1)["examples"][2]
    assert payout["type"] == "payout"
    registry.validate("transaction.applied", 1, payout)
    with pytest.raises(InvalidEventData, match=r"\$\.task_id"):
        registry.validate("transaction.applied", 1, dict(payout, task_id=TASK_ID))
    with pytest.raises(InvalidEventData, match=r"\$\.amount"):
        registry.validate("transaction.applied", 1, dict(payout, amount=1773))


def test_an_adjustment_names_no_task_and_corrects_nothing(registry: SchemaRegistry) -> None:
    adjustment = registry.schema("transaction.corrected", 1)["examples"][1]
    assert adjustment["type"] == "adjustment"
    registry.validate("transaction.corrected", 1, adjustment)
    with pytest.raises(InvalidEventData, match=r"\$\.task_id"):
        registry.validate("transaction.corrected", 1, dict(adjustment, task_id=TASK_ID))
    with pytest.raises(InvalidEventData, match=r"\$\.corrects_transaction_id"):
        registry.validate("transaction.corrected", 1,
                          dict(adjustment, corrects_transaction_id=TASK_ID))


def test_build_rejects_bad_envelope_values(registry: SchemaRegistry) -> None:
    with pytest.raises(InvalidEnvelope):
        registry.build("task.created", _task_v2(), source="tasks", id="42")
    with pytest.raises(InvalidEnvelope):
        registry.build("task.created", _task_v2(), source="tasks", time="now")
    with pytest.raises(InvalidEnvelope):
        registry.build("task.created", _task_v2(), source="")
    with pytest.raises(InvalidEnvelope):
        registry.build("task.created", _task_v2(), source="tasks", traceparent="nope")


def test_key_of_requires_the_key_field(registry: SchemaRegistry) -> None:
    event = Event("task.created", 2, {}, "tasks", str(uuid.uuid4()), "2026-11-22T10:15:00Z")
    with pytest.raises(InvalidEventData, match="task_id"):
        registry.key_of(event)
    day_event = registry.build(
        "billing_cycle.closed",
        registry.schema("billing_cycle.closed", 1)["examples"][0],
        source="accounting",
    )
    assert registry.key_of(day_event) == "2026-11-22"


def test_errors_share_a_base() -> None:
    for error in (UnknownEventType, UnknownEventVersion, InvalidEnvelope, InvalidEventData):
        assert issubclass(error, EventSchemaError)


def test_registry_refuses_a_broken_tree(tmp_path: Path) -> None:
    root = tmp_path / "event_schemas"
    shutil.copytree(PACKAGE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    assert SchemaRegistry(root).types() == default_registry().types()
    (root / "tasks" / "task.created" / "3.json").write_text('{"type": "nope"}')
    with pytest.raises(EventSchemaError, match="not a valid JSON Schema"):
        SchemaRegistry(root)


def test_registry_refuses_a_type_missing_from_the_catalog(tmp_path: Path) -> None:
    root = tmp_path / "event_schemas"
    shutil.copytree(PACKAGE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    shutil.copytree(root / "tasks" / "task.added", root / "tasks" / "task.removed")
    with pytest.raises(EventSchemaError, match="task.removed"):
        SchemaRegistry(root)
