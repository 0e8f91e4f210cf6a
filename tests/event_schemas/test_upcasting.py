"""task.created / task.updated: v1 (Jira key in the title) <-> v2 (separate jira_id)."""

from __future__ import annotations

from typing import Any

import pytest

from event_schemas import (
    InvalidEventData,
    default_registry,
    split_jira_title,
    task_v1_to_v2,
    task_v2_to_v1,
)


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("[UBERPOP-42] Fix the button", ("Fix the button", "UBERPOP-42")),
        ("  [UBERPOP-42]   Fix the button  ", ("Fix the button", "UBERPOP-42")),
        ("[UBERPOP-42]Fix", ("Fix", "UBERPOP-42")),
        ("[POP2-7] Feed [the] parrots", ("Feed [the] parrots", "POP2-7")),
        ("Fix the button", ("Fix the button", None)),
        ("  Fix the button ", ("Fix the button", None)),
        ("UBERPOP-42 Fix the button", ("UBERPOP-42 Fix the button", None)),
        ("[uberpop-42] Fix", ("[uberpop-42] Fix", None)),
        ("Fix [UBERPOP-42]", ("Fix [UBERPOP-42]", None)),
        ("[UBERPOP-42]", ("", "UBERPOP-42")),
    ],
)
def test_split_jira_title(title: str, expected: tuple[str, str | None]) -> None:
    assert split_jira_title(title) == expected


def _v1(**changes: Any) -> dict[str, Any]:
    data = dict(default_registry().schema("task.created", 1)["examples"][0])
    data.update(changes)
    return data


def _v2(**changes: Any) -> dict[str, Any]:
    data = dict(default_registry().schema("task.created", 2)["examples"][0])
    data.update(changes)
    return data


@pytest.mark.parametrize("event_type", ["task.created", "task.updated"])
def test_examples_convert_both_ways(event_type: str) -> None:
    registry = default_registry()
    for v1, v2 in zip(
        registry.schema(event_type, 1)["examples"],
        registry.schema(event_type, 2)["examples"],
        strict=True,
    ):
        assert task_v1_to_v2(v1) == v2
        assert task_v2_to_v1(v2) == v1


def test_v1_to_v2() -> None:
    result = task_v1_to_v2(_v1())
    assert result["title"] == "Fix the button"
    assert result["jira_id"] == "UBERPOP-42"
    assert list(result) == list(_v2())
    default_registry().validate("task.created", 2, result)


def test_v2_to_v1() -> None:
    result = task_v2_to_v1(_v2())
    assert result["title"] == "[UBERPOP-42] Fix the button"
    assert "jira_id" not in result
    assert task_v2_to_v1(_v2(jira_id=None))["title"] == "Fix the button"
    default_registry().validate("task.created", 1, result)


@pytest.mark.parametrize(
    "title",
    [
        "[UBERPOP-42]",
        "[UBERPOP-42]    ",
        "Fix [the] button",
        "[UBERPOP-42] " + "x" * 207,
        "y" * 220,
        "[]",
        " ",
        "[[[",
    ],
)
def test_v1_to_v2_always_validates(title: str) -> None:
    registry = default_registry()
    registry.validate("task.created", 1, _v1(title=title))
    registry.validate("task.created", 2, task_v1_to_v2(_v1(title=title)))


@pytest.mark.parametrize(
    ("title", "jira_id"),
    [("x" * 200, "UBERPOP-42"), ("Fix", "A" + "B" * 230 + "-1"), ("Fix", None)],
)
def test_v2_to_v1_always_validates(title: str, jira_id: str | None) -> None:
    registry = default_registry()
    data = _v2(title=title, jira_id=jira_id)
    registry.validate("task.created", 2, data)
    registry.validate("task.created", 1, task_v2_to_v1(data))


def test_round_trip_keeps_jira_key() -> None:
    data = _v2(title="Polish the perch", jira_id="PERCH-7")
    assert task_v1_to_v2(task_v2_to_v1(data)) == data


def test_missing_fields_are_reported() -> None:
    with pytest.raises(InvalidEventData, match="status"):
        task_v1_to_v2({k: v for k, v in _v1().items() if k != "status"})
