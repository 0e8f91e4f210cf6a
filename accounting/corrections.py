"""Corrections, never edits: reversing a fee or a reward, and adjusting a balance by hand.

Each correction is a new balanced transaction (both legs, the balance moved, the hash
chained) booked on the day that is open when it is recorded, linked to what it corrects,
with the reason and who asked for it, and announced by ``transaction.corrected``. The use
cases are ``AccountingService.reverse`` and ``adjust`` (``accounting.service``); here are
what they check and the SQL that books them.
A transaction is reversed at most once (a unique index on ``corrects_id`` besides the
check made here); payouts, reversals and adjustments are never reversed (a wrong
adjustment is corrected by another adjustment).

Management's earnings count a correction on the day it is booked, under ``counts_as``:
a reversed fee lowers that day's fees charged and a reversed reward lowers that day's
rewards paid; an adjustment that charges the popug counts as a fee charged and one that
credits them as a reward paid. The day of the original keeps its figures: closed days
never change.

Idempotency: a request may carry an ``Idempotency-Key`` (scoped to the caller). The key
is stored with a sha256 of the request and the transaction booked, in the same database
transaction. The same key with the same request answers that transaction again and books
nothing; with another request it is refused (``IdempotencyKeyReused``). Writers of the
ledger run one after the other (``ledger_sql.lock_chain``), so two requests racing with one
key also book once.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from accounting import bulk_sql, domain, ledger_sql
from accounting.domain import ADJUSTMENT, REVERSIBLE
from accounting.ledger_sql import Books, current_day
from accounting.models import Balance, CorrectionRequest, LedgerTransaction
from event_schemas import Event

MAX_KEY_LENGTH = 255

# What the chain hashes for a correction (see migrations 0007 and 0009), from the
# columns of the row being inserted.
_CORRECTION_TEXT = """ledger_correction_text(
    ledger_transaction_text(CAST(:public_id AS uuid), CAST(:type AS text),
                            CAST(:account AS uuid), CAST(:task AS uuid), CAST(:day AS date),
                            CAST(:amount AS bigint), m.balance, CAST(:at AS timestamptz),
                            NULL::uuid),
    CAST(:corrects AS bigint), CAST(:counts_as AS text), CAST(:by AS text),
    CAST(:reason AS text))"""

_BOOK_CORRECTION = text(
    f"""
    WITH moved AS (
        UPDATE balances SET balance = balance + CAST(:amount AS bigint)
        WHERE account_id = CAST(:account AS uuid)
        RETURNING balance
    ),
    booked AS (
        INSERT INTO transactions
            (public_id, type, account_id, task_id, day, amount, balance_after, created_at,
             source_event_id, hash, corrects_id, counts_as, reason, booked_by)
        SELECT CAST(:public_id AS uuid), CAST(:type AS text), CAST(:account AS uuid),
               CAST(:task AS uuid), CAST(:day AS date), CAST(:amount AS bigint), m.balance,
               CAST(:at AS timestamptz), NULL,
               ledger_chain_step(NULL, {ledger_sql.CHAIN_TIP}, {_CORRECTION_TEXT}),
               CAST(:corrects AS bigint), CAST(:counts_as AS text), CAST(:reason AS text),
               CAST(:by AS text)
        FROM moved m
        RETURNING id, account_id, amount, balance_after
    ),
    legs AS (
        {bulk_sql.both_legs("booked", "booked.id", "booked.account_id", "booked.amount")}
    ),
    totals AS (
        {bulk_sql.add_to_day_totals(
            "CAST(:day AS date)",
            "CASE WHEN CAST(:counts_as AS text) = 'fee' THEN -amount ELSE 0 END",
            "CASE WHEN CAST(:counts_as AS text) = 'reward' THEN amount ELSE 0 END",
            "booked",
        )}
    )
    SELECT id, balance_after FROM booked
    """
)


@dataclass(frozen=True)
class CorrectionRequested:
    """What a caller asked for: a reversal of ``target`` (a transaction) or an adjustment
    of ``target`` (an account) by ``amount``."""

    type: str
    target: uuid.UUID
    reason: str
    amount: int | None = None

    def fingerprint(self) -> bytes:
        body = {"type": self.type, "target": str(self.target), "reason": self.reason,
                "amount": self.amount}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()


@dataclass(frozen=True)
class Corrected:
    """The correction booked (``replayed``: booked before, under the same key)."""

    transaction_id: uuid.UUID
    replayed: bool


def check_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise domain.InvalidCorrection(
            f"an Idempotency-Key is 1 to {MAX_KEY_LENGTH} printable characters")
    return key


def earlier_request(session: Session, by: str, key: str, asked: CorrectionRequested
                    ) -> uuid.UUID | None:
    """The correction booked before under ``key`` by ``by``, if any; refused when it was
    asked for something else."""
    found = session.execute(
        select(CorrectionRequest.fingerprint, LedgerTransaction.public_id)
        .join(LedgerTransaction, LedgerTransaction.id == CorrectionRequest.transaction_id)
        .where(CorrectionRequest.caller == by, CorrectionRequest.key == key)
    ).first()
    if found is None:
        return None
    if bytes(found.fingerprint) != asked.fingerprint():
        raise domain.IdempotencyKeyReused()
    public_id: uuid.UUID = found.public_id
    return public_id


@dataclass(frozen=True)
class _Plan:
    account_id: uuid.UUID
    amount: int
    task_id: uuid.UUID | None
    corrects: LedgerTransaction | None
    counts_as: str


def _plan(session: Session, asked: CorrectionRequested) -> _Plan:
    if asked.type == ADJUSTMENT:
        assert asked.amount is not None
        known = session.scalar(select(Balance.account_id).where(
            Balance.account_id == asked.target))
        if known is None:
            raise domain.NotFound(f"no account {asked.target}")
        return _Plan(asked.target, asked.amount, None, None,
                     domain.counted_as_when_adjusting(asked.amount))
    original = session.scalar(select(LedgerTransaction).where(
        LedgerTransaction.public_id == asked.target))
    if original is None:
        raise domain.NotFound(f"no transaction {asked.target}")
    if original.type not in REVERSIBLE:
        raise domain.InvalidCorrection(
            f"only fees and rewards can be reversed, and {asked.target} is a {original.type}")
    reversal = session.scalar(select(LedgerTransaction.public_id).where(
        LedgerTransaction.corrects_id == original.id))
    if reversal is not None:
        raise domain.AlreadyReversed(original.public_id, reversal)
    return _Plan(original.account_id, -original.amount, original.task_id, original,
                 original.type)


def book_correction(session: Session, books: Books, asked: CorrectionRequested, by: str,
                    traceparent: str | None) -> tuple[int, uuid.UUID]:
    """Book ``asked`` (checked against the ledger first) and announce it; returns the
    transaction's id and public id."""
    plan = _plan(session, asked)
    day, now = current_day(session, books)
    public_id = uuid.uuid4()
    booked = session.execute(_BOOK_CORRECTION, {
        "public_id": public_id, "type": asked.type, "account": plan.account_id,
        "task": plan.task_id, "day": day, "amount": plan.amount, "at": now,
        "corrects": plan.corrects.id if plan.corrects else None,
        "counts_as": plan.counts_as, "reason": asked.reason, "by": by,
    }).one()
    booked_id: int = booked.id
    balance_after: int = booked.balance_after
    books.outbox.publish(session, _event(books, public_id, plan, asked, balance_after, day,
                                         now, by, traceparent))
    return booked_id, public_id


def _event(books: Books, public_id: uuid.UUID, plan: _Plan, asked: CorrectionRequested,
           balance_after: int, day: date, now: datetime, by: str,
           traceparent: str | None) -> Event:
    return books.events.transaction_corrected(
        transaction_id=public_id, account_id=plan.account_id, type=asked.type,
        amount=plan.amount, balance_after=balance_after, task_id=plan.task_id, day=day,
        applied_at=now, corrects=plan.corrects.public_id if plan.corrects else None,
        counts_as=plan.counts_as, reason=asked.reason, booked_by=by, traceparent=traceparent,
    )
