"""Which events analytics projects, in which schema versions, and with which use case."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from analytics import service
from event_schemas import Event, UnknownEventVersion

CONSUMER_NAME = "analytics"
CONSUMED_TOPICS = ("accounting-lifecycle", "tasks-lifecycle", "tasks-stream")

BatchHandler = Callable[[Session, list[Event]], None]


@dataclass(frozen=True)
class Handling:
    versions: frozenset[int]
    handler: BatchHandler


class EventHandlers:
    """Batch handlers keyed by event type; other types on the topics are skipped."""

    def __init__(self, handlings: dict[str, Handling]):
        self._handlings = handlings

    def find(self, event: Event) -> BatchHandler | None:
        """The handler of ``event``; None for a type analytics does not project."""
        handling = self._handlings.get(event.type)
        if handling is None:
            return None
        if event.dataversion not in handling.versions:
            raise UnknownEventVersion(
                f"no handler for {event.type} version {event.dataversion}; "
                f"handled versions: {sorted(handling.versions)}"
            )
        return handling.handler

    @property
    def event_types(self) -> list[str]:
        return sorted(self._handlings)


def make_handlers(zone: ZoneInfo) -> EventHandlers:
    one = frozenset({1})
    task_state = Handling(frozenset({1, 2}), service.apply_task_states)
    return EventHandlers(
        {
            "transaction.applied": Handling(one, service.apply_transactions),
            "billing_cycle.closed": Handling(one, service.apply_closed_days),
            "task.priced": Handling(one, service.apply_task_prices),
            "task.completed": Handling(
                one, partial(service.apply_task_completions, zone=zone)
            ),
            "task.created": task_state,
            "task.updated": task_state,
        }
    )
