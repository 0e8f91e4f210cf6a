"""Accounting's own Prometheus metrics: payouts, payout mails, balances below zero."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import Counter
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from accounting import closing, verify
from accounting.models import NegativeBalanceCount, PayoutEmail
from platform_kit.metrics import scrape_gauge

if TYPE_CHECKING:
    from accounting.closing import ClosedDay
    from accounting.ledger_sql import Books

PAYOUTS = Counter("ates_payouts_total", "Payouts made when closing billing days.")
PAID_OUT = Counter("ates_paid_out_total", "Sum of the payouts made, in cents.")
EMAILS_SENT = Counter("ates_payout_emails_sent_total", "Payout mails the SMTP server accepted.")
EMAILS_POSTPONED = Counter(
    "ates_payout_emails_postponed_total", "Payout mails not sent on an attempt (retried later)."
)


def count_payouts(closed: Iterable[ClosedDay]) -> None:
    for day in closed:
        PAYOUTS.inc(day.accounts_paid)
        PAID_OUT.inc(day.total_paid)


def negative_balances(sessions: sessionmaker[Session]) -> int:
    """A sum over the few rows of ``negative_balance_counts``: the same cost at any size."""
    with sessions() as session:
        total = func.coalesce(func.sum(NegativeBalanceCount.negative), 0)
        return session.scalar(select(total)) or 0


def ended_days_not_closed(sessions: sessionmaker[Session], books: Books) -> int:
    with sessions() as session:
        return closing.ended_days_not_closed(session, books)


def oldest_due_mail_age(sessions: sessionmaker[Session], now: datetime) -> float:
    """Seconds since the oldest unsent payout mail was due (0 when none is waiting); read
    from the partial index of unsent mails."""
    with sessions() as session:
        due = session.scalar(
            select(func.min(PayoutEmail.next_attempt_at)).where(PayoutEmail.sent_at.is_(None))
        )
    return max(0.0, (now - due).total_seconds()) if due else 0.0


def ledger_holds(sessions: sessionmaker[Session]) -> float:
    """1 when the last ``ates accounting verify`` found the ledger intact, 0 when it found
    a break, -1 before the first run."""
    with sessions() as session:
        last = verify.last_verification(session.connection())
    return -1 if last is None else float(last.holds)


def ledger_verified_at(sessions: sessionmaker[Session]) -> float:
    with sessions() as session:
        last = verify.last_verification(session.connection())
    return 0 if last is None else last.verified_at.timestamp()


def register_gauges(sessions: sessionmaker[Session], books: Books) -> None:
    scrape_gauge(
        "ates_accounting_ledger_holds",
        "Result of the last ledger verification: 1 intact, 0 broken, -1 never verified.",
        lambda: ledger_holds(sessions),
    )
    scrape_gauge(
        "ates_accounting_ledger_verified_timestamp_seconds",
        "When the ledger was last verified (Unix time; 0 when never).",
        lambda: ledger_verified_at(sessions),
    )
    scrape_gauge(
        "ates_accounting_negative_balances",
        "Accounts whose balance is below zero.",
        lambda: negative_balances(sessions),
    )
    scrape_gauge(
        "ates_accounting_ended_days_not_closed",
        "Days that have ended in the billing time zone and are not closed yet.",
        lambda: ended_days_not_closed(sessions, books),
    )
    scrape_gauge(
        "ates_payout_emails_oldest_due_age_seconds",
        "How long the oldest unsent payout mail has been due (0 when none is waiting).",
        lambda: oldest_due_mail_age(sessions, books.clock()),
    )
