"""Reading the schema tree: schema files, the catalog and the lock file.

The tree looks like ``<root>/<domain>/<type>/<version>.json`` next to ``catalog.json``
and ``schemas.lock``. Everything here is shared by the registry (which refuses to start
on a broken tree) and by ``lock.check`` (which reports every problem it finds).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator

PACKAGE_ROOT = Path(__file__).resolve().parent
CATALOG_FILE = "catalog.json"
LOCK_FILE = "schemas.lock"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "https://ates.popug.inc/schemas"
KINDS = ("cud", "business")
CATALOG_FIELDS = ("domain", "topic", "kind", "key", "producer", "consumers", "description")
FORMAT_CHECKER: FormatChecker = Draft202012Validator.FORMAT_CHECKER
MAX_REPORTED_ERRORS = 10
MAX_MESSAGE_CHARS = 300


def _strict_integer(_checker: object, instance: object) -> bool:
    """Money and versions are integers on the wire: ``1000.0`` is not an integer here."""
    return isinstance(instance, int) and not isinstance(instance, bool)


# Draft 2020-12 with one change: floats with a zero fraction do not count as integers.
# (The jsonschema stubs leave ``extend`` unannotated; it returns a validator class.)
StrictValidator: type[Validator] = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integer),
)


class TreeError(Exception):
    """A schema file, the catalog or the lock file cannot be used."""


@dataclass(frozen=True)
class SchemaFile:
    """One ``<domain>/<type>/<version>.json`` file of the tree."""

    domain: str
    event_type: str
    version: int
    path: Path

    @property
    def key(self) -> str:
        return f"{self.domain}/{self.event_type}/{self.version}"

    @property
    def relpath(self) -> str:
        return f"{self.key}.json"

    @property
    def expected_id(self) -> str:
        return f"{ID_BASE}/{self.relpath}"


def resolve_root(root: Path | str | None) -> Path:
    return PACKAGE_ROOT if root is None else Path(root)


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and p.name[0] not in "._")


def _parse_version(stem: str) -> int | None:
    if stem.isdigit() and not stem.startswith("0"):
        return int(stem)
    return None


def discover(root: Path) -> tuple[list[SchemaFile], list[str]]:
    """All schema files under ``root``, and problems with misnamed files."""
    files: list[SchemaFile] = []
    problems: list[str] = []
    for domain_dir in _subdirs(root):
        for type_dir in _subdirs(domain_dir):
            for path in sorted(type_dir.glob("*.json")):
                version = _parse_version(path.stem)
                rel = f"{domain_dir.name}/{type_dir.name}/{path.name}"
                if version is None:
                    problems.append(f"{rel}: file name must be a version number like 1.json")
                    continue
                files.append(SchemaFile(domain_dir.name, type_dir.name, version, path))
    problems.extend(_duplicate_type_problems(files))
    return files, problems


def _duplicate_type_problems(files: list[SchemaFile]) -> Iterator[str]:
    domains: dict[str, set[str]] = {}
    for f in files:
        domains.setdefault(f.event_type, set()).add(f.domain)
    for event_type, found in sorted(domains.items()):
        if len(found) > 1:
            yield f"{event_type}: defined in several domains ({', '.join(sorted(found))})"


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError as exc:
        raise TreeError(f"{path.name}: file not found") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TreeError(f"{path.name}: not valid JSON ({exc})") from exc


def read_catalog(root: Path) -> dict[str, dict[str, Any]]:
    catalog = read_json(root / CATALOG_FILE)
    if not isinstance(catalog, dict) or not all(isinstance(v, dict) for v in catalog.values()):
        raise TreeError(f"{CATALOG_FILE}: must map event types to objects")
    return catalog


def read_lock(root: Path) -> dict[str, str]:
    path = root / LOCK_FILE
    if not path.exists():
        return {}
    locked = read_json(path)
    if not isinstance(locked, dict) or not all(isinstance(v, str) for v in locked.values()):
        raise TreeError(f"{LOCK_FILE}: must map schema keys to sha256 digests")
    return locked


def write_lock(root: Path, locked: dict[str, str]) -> None:
    text = json.dumps(dict(sorted(locked.items())), indent=2) + "\n"
    (root / LOCK_FILE).write_text(text, encoding="utf-8")


def _formats(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("format"), str):
            yield node["format"]
        for value in node.values():
            yield from _formats(value)
    elif isinstance(node, list):
        for item in node:
            yield from _formats(item)


def compile_schema(schema: Any) -> Validator:
    """Check ``schema`` against the 2020-12 meta-schema and build its validator.

    Every ``format`` the schema uses must be one the format checker really enforces
    (``date-time`` needs rfc3339-validator), otherwise it would silently pass anything.
    """
    try:
        StrictValidator.check_schema(schema)
    except SchemaError as exc:
        raise TreeError(f"not a valid JSON Schema: {exc.message}") from exc
    unchecked = sorted(set(_formats(schema)) - set(FORMAT_CHECKER.checkers))
    if unchecked:
        raise TreeError(f"format(s) not enforced by the validator: {', '.join(unchecked)}")
    return StrictValidator(schema, format_checker=FORMAT_CHECKER)


def compile_fast_acceptor(schema: dict[str, Any]) -> Callable[[Any], bool]:
    """A compiled check that says quickly whether data is certainly valid.

    Validation sits on the hot path of every producer and consumer, and compiled code is
    many times faster than the ``jsonschema`` interpreter. The acceptor never has the
    last word on a rejection: anything it refuses is validated again by ``jsonschema``,
    which also writes the error messages. Formats are checked by the same checker
    ``jsonschema`` uses, and data holding a float is left to ``jsonschema`` because the
    compiled code counts ``1000.0`` as an integer.
    """
    body = {key: value for key, value in schema.items() if key != "$schema"}
    formats = {name: _fast_format(name) for name in _formats(schema)}
    body, branches = _split_conditionals(body, formats)
    body, exclusions = _split_excluded_constants(body)
    check = fastjsonschema.compile(body, formats=formats)

    def accepts(data: Any) -> bool:
        if _holds_float(data):
            return False
        for allowed in exclusions:
            if not allowed(data):
                return False
        try:
            check(data)
            for holds, then_check, else_check in branches:
                branch = then_check if holds(data) else else_check
                if branch is not None:
                    branch(data)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    return accepts


Check = Callable[[Any], Any]
Format = str | Callable[[Any], bool]
Branch = tuple[Callable[[Any], bool], Check | None, Check | None]
_CONDITIONAL_KEYS = frozenset({"if", "then", "else"})
# Keywords whose meaning depends on the schema around them: a schema using any of them
# is compiled whole.
_CONTEXTUAL_KEYS = frozenset(
    {"$ref", "$dynamicRef", "$recursiveRef", "unevaluatedProperties", "unevaluatedItems"}
)


def _split_conditionals(
    body: dict[str, Any], formats: dict[str, Format]
) -> tuple[dict[str, Any], list[Branch]]:
    """``body`` without its ``if``/``then``/``else`` blocks, and those blocks as branches.

    The compiled code decides an ``if`` by raising and catching an exception, which
    costs more than the rest of the check; for the common ``if`` that only compares
    properties with constants, a plain comparison decides it instead. A schema with any
    other ``if`` is compiled whole.
    """
    blocks = [body] if "if" in body else []
    all_of = body.get("allOf")
    if isinstance(all_of, list):
        blocks += [item for item in all_of if _is_conditional(item)]
    if not blocks or _uses_any(body, _CONTEXTUAL_KEYS):
        return body, []
    conditions = [_const_condition(block["if"]) for block in blocks]
    if any(condition is None for condition in conditions):
        return body, []
    branches: list[Branch] = []
    for block, condition in zip(blocks, conditions, strict=True):
        assert condition is not None
        then_check, else_check = (
            _compile_branch(block.get(name), formats) for name in ("then", "else")
        )
        branches.append((condition, then_check, else_check))
    return _without_conditionals(body), branches


def _split_excluded_constants(
    body: dict[str, Any],
) -> tuple[dict[str, Any], list[Callable[[Any], bool]]]:
    """``body`` without the ``"not": {"const": ...}`` of its properties, and those as checks.

    The compiled code decides a ``not`` by raising and catching an exception whenever
    the value is valid; a plain comparison decides it instead. The comparison is stricter
    than JSON Schema: a value other than ``null`` or one of the constant's type is
    refused (and judged by ``jsonschema``).
    """
    properties = body.get("properties")
    if not isinstance(properties, dict) or _uses_any(body, _CONTEXTUAL_KEYS):
        return body, []
    kept: dict[str, Any] = {}
    exclusions: list[Callable[[Any], bool]] = []
    for name, subschema in properties.items():
        excluded = _excluded_constant(subschema)
        if excluded is _NOTHING:
            kept[name] = subschema
            continue
        kept[name] = {key: value for key, value in subschema.items() if key != "not"}
        exclusions.append(_differs_from(name, excluded))
    if not exclusions:
        return body, []
    return {**body, "properties": kept}, exclusions


_NOTHING = object()


def _excluded_constant(subschema: Any) -> Any:
    """``c`` of a ``{"not": {"const": c}}`` with a text or integer ``c``, else ``_NOTHING``."""
    if not isinstance(subschema, dict):
        return _NOTHING
    excluded = subschema.get("not")
    if not (isinstance(excluded, dict) and set(excluded) == {"const"}):
        return _NOTHING
    if type(excluded["const"]) not in (str, int):
        return _NOTHING
    return excluded["const"]


def _differs_from(name: str, excluded: str | int) -> Callable[[Any], bool]:
    kind = type(excluded)

    def allowed(data: Any) -> bool:
        if not isinstance(data, dict) or name not in data:
            return True
        value = data[name]
        return value is None or (type(value) is kind and value != excluded)

    return allowed


def _is_conditional(node: Any) -> bool:
    return isinstance(node, dict) and "if" in node and set(node) <= _CONDITIONAL_KEYS


def _uses_any(node: Any, keys: frozenset[str]) -> bool:
    if isinstance(node, dict):
        return not keys.isdisjoint(node) or any(_uses_any(v, keys) for v in node.values())
    if isinstance(node, list):
        return any(_uses_any(item, keys) for item in node)
    return False


def _without_conditionals(body: dict[str, Any]) -> dict[str, Any]:
    rest = {key: value for key, value in body.items() if key not in _CONDITIONAL_KEYS}
    if isinstance(rest.get("allOf"), list):
        rest["allOf"] = [item for item in rest["allOf"] if not _is_conditional(item)]
        if not rest["allOf"]:
            del rest["allOf"]
    return rest


def _compile_branch(
    subschema: Any, formats: dict[str, Format]
) -> Check | None:
    if subschema is None or subschema is True or subschema == {}:
        return None
    return fastjsonschema.compile(subschema, formats=formats)


def _const_condition(if_schema: Any) -> Callable[[Any], bool] | None:
    """``{"properties": {name: {"const": "text"}, ...}}`` as a plain comparison.

    As JSON Schema reads it, such an ``if`` holds for anything but an object, and for an
    object whose listed properties, where present, equal their string constants.
    """
    if not isinstance(if_schema, dict) or set(if_schema) != {"properties"}:
        return None
    properties = if_schema["properties"]
    if not isinstance(properties, dict):
        return None
    expected: list[tuple[str, str]] = []
    for name, subschema in properties.items():
        if not (isinstance(subschema, dict) and set(subschema) == {"const"}):
            return None
        if type(subschema["const"]) is not str:
            return None
        expected.append((name, subschema["const"]))
    if len(expected) == 1:
        return _single_const_condition(*expected[0])
    pairs = tuple(expected)

    def holds(data: Any) -> bool:
        if not isinstance(data, dict):
            return True
        return all(data.get(name, value) == value for name, value in pairs)

    return holds


def _single_const_condition(name: str, value: str) -> Callable[[Any], bool]:
    def holds(data: Any) -> bool:
        return not isinstance(data, dict) or data.get(name, value) == value

    return holds


# The canonical text of a UUID: what every producer writes. ``jsonschema``'s own check
# builds a ``uuid.UUID`` (a few microseconds, per id, per event); it stays the authority
# for the rare other spellings it also accepts.
CANONICAL_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def is_canonical_uuid(value: Any) -> bool:
    return isinstance(value, str) and CANONICAL_UUID.fullmatch(value) is not None


# The timestamps every producer writes (``registry.utc_now``, ``rfc3339`` helpers): upper-
# case ``T``, seconds, an optional fraction, ``Z`` or a numeric offset. The general RFC 3339
# checker (a regular expression and a calendar lookup per call) stays the authority for
# anything else, such as a lower-case ``t`` or a fraction of nine digits.
COMMON_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)"
)


def is_rfc3339(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if COMMON_TIMESTAMP.fullmatch(value):
        try:
            datetime.fromisoformat(value)  # the calendar: no 30 February, no hour 25
            return True
        except ValueError:
            pass
    return FORMAT_CHECKER.conforms(value, "date-time")


def _fast_format(name: str) -> Format:
    """The check of format ``name`` in compiled code, which applies it to strings only
    (a regular expression is inlined there, and must match the whole string)."""
    if name == "uuid":
        return CANONICAL_UUID.pattern + r"\Z"
    if name == "date-time":
        return is_rfc3339
    return _format_conformance(name)


def _format_conformance(name: str) -> Callable[[Any], bool]:
    """``FORMAT_CHECKER.conforms(value, name)`` without its two wrapping calls."""
    check, raises = FORMAT_CHECKER.checkers[name]

    def conforms(value: Any) -> bool:
        try:
            return bool(check(value))
        except raises:
            return False

    return conforms


_PLAIN = frozenset({str, int, bool, type(None)})


def _holds_float(data: Any) -> bool:
    values: Iterable[Any]
    if type(data) is dict:
        values = data.values()
    elif type(data) is list:
        values = data
    else:
        return isinstance(data, float)
    if _PLAIN.issuperset(map(type, values)):
        return False
    return any(_holds_float(value) for value in values)


def load_schema(file: SchemaFile) -> tuple[dict[str, Any], Validator]:
    schema = read_json(file.path)
    if not isinstance(schema, dict):
        raise TreeError(f"{file.relpath}: a schema must be a JSON object")
    try:
        return schema, compile_schema(schema)
    except TreeError as exc:
        raise TreeError(f"{file.relpath}: {exc}") from exc


def _shorten(text: str) -> str:
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    return text[: MAX_MESSAGE_CHARS - 3] + "..."


def data_errors(validator: Validator, data: Any) -> list[str]:
    """``"<json path>: <reason>"`` for every way ``data`` breaks the schema, sorted by path."""
    errors = sorted(validator.iter_errors(data), key=lambda e: (e.json_path, e.message))
    messages = [f"{e.json_path}: {_shorten(e.message)}" for e in errors]
    if len(messages) > MAX_REPORTED_ERRORS:
        hidden = len(messages) - MAX_REPORTED_ERRORS
        messages = messages[:MAX_REPORTED_ERRORS] + [f"... and {hidden} more"]
    return messages


def catalog_problems(catalog: dict[str, dict[str, Any]], files: list[SchemaFile]) -> list[str]:
    """Disagreements between the catalog and the schema files."""
    problems: list[str] = []
    domains = {f.event_type: f.domain for f in files}
    for event_type in sorted(set(domains) - set(catalog)):
        problems.append(f"{event_type}: has schemas but no entry in {CATALOG_FILE}")
    for event_type, entry in catalog.items():
        if event_type not in domains:
            problems.append(f"{CATALOG_FILE}: {event_type} has no schema files")
            continue
        problems.extend(_entry_problems(event_type, entry, domains[event_type]))
    return problems


def _entry_problems(event_type: str, entry: dict[str, Any], domain: str) -> list[str]:
    where = f"{CATALOG_FILE}: {event_type}"
    problems = [f"{where}: missing {name!r}" for name in CATALOG_FIELDS if name not in entry]
    if problems:
        return problems
    for name in ("domain", "topic", "key", "producer", "description"):
        if not isinstance(entry[name], str) or not entry[name]:
            problems.append(f"{where}: {name!r} must be a non-empty string")
    consumers = entry["consumers"]
    if not isinstance(consumers, list) or not all(isinstance(c, str) for c in consumers):
        problems.append(f"{where}: 'consumers' must be a list of service names")
    if entry["kind"] not in KINDS:
        problems.append(f"{where}: 'kind' must be one of {', '.join(KINDS)}")
    if entry["domain"] != domain:
        problems.append(f"{where}: domain is {entry['domain']!r} but schemas are in {domain!r}/")
    return problems


def key_field_problems(
    catalog: dict[str, dict[str, Any]], file: SchemaFile, schema: dict[str, Any]
) -> list[str]:
    """The catalog's Kafka key field must be a required, non-null string of every version."""
    key = catalog.get(file.event_type, {}).get("key")
    if not isinstance(key, str):
        return []
    prop = schema.get("properties", {}).get(key)
    if key not in schema.get("required", []) or not isinstance(prop, dict):
        return [f"{file.relpath}: Kafka key field {key!r} is not a required property"]
    if prop.get("type") != "string":
        return [f"{file.relpath}: Kafka key field {key!r} must be a non-null string"]
    return []
