"""schemas.lock: published schema versions never change."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from event_schemas import lock
from event_schemas._loader import LOCK_FILE, PACKAGE_ROOT

SCHEMA_FILES = len(list(PACKAGE_ROOT.glob("*/*/*.json")))

CHANGED = "published schema version changed; add a new version instead"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A private copy of the schema tree (schemas, catalog and lock)."""
    root = tmp_path / "event_schemas"
    shutil.copytree(PACKAGE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return root


def _locked(root: Path) -> dict[str, str]:
    return json.loads((root / LOCK_FILE).read_text())


def _edit(path: Path, **changes: object) -> None:
    schema = json.loads(path.read_text())
    schema.update(changes)
    path.write_text(json.dumps(schema, indent=2) + "\n")


def _add_task_created_v3(root: Path) -> Path:
    target = root / "tasks" / "task.created" / "3.json"
    shutil.copy(root / "tasks" / "task.created" / "2.json", target)
    _edit(
        target,
        **{
            "$id": "https://ates.popug.inc/schemas/tasks/task.created/3.json",
            "title": "task.created v3",
        },
    )
    return target


def test_real_tree_is_clean() -> None:
    assert lock.check() == []
    assert lock.count_schemas() == SCHEMA_FILES


def test_every_schema_file_is_locked() -> None:
    locked = _locked(PACKAGE_ROOT)
    files = sorted(PACKAGE_ROOT.glob("*/*/*.json"))
    assert len(locked) == len(files) == SCHEMA_FILES
    for path in files:
        key = str(path.relative_to(PACKAGE_ROOT).with_suffix(""))
        assert locked[key] == lock.digest(path)


def test_copy_is_clean(tree: Path) -> None:
    assert lock.check(tree) == []


def test_editing_a_published_schema_fails(tree: Path) -> None:
    _edit(tree / "tasks" / "task.created" / "2.json", description="Something else.")
    assert lock.check(tree) == [f"tasks/task.created/2.json: {CHANGED}"]


def test_even_whitespace_counts_as_a_change(tree: Path) -> None:
    path = tree / "accounts" / "account.created" / "1.json"
    path.write_bytes(path.read_bytes() + b"\n")
    assert lock.check(tree) == [f"accounts/account.created/1.json: {CHANGED}"]


def test_removing_a_published_schema_fails(tree: Path) -> None:
    (tree / "tasks" / "task.created" / "1.json").unlink()
    problems = lock.check(tree)
    assert len(problems) == 1
    assert problems[0].startswith("tasks/task.created/1.json: published schema version")


def test_new_version_must_be_locked(tree: Path) -> None:
    before = _locked(tree)
    _add_task_created_v3(tree)
    assert lock.check(tree) == ["tasks/task.created/3.json: not locked; run `ates schemas lock`"]

    assert lock.lock(tree) == ["tasks/task.created/3"]
    after = _locked(tree)
    assert {k: v for k, v in after.items() if k in before} == before
    assert set(after) - set(before) == {"tasks/task.created/3"}
    assert lock.check(tree) == []
    assert lock.lock(tree) == []


def test_lock_never_rewrites_an_entry(tree: Path) -> None:
    before = _locked(tree)
    _edit(tree / "tasks" / "task.completed" / "1.json", description="Changed.")
    assert lock.lock(tree) == []
    assert _locked(tree) == before
    assert lock.check(tree) == [f"tasks/task.completed/1.json: {CHANGED}"]


def test_lock_skips_a_broken_new_version(tree: Path) -> None:
    target = _add_task_created_v3(tree)
    _edit(target, examples=[{"task_id": "nope"}])
    assert lock.lock(tree) == []
    problems = lock.check(tree)
    assert any("examples[0] is invalid" in p for p in problems)
    assert any(p.endswith("not locked; run `ates schemas lock`") for p in problems)


def test_lock_file_is_created_from_scratch(tree: Path) -> None:
    (tree / LOCK_FILE).unlink()
    assert len(lock.check(tree)) == SCHEMA_FILES
    assert len(lock.lock(tree)) == SCHEMA_FILES
    assert _locked(tree) == _locked(PACKAGE_ROOT)


def test_schema_that_does_not_compile(tree: Path) -> None:
    target = _add_task_created_v3(tree)
    _edit(target, type="thing")
    assert any("not a valid JSON Schema" in p for p in lock.check(tree))


def test_unparseable_schema(tree: Path) -> None:
    (tree / "tasks" / "task.created" / "3.json").write_text("{")
    assert any("not valid JSON" in p for p in lock.check(tree))


def test_wrong_id_and_open_schema(tree: Path) -> None:
    target = _add_task_created_v3(tree)
    _edit(target, **{"$id": "https://example.com/x.json", "additionalProperties": True})
    problems = lock.check(tree)
    assert any("$id must be" in p for p in problems)
    assert any("additionalProperties false" in p for p in problems)


def test_schema_without_examples(tree: Path) -> None:
    _edit(_add_task_created_v3(tree), examples=[])
    assert any("needs at least one entry in 'examples'" in p for p in lock.check(tree))


def test_unenforced_format(tree: Path) -> None:
    target = _add_task_created_v3(tree)
    schema = json.loads(target.read_text())
    schema["properties"]["title"]["format"] = "uri-reference-template"
    target.write_text(json.dumps(schema))
    assert any("not enforced" in p for p in lock.check(tree))


def test_catalog_entry_without_schemas(tree: Path) -> None:
    catalog = json.loads((tree / "catalog.json").read_text())
    catalog["task.exploded"] = dict(catalog["task.added"])
    (tree / "catalog.json").write_text(json.dumps(catalog))
    assert lock.check(tree) == ["catalog.json: task.exploded has no schema files"]


def test_schema_type_missing_from_catalog(tree: Path) -> None:
    catalog = json.loads((tree / "catalog.json").read_text())
    del catalog["task.added"]
    (tree / "catalog.json").write_text(json.dumps(catalog))
    assert lock.check(tree) == ["task.added: has schemas but no entry in catalog.json"]


def test_bad_catalog_entry(tree: Path) -> None:
    catalog = json.loads((tree / "catalog.json").read_text())
    catalog["task.added"].update(kind="other", domain="accounts", key="nope")
    (tree / "catalog.json").write_text(json.dumps(catalog))
    problems = lock.check(tree)
    assert any("'kind' must be one of" in p for p in problems)
    assert any("domain is 'accounts'" in p for p in problems)
    assert any("Kafka key field 'nope'" in p for p in problems)


def test_misnamed_schema_file(tree: Path) -> None:
    shutil.copy(tree / "tasks" / "task.added" / "1.json", tree / "tasks" / "task.added" / "v2.json")
    assert lock.check(tree) == [
        "tasks/task.added/v2.json: file name must be a version number like 1.json"
    ]
