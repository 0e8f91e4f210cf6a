"""Accounting's own Prometheus metrics: payouts, payout mails, balances below zero."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import Counter
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from accounting.models import NegativeBalanceCount
from messaging.metrics import scrape_gauge

if TYPE_CHECKING:
    from accounting.closing import ClosedDay

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


def register_gauges(sessions: sessionmaker[Session]) -> None:
    scrape_gauge(
        "ates_accounting_negative_balances",
        "Accounts whose balance is below zero.",
        lambda: negative_balances(sessions),
    )
