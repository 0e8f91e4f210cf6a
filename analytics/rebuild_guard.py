"""Before a rebuild empties the projection: do the topics still reach back to the events
it holds?

A memory-only broker (Tansu) forgets every event when it restarts; a rebuild from its
topics would then replace the dashboard with what arrived since. On such a broker the
rebuild is refused when the topics hold fewer messages than events the projection's
inbox records as applied. Apache Kafka keeps its log: nothing is checked there.
"""

from __future__ import annotations

import os

from sqlalchemy import Engine, func, select

from analytics.consumers import CONSUMED_TOPICS, CONSUMER_NAME
from messaging.replay import BrokerProbe
from messaging.tables import inbox
from platform_kit.settings import Settings


class TopicsForgot(Exception):
    """The topics no longer hold the events the projection was built from."""


def check_topics_reach_back(engine: Engine, settings: Settings) -> None:
    """Raise ``TopicsForgot`` when the broker is memory-only and its topics hold fewer
    messages than the projection applied events."""
    topics = [settings.topic(t) for t in CONSUMED_TOPICS]
    probe = BrokerProbe(settings)
    try:
        if not _memory_only(probe.read([]).cluster_id):
            return
        state = probe.read_counted(topics)
    finally:
        probe.close()
    held = sum(state.messages(topic) for topic in topics)
    applied = applied_events(engine)
    if held < applied:
        raise TopicsForgot(
            f"the topics on {settings.kafka_bootstrap} hold {held} message(s) but the "
            f"dashboard was built from {applied} event(s): the memory-only broker has "
            "forgotten events since (restarted?), and a rebuild would lose them; publish "
            "them again first (ates outbox replay --since ...), or pass --force")


def applied_events(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(inbox)
                           .where(inbox.c.consumer == CONSUMER_NAME)) or 0


def _memory_only(cluster_id: str | None) -> bool:
    """Tansu, as ``ates up`` starts it (ATES_BROKER, else its default cluster id)."""
    chosen = os.environ.get("ATES_BROKER", "").strip().lower()
    if chosen:
        return chosen == "tansu"
    return (cluster_id or "").startswith("tansu")
