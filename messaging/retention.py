"""Retention: delivered outbox rows and old inbox rows are deleted in small batches.

The outbox keeps an event until the broker has it (``sent_at``); afterwards the row only
serves inspection, so it can go after a grace period. Unsent rows are never touched.

The inbox makes redelivery a no-op, so its records must outlive any redelivery: pruning
it is for events older than the oldest a group reset, replay or redrive can bring back.
"""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import Engine, TextClause, text

from messaging.tables import inbox, outbox
from platform_kit.progress import Progress

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

# Oldest first, along the primary key, so each batch reads only the rows it deletes.
_PRUNE_OUTBOX = text(
    f"DELETE FROM {outbox.name} WHERE id = ANY(ARRAY("
    f"SELECT id FROM {outbox.name} WHERE sent_at < now() - :age ORDER BY id LIMIT :batch))"
)
# The inbox has no index on handled_at: each batch goes on along the table from where the
# last one stopped (a TID range scan), instead of reading the deleted rows again.
_PRUNE_INBOX = text(
    f"WITH doomed AS (SELECT ctid FROM {inbox.name} WHERE ctid > CAST(:after AS tid)"
    f" AND handled_at < now() - :age ORDER BY ctid LIMIT :batch),"
    f" deleted AS (DELETE FROM {inbox.name} WHERE ctid = ANY(ARRAY(SELECT ctid FROM doomed)))"
    " SELECT count(*), CAST(max(ctid) AS text) FROM doomed"
)


def parse_age(value: str) -> timedelta:
    """``90s``, ``15m``, ``12h`` or ``7d``."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", value)
    if not match:
        raise ValueError(f"not an age: {value!r} (use e.g. 90s, 15m, 12h or 7d)")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def prune_outbox(engine: Engine, older_than: timedelta, batch: int = 5000,
                 progress: Progress | None = None) -> int:
    """Delete events delivered more than ``older_than`` ago; returns how many.
    ``progress`` (like a tqdm bar: ``update(n)``) is told each batch deleted."""
    return _prune(engine, _PRUNE_OUTBOX, older_than, batch, progress)


def prune_inbox(engine: Engine, older_than: timedelta, batch: int = 5000,
                progress: Progress | None = None) -> int:
    """Delete inbox records of events handled more than ``older_than`` ago, in one pass
    over the table."""
    deleted, after = 0, "(0,0)"
    while True:
        with engine.begin() as connection:
            # how many were deleted, and the ctid of the last (NULL when none, and then
            # fewer than ``batch`` were deleted: the pass is over)
            row: tuple[int, str] = connection.execute(
                _PRUNE_INBOX, {"age": older_than, "batch": batch, "after": after}
            ).one()
        count, last = row
        deleted += count
        if progress is not None:
            progress.update(count)
        if count < batch:
            return deleted
        after = last


def _prune(engine: Engine, statement: TextClause, older_than: timedelta, batch: int,
           progress: Progress | None = None) -> int:
    deleted = 0
    while True:
        # one short transaction per batch: no long lock on a table the relay works on
        with engine.begin() as connection:
            count = connection.execute(statement, {"age": older_than, "batch": batch}).rowcount
        deleted += count
        if progress is not None:
            progress.update(count)
        if count < batch:
            return deleted
