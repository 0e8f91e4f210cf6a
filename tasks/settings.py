"""Configuration of the tasks service on top of the platform ``Settings``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from platform_kit.settings import Settings

TASK_EVENT_VERSION_ENV = "ATES_TASKS_EVENT_VERSION"
TASK_EVENT_VERSIONS = (1, 2)
DEFAULT_TASK_EVENT_VERSION = 2


@dataclass(frozen=True)
class TasksSettings:
    """Platform settings plus the schema version of the ``task.created``/``task.updated``
    events this service emits (v1 folds the Jira key into the title, for consumers that
    have not moved to v2 yet)."""

    platform: Settings
    task_event_version: int = DEFAULT_TASK_EVENT_VERSION

    def __post_init__(self) -> None:
        if self.task_event_version not in TASK_EVENT_VERSIONS:
            raise ValueError(
                f"task event version must be one of {TASK_EVENT_VERSIONS}, "
                f"not {self.task_event_version!r}"
            )

    @classmethod
    def from_env(
        cls, platform: Settings | None = None, environ: Mapping[str, str] | None = None
    ) -> TasksSettings:
        env = os.environ if environ is None else environ
        return cls(
            platform=platform if platform is not None else Settings.from_env(dict(env)),
            task_event_version=_event_version(
                env.get(TASK_EVENT_VERSION_ENV, str(DEFAULT_TASK_EVENT_VERSION))
            ),
        )


def _event_version(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"{TASK_EVENT_VERSION_ENV} must be an integer, not {raw!r}") from None
