"""The events accounting emits: their names, version and time format, and the builder of
those written one at a time (those written in bulk are rendered by the statements of
``accounting.bulk_sql``, through ``messaging.bulk_events``)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from event_schemas import Event, SchemaRegistry, default_registry

SOURCE = "accounting"
TASK_PRICED = "task.priced"
TRANSACTION_APPLIED = "transaction.applied"
TRANSACTION_CORRECTED = "transaction.corrected"
PAYMENT_MADE = "payment.made"
BILLING_CYCLE_CLOSED = "billing_cycle.closed"
VERSION = 1

RFC3339_UTC = "%Y-%m-%dT%H:%M:%S.%fZ"


def rfc3339(moment: datetime) -> str:
    """``2026-11-22T10:15:00.123456Z``: the one time format of every accounting event."""
    return moment.astimezone(UTC).strftime(RFC3339_UTC)


class AccountingEvents:
    """Builds validated events, one at a time."""

    def __init__(self, registry: SchemaRegistry | None = None):
        self.registry = registry or default_registry()

    def billing_cycle_closed(
        self,
        day: date,
        closed_at: datetime,
        accounts_paid: int,
        total_paid: int,
        traceparent: str | None = None,
    ) -> Event:
        time = rfc3339(closed_at)
        data = {
            "day": day.isoformat(),
            "closed_at": time,
            "accounts_paid": accounts_paid,
            "total_paid": total_paid,
        }
        return self.registry.build(
            BILLING_CYCLE_CLOSED,
            data,
            source=SOURCE,
            version=VERSION,
            traceparent=traceparent,
            time=time,
        )

    def transaction_corrected(
        self,
        *,
        transaction_id: uuid.UUID,
        account_id: uuid.UUID,
        type: str,
        amount: int,
        balance_after: int,
        task_id: uuid.UUID | None,
        day: date,
        applied_at: datetime,
        corrects: uuid.UUID | None,
        counts_as: str,
        reason: str,
        booked_by: str,
        traceparent: str | None = None,
    ) -> Event:
        time = rfc3339(applied_at)
        data = {
            "transaction_id": str(transaction_id),
            "account_id": str(account_id),
            "type": type,
            "amount": amount,
            "balance_after": balance_after,
            "task_id": None if task_id is None else str(task_id),
            "day": day.isoformat(),
            "applied_at": time,
            "corrects_transaction_id": None if corrects is None else str(corrects),
            "counts_as": counts_as,
            "reason": reason,
            "booked_by": booked_by,
        }
        return self.registry.build(
            TRANSACTION_CORRECTED,
            data,
            source=SOURCE,
            version=VERSION,
            traceparent=traceparent,
            time=time,
        )
