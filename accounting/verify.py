"""Proving that nobody edited the books: the hash chain and the ledger's invariants.

``verify`` streams through the transactions in id order (the order of the chain, see
migration 0007), recomputing each hash from the stored hash of the one before and the
transaction's own contents: the first transaction whose hash does not match is the first
break (its contents were changed, or a transaction before it was removed or changed).
It then checks that the newest transaction of the previous run is still there with the
same hash (removing the newest transactions leaves a valid, shorter chain otherwise),
and the invariants below, each naming its first offending row. Every run is recorded in
``ledger_verifications``; the newest is exposed as a metric.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, insert, select, text

from accounting.domain import COMPANY_ACCOUNT_ID
from accounting.models import LedgerVerification

_COMPANY = f"'{COMPANY_ACCOUNT_ID}'"

# What must hold of the ledger, each as a query of the offending rows (first first),
# the first column naming the row.
INVARIANTS: dict[str, str] = {
    "the entries of a transaction do not sum to zero": """
        SELECT transaction_id FROM entries GROUP BY transaction_id
        HAVING sum(amount) <> 0 OR count(*) <> 2 ORDER BY transaction_id
    """,
    "a transaction lacks a leg or misstates its amount": f"""
        SELECT t.public_id FROM transactions t
        LEFT JOIN entries own ON own.transaction_id = t.id AND own.account_id = t.account_id
        LEFT JOIN entries company ON company.transaction_id = t.id
             AND company.account_id = {_COMPANY}
        WHERE own.amount IS NULL OR company.amount IS NULL OR own.amount + company.amount <> 0
           OR own.amount <> t.amount
        ORDER BY t.id
    """,
    "entries without their transaction": """
        SELECT e.transaction_id FROM entries e LEFT JOIN transactions t ON t.id = e.transaction_id
        WHERE t.id IS NULL ORDER BY e.transaction_id
    """,
    "a balance differs from the sum of its entries": f"""
        SELECT coalesce(b.account_id, s.account_id) FROM balances b
        FULL JOIN (
            SELECT account_id, sum(amount) AS total FROM entries
            WHERE account_id <> {_COMPANY} GROUP BY account_id
        ) s ON s.account_id = b.account_id
        WHERE coalesce(b.balance, 0) <> coalesce(s.total, 0)
        ORDER BY 1
    """,
    "a balance_after differs from the running sum of the account's transactions": """
        SELECT public_id FROM (
            SELECT id, public_id, balance_after,
                   sum(amount) OVER (PARTITION BY account_id ORDER BY id) AS running
            FROM transactions
        ) r WHERE balance_after <> running ORDER BY id
    """,
    "more than one fee or reward for one task event": """
        SELECT source_event_id FROM transactions WHERE source_event_id IS NOT NULL
        GROUP BY source_event_id HAVING count(*) > 1 ORDER BY min(id)
    """,
    "a fee or reward without the task event that caused it": """
        SELECT public_id FROM transactions
        WHERE type IN ('fee', 'reward') AND source_event_id IS NULL ORDER BY id
    """,
    "more than one reward for a task": """
        SELECT task_id FROM transactions WHERE type = 'reward'
        GROUP BY task_id HAVING count(*) > 1 ORDER BY min(id)
    """,
    "a reversal does not mirror what it reverses": """
        SELECT r.public_id FROM transactions r LEFT JOIN transactions o ON o.id = r.corrects_id
        WHERE r.type = 'reversal' AND (
            o.id IS NULL OR o.id >= r.id OR o.type NOT IN ('fee', 'reward')
            OR r.amount <> -o.amount OR r.account_id <> o.account_id
            OR r.counts_as <> o.type OR r.task_id IS DISTINCT FROM o.task_id)
        ORDER BY r.id
    """,
    "more than one payout for an account and day": """
        SELECT account_id || ' on ' || day FROM transactions WHERE type = 'payout'
        GROUP BY account_id, day HAVING count(*) > 1 ORDER BY min(id)
    """,
    "a payout differs from its transaction": """
        SELECT p.public_id FROM payouts p
        LEFT JOIN transactions t ON t.id = p.transaction_id
        WHERE t.id IS NULL OR t.type <> 'payout' OR t.amount <> -p.amount
           OR t.account_id <> p.account_id OR t.day <> p.day
        ORDER BY p.id
    """,
    "a payout transaction without its payout": """
        SELECT t.public_id FROM transactions t LEFT JOIN payouts p ON p.transaction_id = t.id
        WHERE t.type = 'payout' AND p.id IS NULL ORDER BY t.id
    """,
    "a day's totals differ from its fees and rewards": """
        SELECT coalesce(t.day, d.day) FROM (
            SELECT day, -sum(amount) FILTER (WHERE coalesce(counts_as, type) = 'fee') AS fees,
                   sum(amount) FILTER (WHERE coalesce(counts_as, type) = 'reward') AS rewards
            FROM transactions WHERE type <> 'payout' GROUP BY day
        ) t FULL JOIN (
            SELECT day, sum(fees_charged) AS fees, sum(rewards_paid) AS rewards
            FROM day_totals GROUP BY day
        ) d ON d.day = t.day
        WHERE coalesce(t.fees, 0) <> coalesce(d.fees, 0)
           OR coalesce(t.rewards, 0) <> coalesce(d.rewards, 0)
        ORDER BY 1
    """,
    "the count of negative balances is off": """
        SELECT (SELECT count(*) FROM balances WHERE balance < 0)
            - (SELECT coalesce(sum(negative), 0) FROM negative_balance_counts)
        WHERE (SELECT count(*) FROM balances WHERE balance < 0)
            <> (SELECT coalesce(sum(negative), 0) FROM negative_balance_counts)
    """,
}

# What the chain hashes of a stored transaction (migrations 0007 and 0009).
CONTENTS = """
    CASE WHEN counts_as IS NULL THEN ledger_transaction_text(
             public_id, type, account_id, task_id, day, amount, balance_after, created_at,
             source_event_id)
    ELSE ledger_correction_text(
             ledger_transaction_text(public_id, type, account_id, task_id, day, amount,
                                     balance_after, created_at, source_event_id),
             corrects_id, counts_as, booked_by, reason)
    END"""

_CHAIN = text(f"SELECT id, public_id, hash, {CONTENTS} AS contents FROM transactions ORDER BY id")


@dataclass(frozen=True)
class Break:
    """What does not hold, and the first row where it does not."""

    check: str
    where: str

    def __str__(self) -> str:
        return f"{self.check}: {self.where}"


@dataclass(frozen=True)
class Verification:
    transactions: int
    breaks: list[Break]
    tip: tuple[int, bytes] | None

    @property
    def holds(self) -> bool:
        return not self.breaks


def chain_hash(previous: bytes | None, contents: str) -> bytes:
    """The hash of a transaction: what ``ledger_chain_step`` computes in SQL."""
    return hashlib.sha256((previous or b"") + contents.encode()).digest()


def _first_chain_break(connection: Connection) -> tuple[int, tuple[int, bytes] | None,
                                                       Break | None]:
    count, previous, tip, found = 0, None, None, None
    rows = connection.execution_options(stream_results=True, yield_per=5000).execute(_CHAIN)
    for row in rows:
        count += 1
        if found is None and chain_hash(previous, row.contents) != bytes(row.hash):
            found = Break(
                "the hash chain is broken",
                f"transaction {row.public_id} (#{row.id}) does not match its hash: it, or the"
                " transaction before it, was changed or removed",
            )
        previous = bytes(row.hash)
        tip = (row.id, previous)
    return count, tip, found


def first_chain_break(connection: Connection) -> Break | None:
    return _first_chain_break(connection)[2]


def _tip_kept(connection: Connection) -> Break | None:
    last = connection.execute(
        select(LedgerVerification.tip_id, LedgerVerification.tip_hash)
        .where(LedgerVerification.tip_id.is_not(None))
        .order_by(LedgerVerification.id.desc()).limit(1)
    ).first()
    if last is None:
        return None
    stored = connection.scalar(text("SELECT hash FROM transactions WHERE id = :id"),
                               {"id": last.tip_id})
    if stored is not None and bytes(stored) == bytes(last.tip_hash):
        return None
    return Break("a transaction verified before is gone or changed",
                 f"transaction #{last.tip_id}, the newest at the previous verification")


def _invariant_breaks(connection: Connection) -> list[Break]:
    breaks = []
    for name, query in INVARIANTS.items():
        first = connection.execute(text(f"SELECT * FROM ({query}) AS offending LIMIT 1")).first()
        if first is not None:
            breaks.append(Break(name, str(first[0])))
    return breaks


def verify(engine: Engine, clock: Callable[[], datetime]) -> Verification:
    """Check the chain and the invariants, and record the result."""
    with engine.connect() as connection:
        # one snapshot for every check: writers may go on meanwhile
        connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
        count, tip, chain_break = _first_chain_break(connection)
        tip_break = _tip_kept(connection)
        breaks = [b for b in (chain_break, tip_break) if b] + _invariant_breaks(connection)
        connection.rollback()
    result = Verification(count, breaks, tip)
    with engine.begin() as connection:
        connection.execute(insert(LedgerVerification).values(
            verified_at=clock(), holds=result.holds, transactions=count,
            tip_id=tip[0] if tip and not tip_break else None,
            tip_hash=tip[1] if tip and not tip_break else None,
            first_break=str(breaks[0]) if breaks else None,
        ))
    return result


@dataclass(frozen=True)
class LastVerification:
    holds: bool
    verified_at: datetime


def last_verification(connection: Connection) -> LastVerification | None:
    row = connection.execute(
        select(LedgerVerification.holds, LedgerVerification.verified_at)
        .order_by(LedgerVerification.id.desc()).limit(1)
    ).first()
    return LastVerification(row.holds, row.verified_at) if row else None
