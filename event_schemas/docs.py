"""Markdown reference of the event contract (``docs/events.md``), rendered from the schemas."""

from __future__ import annotations

import json
from typing import Any

from event_schemas.registry import SchemaRegistry

DOMAIN_ORDER = ("accounts", "tasks", "accounting")
TOPIC_ORDER = (
    "accounts-stream",
    "accounts-lifecycle",
    "tasks-stream",
    "tasks-lifecycle",
    "accounting-lifecycle",
)
EXAMPLE_ID = "0b7e6f52-3c1d-4a8e-9f20-5d6c7b8a9e01"
EXAMPLE_TIME = "2026-11-22T10:15:00.123456Z"
EXAMPLE_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

INTRO = """\
# Events

The services of aTES talk to each other only through the events described here.
This file is generated from the JSON Schemas in `event_schemas/` by
`ates schemas docs`; edit the schemas, not this file.

## Envelope

Every event is a [CloudEvents 1.0](https://cloudevents.io) event in structured JSON
mode (one JSON object per Kafka message value):

| attribute | meaning |
|---|---|
| `specversion` | always `"1.0"` |
| `id` | UUID of this event; consumers record it to ignore redeliveries |
| `source` | producing service (`auth`, `tasks`, `accounting`) |
| `type` | event type, e.g. `task.created` |
| `time` | when the event happened, RFC 3339 in UTC |
| `datacontenttype` | always `"application/json"` |
| `dataversion` | integer version of the schema that `data` follows |
| `data` | the payload, described per event type below |
| `traceparent` | optional W3C trace context linking the event to the request that caused it |

The Kafka message key is the public id of the entity the event is about (the
"Kafka key" field below), so all events of one entity stay in order on one partition.
"""

RULES = """\
## Versioning rules

- Schemas live at `event_schemas/<domain>/<type>/<version>.json` (JSON Schema 2020-12)
  and describe `data` only. Producers validate before writing to the outbox; consumers
  validate on receipt and dead-letter what does not validate.
- A published version is immutable: `event_schemas/schemas.lock` pins the sha256 of
  every version and `ates schemas check` fails when one changes or disappears.
- A change that breaks consumers (removing or renaming a field, tightening a
  constraint, changing a meaning) gets a new version; new versions are pinned with
  `ates schemas lock`.
- Consumers accept every version that is still produced. `task.created` and
  `task.updated` v1 carried the Jira key inside the title (`"[UBERPOP-42] Fix the
  button"`); v2 carries `title` and `jira_id` apart, and consumers split v1 on receipt.
- Every field is always present; optional values are `null`. Unknown fields are
  rejected. Money is integer cents, times are RFC 3339, days are `YYYY-MM-DD`.
- `version` in CUD events is the entity's own version: it grows with every change,
  so a replica ignores an update older than what it already holds.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return f"`{text}`"


def _type_of(prop: dict[str, Any]) -> str:
    types = prop.get("type", "any")
    names = [types] if isinstance(types, str) else list(types)
    base = " | ".join(names)
    return f"{base} ({prop['format']})" if "format" in prop else base


def _range(prop: dict[str, Any], low: str, high: str, label: str) -> list[str]:
    if low in prop and high in prop:
        return [f"{label}{prop[low]}–{prop[high]}"]
    if low in prop:
        return [f"{label}≥ {prop[low]}"]
    if high in prop:
        return [f"{label}≤ {prop[high]}"]
    return []


def _constraints(prop: dict[str, Any]) -> str:
    parts: list[str] = []
    if "const" in prop:
        parts.append(f"= {_code(prop['const'])}")
    if "enum" in prop:
        parts.append("one of " + ", ".join(_code(v) for v in prop["enum"]))
    parts += _range(prop, "minLength", "maxLength", "length ")
    parts += _range(prop, "minimum", "maximum", "")
    if "pattern" in prop:
        parts.append(f"pattern {_code(prop['pattern'])}")
    return "; ".join(parts)


def _presence(name: str, prop: dict[str, Any], required: list[str]) -> str:
    types = prop.get("type", [])
    nullable = "null" in types if isinstance(types, list) else types == "null"
    presence = "required" if name in required else "optional"
    return f"{presence}, nullable" if nullable else presence


def _field_table(schema: dict[str, Any]) -> list[str]:
    required = schema.get("required", [])
    lines = [
        "| field | type | presence | constraints | description |",
        "|---|---|---|---|---|",
    ]
    for name, prop in schema.get("properties", {}).items():
        cells = (
            f"`{name}`",
            _type_of(prop),
            _presence(name, prop, required),
            _constraints(prop),
            prop.get("description", ""),
        )
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def _rule(rule: dict[str, Any]) -> str:
    """One ``if``/``then`` of an ``allOf`` as a sentence, or its JSON when unusual."""
    conditions = rule.get("if", {}).get("properties", {})
    outcomes = rule.get("then", {}).get("properties", {})
    if not conditions or not outcomes or not all("const" in c for c in conditions.values()):
        return _code(json.dumps(rule, separators=(",", ":")))
    when = " and ".join(f"`{n}` is {_code(c['const'])}" for n, c in conditions.items())
    musts = [f"`{name}` {_outcome(prop)}" for name, prop in outcomes.items()]
    return f"when {when}: " + ", ".join(musts)


def _outcome(prop: dict[str, Any]) -> str:
    constraints = _constraints(prop)
    if constraints:
        return constraints
    types = prop.get("type", "any")
    return "is " + (types if isinstance(types, str) else " or ".join(types))


def _rules(schema: dict[str, Any]) -> list[str]:
    rules = schema.get("allOf", [])
    if not rules:
        return []
    return ["", "Rules:", ""] + [f"- {_rule(rule)}" for rule in rules]


def _example(schema: dict[str, Any]) -> list[str]:
    examples = schema.get("examples", [])
    if not examples:
        return []
    body = json.dumps(examples[0], indent=2, ensure_ascii=False)
    return ["", "Example `data`:", "", "```json", body, "```"]


def _version_section(registry: SchemaRegistry, event_type: str, version: int) -> list[str]:
    schema = registry.schema(event_type, version)
    lines = [f"#### {event_type} v{version}", "", schema.get("description", ""), ""]
    lines += _field_table(schema) + _rules(schema) + _example(schema)
    return lines + [""]


def _type_section(registry: SchemaRegistry, event_type: str) -> list[str]:
    entry = registry.catalog_entry(event_type)
    versions = registry.versions(event_type)
    consumers = ", ".join(entry["consumers"]) or "none"
    lines = [
        f"### {event_type}",
        "",
        entry["description"],
        "",
        f"- Topic: `{entry['topic']}`",
        f"- Kind: {'CUD' if entry['kind'] == 'cud' else 'business'}",
        f"- Kafka key: `{entry['key']}`",
        f"- Producer: {entry['producer']}",
        f"- Consumers: {consumers}",
        f"- Versions: {', '.join(str(v) for v in versions)} (latest {versions[-1]})",
        "",
    ]
    for version in reversed(versions):
        lines += _version_section(registry, event_type, version)
    return lines


def _ordered(values: set[str], order: tuple[str, ...]) -> list[str]:
    return sorted(values, key=lambda v: (order.index(v) if v in order else len(order), v))


def _type_sort_key(registry: SchemaRegistry, event_type: str) -> tuple[int, int, str]:
    entry = registry.catalog_entry(event_type)
    domains = _ordered(
        {registry.catalog_entry(t)["domain"] for t in registry.types()}, DOMAIN_ORDER
    )
    return (domains.index(entry["domain"]), entry["kind"] != "cud", event_type)


def _ordered_types(registry: SchemaRegistry) -> list[str]:
    return sorted(registry.types(), key=lambda t: _type_sort_key(registry, t))


def _topics_section(registry: SchemaRegistry) -> list[str]:
    by_topic: dict[str, list[str]] = {}
    for event_type in _ordered_types(registry):
        by_topic.setdefault(registry.topic_of(event_type), []).append(event_type)
    lines = [
        "## Topics",
        "",
        "Topic names below are logical; the real Kafka topic names come from configuration",
        "(`ATES_TOPIC_PREFIX`, `ATES_TOPIC_<NAME>`). Every topic has a `<topic>.dlq`",
        "dead-letter companion for events that can never be handled.",
        "",
        "| topic | kind | producer | events |",
        "|---|---|---|---|",
    ]
    for topic in _ordered(set(by_topic), TOPIC_ORDER):
        types = by_topic[topic]
        entry = registry.catalog_entry(types[0])
        kind = "CUD" if entry["kind"] == "cud" else "business"
        events = ", ".join(f"[`{t}`](#{t.replace('.', '')})" for t in types)
        lines.append(f"| `{topic}` | {kind} | {entry['producer']} | {events} |")
    return lines + [""]


def _index_section(registry: SchemaRegistry) -> list[str]:
    lines = [
        "## Event types",
        "",
        "| type | kind | topic | Kafka key | producer | consumers | versions |",
        "|---|---|---|---|---|---|---|",
    ]
    for event_type in _ordered_types(registry):
        entry = registry.catalog_entry(event_type)
        versions = ", ".join(str(v) for v in registry.versions(event_type))
        lines.append(
            f"| [`{event_type}`](#{event_type.replace('.', '')}) | {entry['kind']} "
            f"| `{entry['topic']}` | `{entry['key']}` | {entry['producer']} "
            f"| {', '.join(entry['consumers'])} | {versions} |"
        )
    return lines + [""]


def _envelope_example(registry: SchemaRegistry) -> list[str]:
    event_type = "task.created" if "task.created" in registry.types() else registry.types()[0]
    version = registry.latest_version(event_type)
    examples = registry.schema(event_type, version).get("examples", [])
    if not examples:
        return []
    event = registry.build(
        event_type,
        examples[0],
        source=registry.catalog_entry(event_type)["producer"],
        version=version,
        id=EXAMPLE_ID,
        time=EXAMPLE_TIME,
        traceparent=EXAMPLE_TRACEPARENT,
    )
    body = json.dumps(event.envelope(), indent=2, ensure_ascii=False)
    return ["For example:", "", "```json", body, "```", ""]


def _domain_sections(registry: SchemaRegistry) -> list[str]:
    lines: list[str] = []
    current = None
    for event_type in _ordered_types(registry):
        entry = registry.catalog_entry(event_type)
        if entry["domain"] != current:
            current = entry["domain"]
            lines += [f"## {current} events (producer: {entry['producer']})", ""]
        lines += _type_section(registry, event_type)
    return lines


def render_markdown(registry: SchemaRegistry) -> str:
    """The whole ``docs/events.md`` document."""
    lines = [INTRO]
    lines += _envelope_example(registry)
    lines += [RULES]
    lines += _topics_section(registry)
    lines += _index_section(registry)
    lines += _domain_sections(registry)
    return "\n".join(lines).rstrip() + "\n"
