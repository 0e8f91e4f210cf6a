"""Runtime configuration, read from ``ATES_*`` environment variables.

Every process of the platform (web, relay, consumer, CLI) builds one ``Settings``
from its environment; tests build their own to isolate databases and topics.

``ates up`` writes the ``ATES_*`` variables of what it chose to ``<ATES_VAR_DIR>/ates.env``
(``write_stack_env``); the operator commands read it into their environment, variables
already set winning (``deploy.console.use_stack_env``).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# The package whose ``catalog.json`` says which topic carries each event and who consumes it.
CATALOG_PACKAGE = "event_schemas"


def catalog_topics(consumer: str | None = None) -> tuple[str, ...]:
    """The logical topics of the event catalog (``event_schemas/catalog.json``) in the
    order it first names them; with ``consumer``, those carrying an event it consumes."""
    topics: dict[str, None] = {}
    for entry in _catalog().values():
        if consumer is None or consumer in entry.get("consumers", ()):
            topics.setdefault(str(entry["topic"]), None)
    return tuple(topics)


@functools.cache
def _catalog() -> dict[str, dict[str, Any]]:
    found = importlib.util.find_spec(CATALOG_PACKAGE)
    if found is None or found.origin is None:
        raise RuntimeError(f"the event catalog package {CATALOG_PACKAGE!r} is not installed")
    catalog: dict[str, dict[str, Any]] = json.loads(
        (Path(found.origin).parent / "catalog.json").read_text())
    return catalog


LOGICAL_TOPICS = catalog_topics()

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


# ``ATES_<SERVICE>_DATABASE_URL``: the database of one service, elsewhere than the others.
_SERVICE_DATABASE_URL = re.compile(r"ATES_([A-Z0-9]+)_DATABASE_URL")


def _env_key(logical_topic: str) -> str:
    return "ATES_TOPIC_" + logical_topic.upper().replace("-", "_").replace(".", "_")


@dataclass(frozen=True)
class Settings:
    """Where the servers are and how topics are named.

    ``database_url`` points at a PostgreSQL *server*; each service uses its own
    database on it (``ates_<service>``), unless ``ATES_<SERVICE>_DATABASE_URL``
    names one explicitly.
    """

    database_url: str = DEFAULT_DATABASE_URL
    kafka_bootstrap: str = "127.0.0.1:9092"
    smtp_url: str = "smtp://127.0.0.1:1025"
    timezone: str = "UTC"
    topic_prefix: str = ""
    topic_partitions: int = 3
    topic_overrides: dict[str, str] = field(default_factory=dict)
    service_database_urls: dict[str, str] = field(default_factory=dict)
    database_prefix: str = "ates_"
    # The embedded broker lets a consumer group settle after about half the session
    # timeout, so the dev stack and the tests use a short one.
    kafka_session_timeout_ms: int = 6000
    # ``ATES_ACCEPTED_EVENT_VERSIONS="task.created=1;task.updated=1"``: this process's
    # consumers handle only these versions of these types (others are dead letters), as a
    # release that predates a newer version would; types not named keep every version.
    accepted_event_versions: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # ``ATES_METRICS_PORT``: a process without a web app (``--role workers``) serves
    # Prometheus ``/metrics`` on this port; unset, it serves none.
    metrics_port: int | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        overrides = {t: env[_env_key(t)] for t in LOGICAL_TOPICS if _env_key(t) in env}
        service_urls = {
            match.group(1).lower(): value
            for name, value in env.items()
            if (match := _SERVICE_DATABASE_URL.fullmatch(name))
        }
        return cls(
            database_url=_normalise_db_url(env.get("ATES_DATABASE_URL", DEFAULT_DATABASE_URL)),
            kafka_bootstrap=env.get("ATES_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
            smtp_url=env.get("ATES_SMTP_URL", "smtp://127.0.0.1:1025"),
            timezone=env.get("ATES_TIMEZONE", "UTC"),
            topic_prefix=env.get("ATES_TOPIC_PREFIX", ""),
            topic_partitions=int(env.get("ATES_TOPIC_PARTITIONS", "3")),
            topic_overrides=overrides,
            service_database_urls={k: _normalise_db_url(v) for k, v in service_urls.items()},
            database_prefix=env.get("ATES_DATABASE_PREFIX", "ates_"),
            kafka_session_timeout_ms=int(env.get("ATES_KAFKA_SESSION_TIMEOUT_MS", "6000")),
            accepted_event_versions=parse_accepted_versions(
                env.get("ATES_ACCEPTED_EVENT_VERSIONS", "")
            ),
            metrics_port=int(env["ATES_METRICS_PORT"]) if env.get("ATES_METRICS_PORT") else None,
        )

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def topic(self, logical: str) -> str:
        """The Kafka topic name for a logical topic such as ``tasks-stream``."""
        return self.topic_overrides.get(logical, self.topic_prefix + logical)

    def dlq_topic(self, logical: str) -> str:
        return self.topic(logical) + ".dlq"

    def all_topics(self) -> list[str]:
        names = [self.topic(t) for t in LOGICAL_TOPICS]
        return names + [n + ".dlq" for n in names]

    def database_name(self, service: str) -> str:
        return f"{self.database_prefix}{service}"

    def database_for(self, service: str) -> str:
        """SQLAlchemy URL of the database owned by ``service``."""
        if service in self.service_database_urls:
            return self.service_database_urls[service]
        return with_database(self.database_url, self.database_name(service))


def parse_accepted_versions(raw: str) -> dict[str, tuple[int, ...]]:
    """``"task.created=1;task.updated=1,2"`` -> ``{"task.created": (1,), ...}``."""
    accepted: dict[str, tuple[int, ...]] = {}
    for item in filter(None, (part.strip() for part in raw.split(";"))):
        event_type, _, versions = item.partition("=")
        try:
            accepted[event_type.strip()] = tuple(int(v) for v in versions.split(","))
        except ValueError:
            raise ValueError(
                f"ATES_ACCEPTED_EVENT_VERSIONS: {item!r} is not like task.created=1,2"
            ) from None
    return accepted


def _normalise_db_url(url: str) -> str:
    """Accept ``postgresql://`` URLs too; we always talk through psycopg 3."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


# -- the settings a running dev stack chose -------------------------------------------------

STACK_ENV_FILE = "ates.env"


def stack_env_path(environ: dict[str, str] | None = None) -> Path:
    """Where ``ates up`` writes what it chose: ``<ATES_VAR_DIR>/ates.env`` (``./var``)."""
    env = os.environ if environ is None else environ
    return Path(env.get("ATES_VAR_DIR") or "var").resolve() / STACK_ENV_FILE


def read_stack_env(path: Path) -> dict[str, str]:
    """The ``NAME=value`` lines of a stack file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name.startswith("ATES_") and not name.startswith("#"):
            values[name.strip()] = value.strip()
    return values


def write_stack_env(path: Path, values: dict[str, str], header: str = "") -> None:
    """Write ``values`` as ``NAME=value`` lines, replacing the file in one step."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines += [f"{name}={value}" for name, value in values.items()]
    partial = path.with_name(path.name + ".partial")
    partial.write_text("\n".join(lines) + "\n")
    partial.replace(path)


def without_password(url: str) -> str:
    """A URL fit to print: any password in it replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
