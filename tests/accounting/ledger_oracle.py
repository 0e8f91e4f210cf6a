"""A test oracle: the ledger's rules that production states once, in SQL, restated in
Python so that tests can check what the statements wrote against them.

Production never imports this module: what a task charges is the fee or reward of its
price signed as seen from the account (``ledger_sql``), both legs of every transaction
are written by ``bulk_sql.both_legs`` and a day's payouts by ``closing``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from accounting.domain import COMPANY_ACCOUNT_ID, FEE, Price, signed_amount


def task_charge(transaction_type: str, price: Price) -> int:
    """What a task's assignment (fee) or completion (reward) does to the assignee's balance."""
    cents = price.fee if transaction_type == FEE else price.reward
    return signed_amount(transaction_type, cents)


@dataclass(frozen=True)
class Entry:
    account_id: uuid.UUID
    amount: int


def double_entry(account_id: uuid.UUID, amount: int) -> tuple[Entry, Entry]:
    """The popug's entry and the company's opposite one."""
    if account_id == COMPANY_ACCOUNT_ID:
        raise ValueError("the company cannot trade with itself")
    return Entry(account_id, amount), Entry(COMPANY_ACCOUNT_ID, -amount)


def is_balanced(entries: Iterable[Entry]) -> bool:
    return sum(entry.amount for entry in entries) == 0


def payout_for(balance: int) -> int:
    """What is paid at the end of a day: a positive balance in full, otherwise nothing
    (a negative balance carries over unchanged)."""
    return balance if balance > 0 else 0
