"""Published schema versions are immutable: ``schemas.lock`` pins each file's sha256.

``check`` lists every problem of a schema tree (CI fails on any); ``lock`` pins new
versions and never touches an existing entry.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from event_schemas import _loader
from event_schemas._loader import SchemaFile, TreeError
from event_schemas.registry import EventSchemaError


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _convention_problems(file: SchemaFile, schema: dict[str, Any]) -> list[str]:
    where = file.relpath
    problems: list[str] = []
    if schema.get("$schema") != _loader.DIALECT:
        problems.append(f"{where}: $schema must be {_loader.DIALECT}")
    if schema.get("$id") != file.expected_id:
        problems.append(f"{where}: $id must be {file.expected_id}")
    for name in ("title", "description"):
        if not isinstance(schema.get(name), str) or not schema[name]:
            problems.append(f"{where}: {name!r} must be a non-empty string")
    if schema.get("type") != "object" or schema.get("additionalProperties") is not False:
        problems.append(f"{where}: must be an object schema with additionalProperties false")
    properties = schema.get("properties", {})
    if not isinstance(properties, dict) or set(schema.get("required", [])) != set(properties):
        problems.append(f"{where}: every property must be listed in 'required'")
    return problems


def _example_problems(file: SchemaFile, schema: dict[str, Any], validator: Any) -> list[str]:
    examples = schema.get("examples")
    if not isinstance(examples, list) or not examples:
        return [f"{file.relpath}: needs at least one entry in 'examples'"]
    problems: list[str] = []
    for index, example in enumerate(examples):
        for error in _loader.data_errors(validator, example):
            problems.append(f"{file.relpath}: examples[{index}] is invalid: {error}")
    return problems


def _file_problems(file: SchemaFile, catalog: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Everything wrong with one schema file, ignoring the lock."""
    try:
        schema, validator = _loader.load_schema(file)
    except TreeError as exc:
        return [str(exc)]
    problems = _convention_problems(file, schema)
    problems += _example_problems(file, schema, validator)
    if catalog is not None:
        problems += _loader.key_field_problems(catalog, file, schema)
    return problems


def _lock_problems(file: SchemaFile, locked: dict[str, str]) -> list[str]:
    if file.key not in locked:
        return [f"{file.relpath}: not locked; run `ates schemas lock`"]
    if locked[file.key] != digest(file.path):
        return [f"{file.relpath}: published schema version changed; add a new version instead"]
    return []


def _missing_problems(files: list[SchemaFile], locked: dict[str, str]) -> list[str]:
    present = {f.key for f in files}
    return [
        f"{key}.json: published schema version disappeared; published versions are permanent"
        for key in sorted(set(locked) - present)
    ]


def _read_or_report(reader: Any, root: Path, problems: list[str]) -> Any:
    try:
        return reader(root)
    except TreeError as exc:
        problems.append(str(exc))
        return None


def check(root: Path | str | None = None) -> list[str]:
    """Every problem of the schema tree at ``root`` (default: this package); empty = OK."""
    root = _loader.resolve_root(root)
    files, problems = _loader.discover(root)
    catalog = _read_or_report(_loader.read_catalog, root, problems)
    locked = _read_or_report(_loader.read_lock, root, problems)
    for file in files:
        problems += _file_problems(file, catalog)
        if locked is not None:
            problems += _lock_problems(file, locked)
    if locked is not None:
        problems += _missing_problems(files, locked)
    if catalog is not None:
        problems += _loader.catalog_problems(catalog, files)
    return problems


def count_schemas(root: Path | str | None = None) -> int:
    files, _ = _loader.discover(_loader.resolve_root(root))
    return len(files)


def lock(root: Path | str | None = None) -> list[str]:
    """Pin every valid schema version not yet in the lock; return the keys added.

    Existing entries are never rewritten, even when their file changed (``check`` reports
    that). A new version that has problems of its own is left unlocked.
    """
    root = _loader.resolve_root(root)
    try:
        locked = _loader.read_lock(root)
    except TreeError as exc:
        raise EventSchemaError(str(exc)) from exc
    files, _ = _loader.discover(root)
    added = [f for f in files if f.key not in locked and not _file_problems(f)]
    if added:
        locked.update({f.key: digest(f.path) for f in added})
        _loader.write_lock(root, locked)
    return [f.key for f in added]
