"""SQL building blocks for the statements that write many rows at once: ids, the events
rendered by the database, and the entries and day totals every booking writes.

Ids. ``gen_random_uuid()`` reads the system's randomness on every call, which costs a few
microseconds each and dominated closing a day for 100,000 accounts. The ids of one
statement are instead derived from a random seed drawn once for it (``new_seed``) and
what makes each id distinct within the statement (``derived_uuid``): an MD5 of the two,
shaped as a version 4 UUID. Unpredictable without the seed, distinct within it.

Events. The payload is the CloudEvents JSON that ``Event.to_json`` produces, concatenated
from SQL expressions by ``messaging.bulk_events`` (several times faster than
``jsonb_build_object``, which counts when a day's close writes two events per paid
account); every value of ``data`` goes through one of its helpers (``quoted``,
``number``...), which say how it becomes JSON text. Callers parse one stored event of each
kind back through the schema registry before committing (``validate_first``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from accounting.domain import COMPANY_ACCOUNT_ID
from accounting.events import SOURCE, VERSION
from event_schemas import SchemaRegistry
from messaging.bulk_events import EventsOfRows, Json
from messaging.tables import outbox

# Bookings add to the day_totals row of their connection's shard (models.DayTotal).
DAY_TOTAL_SHARDS = 16


def plan_with_actual_sizes(session: Session) -> None:
    """Plan the rest of the transaction's statements for their actual arguments.

    Bulk statements take arrays, and the planner must see how long they are: a generic
    plan (psycopg prepares a statement run a few times) assumes ten rows and may pick
    nested loops that turn quadratic with thousands.
    """
    session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def new_seed() -> str:
    return secrets.token_hex(16)


def derived_uuid(seed: str, *distinct: str) -> str:
    """SQL for a UUID derived from the statement's ``seed`` and the ``distinct`` SQL
    expressions (text), which tell apart the ids the statement draws."""
    digest = " || ".join((f"CAST({seed} AS text)", *distinct))
    return f"CAST(overlay(overlay(md5({digest}) placing '4' from 13) placing '8' from 17) AS uuid)"


def accounting_events(
    event_type: str,
    event_id: str,
    key: str,
    time: str,
    data: Mapping[str, Json],
    traceparent: str,
) -> EventsOfRows:
    """Accounting's events of ``event_type`` rendered by the database, one per row (see
    ``messaging.bulk_events.EventsOfRows``; all arguments but the type are SQL)."""
    return EventsOfRows(event_type, VERSION, SOURCE, event_id, key, time, data, traceparent)


# -- the ledger's shared fragments ------------------------------------------------------


def both_legs(rows: str, transaction_id: str, account_id: str, amount: str) -> str:
    """SQL inserting the two entries of each transaction of ``rows``: ``amount`` to the
    account and its opposite to the company (all SQL expressions over the rows)."""
    return f"""INSERT INTO entries (transaction_id, account_id, amount)
        SELECT {transaction_id}, leg.account_id, leg.amount
        FROM {rows}
        CROSS JOIN LATERAL (
            VALUES ({account_id}, {amount}),
                   ('{COMPANY_ACCOUNT_ID}'::uuid, -({amount}))
        ) AS leg (account_id, amount)"""


def add_to_day_totals(day: str, fees_charged: str, rewards_paid: str, rows: str) -> str:
    """SQL adding what ``rows`` charged and paid (SQL expressions over them) to the
    ``day`` totals of the connection's shard (``models.DayTotal``)."""
    return f"""INSERT INTO day_totals AS d (day, shard, fees_charged, rewards_paid)
        SELECT {day}, pg_backend_pid() % {DAY_TOTAL_SHARDS}, {fees_charged}, {rewards_paid}
        FROM {rows}
        ON CONFLICT (day, shard) DO UPDATE
        SET fees_charged = d.fees_charged + excluded.fees_charged,
            rewards_paid = d.rewards_paid + excluded.rewards_paid"""


def validate_first(session: Session, registry: SchemaRegistry, event_ids: list[str]) -> None:
    """Parse (and so validate) the stored events ``event_ids``: one of each kind written
    by a statement stands for all, since they are rendered alike."""
    query = select(outbox.c.payload).where(outbox.c.event_id.in_(event_ids))
    payloads: Iterable[bytes] = session.scalars(query)
    for payload in payloads:
        registry.parse(bytes(payload))
