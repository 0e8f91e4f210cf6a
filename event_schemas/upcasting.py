"""Converting ``task.created`` / ``task.updated`` data between schema versions.

Version 1 carried the Jira key inside the title (``"[UBERPOP-42] Fix the button"``);
version 2 carries ``title`` and ``jira_id`` apart. Consumers upcast v1 on receipt with
``task_v1_to_v2``; a producer configured to emit v1 downcasts with ``task_v2_to_v1``.
Both results always validate against the target schema.
"""

from __future__ import annotations

import re
from typing import Any

from event_schemas.registry import InvalidEventData

V1_TITLE_MAX = 220
V2_TITLE_MAX = 200
UNTITLED = "Untitled"
_BRACKETED_KEY = re.compile(r"^\s*\[([A-Z][A-Z0-9]+-[0-9]+)\]\s*(.*?)\s*$", re.DOTALL)
_COMMON_FIELDS = (
    "task_id",
    "title",
    "description",
    "status",
    "assignee_id",
    "created_at",
    "completed_at",
    "version",
)


def split_jira_title(title: str) -> tuple[str, str | None]:
    """``"[UBERPOP-42] Fix the button"`` -> ``("Fix the button", "UBERPOP-42")``.

    Only a bracketed key at the start of the title counts; any other title comes back
    stripped of surrounding whitespace, with ``None`` as the key.
    """
    match = _BRACKETED_KEY.match(title)
    if match is None:
        return title.strip(), None
    return match.group(2), match.group(1)


def _pick(data: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    missing = [name for name in fields if name not in data]
    if missing:
        raise InvalidEventData(f"task data lacks {', '.join(missing)}", missing)
    return {name: data[name] for name in fields}


def _v2_title(title: str, jira_id: str | None) -> str:
    """A title v2 accepts: no square brackets, 1 to 200 characters."""
    cleaned = title.replace("[", "(").replace("]", ")")[:V2_TITLE_MAX].strip()
    return cleaned or jira_id or UNTITLED


def task_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 task data (Jira key in the title) -> v2 task data (``title`` + ``jira_id``)."""
    result = _pick(data, _COMMON_FIELDS)
    title, jira_id = split_jira_title(result["title"])
    result["title"] = _v2_title(title, jira_id)
    result["jira_id"] = jira_id
    return {name: result[name] for name in ("task_id", "title", "jira_id", *_COMMON_FIELDS[2:])}


def task_v2_to_v1(data: dict[str, Any]) -> dict[str, Any]:
    """v2 task data -> v1 task data, with the Jira key folded back into the title."""
    result = _pick(data, _COMMON_FIELDS)
    jira_id = data.get("jira_id")
    if jira_id:
        result["title"] = f"[{jira_id}] {result['title']}"[:V1_TITLE_MAX]
    return result
