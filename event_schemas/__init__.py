"""The event contract of aTES: versioned JSON Schemas for every CloudEvent.

Schemas live at ``event_schemas/<domain>/<type>/<version>.json``; ``catalog.json``
says which topic carries each type, its Kafka key, producer and consumers.
"""

from event_schemas.registry import (
    Event,
    EventSchemaError,
    InvalidEnvelope,
    InvalidEventData,
    SchemaRegistry,
    UnknownEventType,
    UnknownEventVersion,
    default_registry,
)
from event_schemas.upcasting import split_jira_title, task_v1_to_v2, task_v2_to_v1

__all__ = [
    "Event",
    "EventSchemaError",
    "InvalidEnvelope",
    "InvalidEventData",
    "SchemaRegistry",
    "UnknownEventType",
    "UnknownEventVersion",
    "default_registry",
    "split_jira_title",
    "task_v1_to_v2",
    "task_v2_to_v1",
]
