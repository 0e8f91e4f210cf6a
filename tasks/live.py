"""Live updates of the board, across every process of the tasks service.

A change (a new task, a completion, a reshuffle) is announced on ``CHANNEL`` in its own
transaction; every web process's :class:`LiveFeed` hears it and hands it to the board's
Server-Sent Events streams (see :mod:`platform_kit.live`). The board only reloads its list
on any message.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from platform_kit import live
from platform_kit.live import RESYNC, conninfo_of

CHANNEL = "tasks_changed"

__all__ = ["CHANNEL", "RESYNC", "LiveFeed", "announce", "announcement", "conninfo_of"]


def announce(session: Session, kind: str, **fields: Any) -> None:
    """Tell every board about a change, when (and if) ``session``'s transaction commits."""
    live.announce(session, CHANNEL, {"kind": kind, **fields})


def announcement(kind: str, **fields: Any) -> str:
    """What :func:`announce` sends on ``CHANNEL``, for a statement that calls ``pg_notify``
    itself."""
    return live.payload_of({"kind": kind, **fields})


class LiveFeed(live.LiveFeed):
    """This process's ``LISTEN`` on the board's channel."""

    def __init__(self, conninfo: str, retry_seconds: float = 1.0):
        super().__init__(conninfo, CHANNEL, retry_seconds)
