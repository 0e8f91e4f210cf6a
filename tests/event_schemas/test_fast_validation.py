"""The compiled acceptor must never accept what the reference validator rejects."""

from __future__ import annotations

import copy
import itertools

import pytest

from event_schemas import InvalidEventData, default_registry
from event_schemas._loader import (
    FORMAT_CHECKER,
    _holds_float,
    compile_fast_acceptor,
    compile_schema,
    is_rfc3339,
)

ODD_VALUES = [None, "", "x", "[UBERPOP-1] bracketed", 0, -1, 1, 1500, 1000.0, 1.5, True, [],
              {}, "not-a-uuid", "2026-13-01", "2026-11-22T25:00:00Z", "2026-11-22",
              "2026-11-22T10:15:00Z", "9b2d7e4f-1a3c-4b5d-8e6f-2c4a6b8d0e12", "a@b.c",
              "UBERPOP-42", "x" * 250, "fee", "payout", "open", "worker"]


def mutations(example: dict):
    yield example
    for key in example:
        dropped = {k: v for k, v in example.items() if k != key}
        yield dropped
        for value in ODD_VALUES:
            changed = copy.deepcopy(example)
            changed[key] = value
            yield changed
    yield {**example, "unexpected": 1}


def schemas():
    registry = default_registry()
    for event_type in registry.types():
        for version in registry.versions(event_type):
            yield pytest.param(registry.schema(event_type, version), id=f"{event_type}-v{version}")


@pytest.mark.parametrize("schema", list(schemas()))
def test_acceptor_agrees_with_reference_validator(schema):
    accepts = compile_fast_acceptor(schema)
    reference = compile_schema(schema)
    checked = rejected = 0
    for example in schema["examples"]:
        for data in mutations(example):
            valid = reference.is_valid(data)
            assert accepts(data) == valid, f"acceptor and reference disagree on {data}"
            checked += 1
            rejected += not valid
    assert rejected > 0 and checked > rejected


def test_float_money_is_rejected_with_the_reference_message():
    registry = default_registry()
    example = copy.deepcopy(registry.schema("task.priced", 1)["examples"][0])
    example["fee"] = float(example["fee"])
    with pytest.raises(InvalidEventData, match="fee"):
        registry.validate("task.priced", 1, example)


UUID_SPELLINGS = [
    "9b2d7e4f-1a3c-4b5d-8e6f-2c4a6b8d0e12",  # canonical
    "9B2D7E4F-1A3C-4B5D-8E6F-2C4A6B8D0E12",  # upper case
    "9b2d7e4f-1a3c-4b5d-8e6f-2c4a6b8d0e1-2",  # a dash too many, 32 digits
    "{9b2d7e4f1a3c4b5d8e6f2c4a6b8d0e12}",
    "9b2d7e4f1a3c4b5d8e6f2c4a6b8d0e12",
    "9b2d7e4f-1a3c-4b5d-8e6f-2c4a6b8d0e1",  # a digit short
    "9b2d7e4f-1a3c-4b5d-8e6f-2c4a6b8d0e1g",
]


@pytest.mark.parametrize("spelling", UUID_SPELLINGS)
def test_uuid_spellings_are_decided_by_the_reference_validator(spelling):
    registry = default_registry()
    schema = registry.schema("task.assigned", 1)
    data = {**schema["examples"][0], "task_id": spelling}
    accepts, reference = compile_fast_acceptor(schema), compile_schema(schema)
    assert not accepts(data) or reference.is_valid(data)
    if reference.is_valid(data):
        registry.validate("task.assigned", 1, data)  # the slow path has the last word
    else:
        with pytest.raises(InvalidEventData):
            registry.validate("task.assigned", 1, data)


def test_the_canonical_spelling_takes_the_fast_path():
    schema = default_registry().schema("task.assigned", 1)
    data = {**schema["examples"][0], "task_id": UUID_SPELLINGS[1]}
    assert compile_fast_acceptor(schema)(data)


TIMESTAMPS = [
    "2026-11-22T10:15:00Z",
    "2026-11-22T10:15:00.123456Z",
    "2026-11-22T10:15:00.123456789Z",  # more digits than the fast path reads
    "2026-11-22T10:15:00+01:00",
    "2026-11-22T10:15:00-23:59",
    "2026-11-22t10:15:00z",  # lower case: allowed by RFC 3339
    "2016-12-31T23:59:60Z",  # a leap second
    "2026-02-29T10:15:00Z",  # not a leap year
    "2024-02-29T10:15:00Z",
    "2026-11-31T10:15:00Z",
    "2026-11-22T24:00:00Z",
    "2026-11-22T10:60:00Z",
    "2026-11-22T10:15:00+24:00",
    "2026-11-22T10:15:00",
    "2026-11-22 10:15:00Z",
    "2026-11-22T10:15Z",
    "20261122T101500Z",
]


@pytest.mark.parametrize("timestamp", TIMESTAMPS)
def test_timestamps_are_judged_as_the_reference_checker_judges_them(timestamp):
    assert is_rfc3339(timestamp) == FORMAT_CHECKER.conforms(timestamp, "date-time")


def test_a_float_deep_inside_data_is_noticed():
    assert _holds_float({"a": [1, {"b": [2, 3.0]}]})
    assert not _holds_float({"a": [1, {"b": [2, "3.0", None, True]}], "c": "x"})
    assert _holds_float([1, 2, 0.5]) and not _holds_float([])


MISSING = object()
TRANSACTION_TYPES = ["fee", "reward", "payout", "reversal", "adjustment", "Fee", "", None, 1, True]
AMOUNTS = [-1437, -1, 0, 1, 3210, True, False, "5", None, MISSING]
TASK_IDS = ["5c8e1f3a-7b2d-4a9e-b6c4-0d1f3e5a7b92", None, "not-a-uuid", 7, MISSING]


def branch_cases(example: dict):
    """Every mix of the fields the ``if``/``then``/``else`` blocks read or constrain."""
    kinds = [*TRANSACTION_TYPES, MISSING]
    for kind, amount, task_id in itertools.product(kinds, AMOUNTS, TASK_IDS):
        data = copy.deepcopy(example)
        for name, value in (("type", kind), ("amount", amount), ("task_id", task_id)):
            if value is MISSING:
                data.pop(name, None)
            else:
                data[name] = value
        yield data
        if "corrects_transaction_id" in data:
            for corrected in (None, data["transaction_id"], 3):
                yield {**data, "corrects_transaction_id": corrected}
            yield {k: v for k, v in data.items() if k != "corrects_transaction_id"}


@pytest.mark.parametrize("event_type", ["transaction.applied", "transaction.corrected"])
def test_conditional_branches_agree_with_reference_validator(event_type):
    schema = default_registry().schema(event_type, 1)
    accepts, reference = compile_fast_acceptor(schema), compile_schema(schema)
    accepted = rejected = 0
    for example in schema["examples"]:
        for data in branch_cases(example):
            valid = reference.is_valid(data)
            assert accepts(data) == valid, f"acceptor and reference disagree on {data}"
            accepted += valid
            rejected += not valid
    assert accepted > 0 and rejected > 0


def conditional_schema(**extra):
    return {
        "type": "object",
        "properties": {"kind": {"type": "string"}, "n": {"type": "integer"}},
        **extra,
    }


SHAPED_SCHEMAS = {
    "top-level if/then/else": conditional_schema(
        **{"if": {"properties": {"kind": {"const": "a"}}},
           "then": {"properties": {"n": {"minimum": 1}}},
           "else": {"required": ["n"], "properties": {"n": {"maximum": -1}}}}
    ),
    "two properties in one if": conditional_schema(
        allOf=[{"if": {"properties": {"kind": {"const": "a"}, "tag": {"const": "x"}}},
                "then": {"required": ["n"]}}]
    ),
    "if with required": conditional_schema(
        allOf=[{"if": {"required": ["kind"], "properties": {"kind": {"const": "a"}}},
                "then": {"properties": {"n": {"minimum": 1}}}}]
    ),
    "if with a non-string const": conditional_schema(
        allOf=[{"if": {"properties": {"n": {"const": 0}}}, "then": {"required": ["kind"]}},
               {"if": {"properties": {"kind": {"const": "b"}}}, "then": {"required": ["n"]}}]
    ),
    "if with an enum": conditional_schema(
        allOf=[{"if": {"properties": {"kind": {"enum": ["a", "b"]}}},
                "then": {"properties": {"n": {"maximum": 0}}}}]
    ),
    "if without then": conditional_schema(
        allOf=[{"if": {"properties": {"kind": {"const": "a"}}}}, {"required": ["kind"]}]
    ),
}
SHAPED_DATA = [
    {}, {"kind": "a"}, {"kind": "b"}, {"kind": "a", "n": 1}, {"kind": "a", "n": 0},
    {"kind": "a", "n": -1}, {"kind": "b", "n": -1}, {"kind": "b", "n": 0}, {"n": 0},
    {"n": 5}, {"n": -5}, {"kind": "a", "tag": "x"}, {"kind": "a", "tag": "x", "n": 2},
    {"kind": "a", "tag": "y"}, {"tag": "x"}, {"kind": 1, "n": 0}, {"kind": None},
    {"kind": "a", "n": True}, [], "a", None,
]


@pytest.mark.parametrize("schema", SHAPED_SCHEMAS.values(), ids=SHAPED_SCHEMAS.keys())
def test_any_shape_of_conditional_agrees_with_reference_validator(schema):
    accepts, reference = compile_fast_acceptor(schema), compile_schema(schema)
    for data in SHAPED_DATA:
        assert accepts(data) == reference.is_valid(data), f"disagreement on {data}"


EXCLUDING_SCHEMAS = {
    "typed": {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "not": {"const": 0}},
            "kind": {"type": ["string", "null"], "not": {"const": "none"}},
        },
    },
    "untyped": {"properties": {"n": {"not": {"const": 0}}, "kind": {"not": {"const": "none"}}}},
    "not a constant": {"properties": {"n": {"not": {"minimum": 0}}}},
}
EXCLUDING_DATA = [
    {}, {"n": 0}, {"n": 1}, {"n": -1}, {"n": True}, {"n": False}, {"n": "0"}, {"n": None},
    {"n": [0]}, {"kind": "none"}, {"kind": "some"}, {"kind": None}, {"kind": 0},
    {"n": 5, "kind": "none"}, {"n": 5, "kind": "some"}, [], "none", 0, None,
]


@pytest.mark.parametrize("schema", EXCLUDING_SCHEMAS.values(), ids=EXCLUDING_SCHEMAS.keys())
def test_an_excluded_constant_is_never_accepted(schema):
    accepts, reference = compile_fast_acceptor(schema), compile_schema(schema)
    for data in EXCLUDING_DATA:
        assert not accepts(data) or reference.is_valid(data), f"accepted invalid {data}"


def test_values_other_than_an_excluded_constant_take_the_fast_path():
    accepts = compile_fast_acceptor(EXCLUDING_SCHEMAS["typed"])
    assert accepts({"n": 5, "kind": "some"}) and accepts({"n": -1, "kind": None})
    assert not accepts({"n": 0}) and not accepts({"kind": "none"})
