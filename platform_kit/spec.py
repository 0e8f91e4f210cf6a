"""The contract between a service and the platform that runs it.

Each service declares one ``ServiceSpec`` (``SPEC`` in its ``app`` module) and publishes it
as an entry point of the ``ates.services`` group in ``pyproject.toml``::

    [project.entry-points."ates.services"]
    tasks = "tasks.app:SPEC"

Messaging, the platform kit and deploy find the services through ``service_specs()`` and
``service_spec(name)``: they run what a spec says and never name a service themselves.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from platform_kit.settings import Settings, catalog_topics

if TYPE_CHECKING:
    import click
    from fastapi import FastAPI

ENTRY_POINT_GROUP = "ates.services"

Worker = Callable[[threading.Event], None]
"""A long-running loop (relay, consumer, scheduler ...) that returns once the event is set."""


@dataclass(frozen=True)
class ConsumerSpec:
    """The consumer of a service: its name (the consumer group, after the topic prefix,
    and the consumer its dead letters name) and the logical topics it reads."""

    name: str
    topics: tuple[str, ...]

    @classmethod
    def from_catalog(cls, name: str) -> ConsumerSpec:
        """The consumer ``name`` reading every topic whose events the catalog
        (``event_schemas/catalog.json``) lists it as a consumer of."""
        return cls(name, catalog_topics(name))

    def group_id(self, settings: Settings) -> str:
        return settings.topic_prefix + self.name

    def kafka_topics(self, settings: Settings) -> list[str]:
        return [settings.topic(topic) for topic in self.topics]


@dataclass(frozen=True)
class ServiceSpec:
    """What the platform needs to know to run one service.

    - ``name``: the service (``ates serve <name>``, log and trace name, process names);
    - ``port``: the usual port of its web app (``ATES_<NAME>_PORT`` moves it under
      ``ates up``); services start in the order of their ports;
    - ``create_app``: its web app; ``workers``: its background loops by name;
    - ``migrations``: the package of its Alembic migrations (``tasks.migrations``);
    - ``database``: the database it owns (``Settings.database_for``; default: ``name``);
    - ``consumer``: what it consumes, if anything (``ates consumers reset``);
    - ``sends_mail``: it needs the SMTP server (``ates up`` starts its mail sink);
    - ``secrets``: ``ATES_*`` variables of secrets it needs, generated once per
      installation by ``ates up``;
    - ``seed``: demo data ``ates up`` creates on every start (returns the logins made);
    - ``commands``: its ``ates`` sub-commands, loaded when the command line starts.
    """

    name: str
    port: int
    create_app: Callable[[Settings], FastAPI]
    workers: Callable[[Settings], Mapping[str, Worker]]
    migrations: str
    database: str = ""
    consumer: ConsumerSpec | None = None
    sends_mail: bool = False
    secrets: tuple[str, ...] = ()
    seed: Callable[[Settings, str | None], list[dict[str, Any]]] | None = None
    commands: Callable[[], Sequence[click.Command]] | None = None

    def __post_init__(self) -> None:
        if not self.database:
            object.__setattr__(self, "database", self.name)

    def database_url(self, settings: Settings) -> str:
        """The SQLAlchemy URL of the service's database."""
        return settings.database_for(self.database)

    def worker_names(self, settings: Settings) -> list[str]:
        return list(self.workers(settings))


def commands_in(module: str) -> Callable[[], Sequence[click.Command]]:
    """The ``commands`` of ``module`` (a service's ``cli``), imported only when the command
    line starts."""

    def load() -> Sequence[click.Command]:
        commands: Sequence[click.Command] = importlib.import_module(module).commands
        return commands

    return load


class UnknownService(LookupError):
    """No installed service has this name."""


def service_specs() -> tuple[ServiceSpec, ...]:
    """The specs of the installed services, in start-up order (by port: auth first)."""
    return _loaded_specs()


def service_spec(name: str) -> ServiceSpec:
    for spec in service_specs():
        if spec.name == name:
            return spec
    raise UnknownService(
        f"unknown service {name!r}; the services are "
        f"{', '.join(spec.name for spec in service_specs())}")


def service_names() -> list[str]:
    return [spec.name for spec in service_specs()]


@functools.cache
def _loaded_specs() -> tuple[ServiceSpec, ...]:
    specs: dict[str, ServiceSpec] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in specs or not _present(entry):
            continue
        spec = entry.load()
        if not isinstance(spec, ServiceSpec) or spec.name != entry.name:
            raise TypeError(f"entry point {entry.name} = {entry.value} of {ENTRY_POINT_GROUP} "
                            f"is not the ServiceSpec of {entry.name}")
        specs[entry.name] = spec
    return tuple(sorted(specs.values(), key=lambda spec: spec.port))


def _present(entry: EntryPoint) -> bool:
    """Whether the entry point's module exists in this installation."""
    try:
        return importlib.util.find_spec(entry.module) is not None
    except ModuleNotFoundError:
        return False
