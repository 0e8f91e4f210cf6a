"""The CSV exports of the accounting service: rows produced as they are read, so that a
download streams whatever the ledger's size (``accounting.spreadsheet`` writes them)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date

from accounting.queries import (
    EVERYTHING,
    AccountingQueries,
    LedgerLine,
    StatementFilter,
    TaskInfo,
    Transaction,
    id_range,
    in_statement,
    ledger_line,
    ledger_lines,
)

AUDIT_LOG_CSV_HEADER = [
    "id",
    "account_id",
    "day",
    "created_at",
    "type",
    "amount",
    "balance_after",
    "task_id",
    "task_jira_id",
    "task_title",
    "task_description",
    "corrects",
    "reversed_by",
    "reason",
    "booked_by",
]
MANAGEMENT_CSV_HEADER = ["day", "fees_charged", "rewards_paid", "earned"]


class AccountingExports:
    """The exports, read through ``queries`` (and its sessions)."""

    def __init__(self, queries: AccountingQueries) -> None:
        self.queries = queries

    def audit_log_csv_rows(
        self, account_id: uuid.UUID | None = None, statement: StatementFilter = EVERYTHING,
    ) -> Iterator[list[str]]:
        """The audit log (of one account, or of all) as CSV rows, header first, oldest
        first; ``statement`` filters one account's."""
        yield AUDIT_LOG_CSV_HEADER
        query = ledger_lines().order_by(Transaction.id).execution_options(yield_per=1000)
        with self.queries.sessions() as session:
            if account_id:
                query = query.where(Transaction.account_id == account_id)
                ids = id_range(session, account_id, statement)
                if ids is None:
                    return
                query = in_statement(query, ids, statement)
            for row in session.execute(query):
                yield _csv_line(ledger_line(row))

    def management_csv_rows(self, first: date, last: date) -> Iterator[list[str]]:
        """The per-day management report as CSV rows, header first."""
        yield MANAGEMENT_CSV_HEADER
        for day in self.queries.management_days(first, last):
            yield [day.day.isoformat(), str(day.fees_charged), str(day.rewards_paid),
                   str(day.earned)]


def _csv_line(line: LedgerLine) -> list[str]:
    task = line.task or TaskInfo(None, None, None)
    return [
        str(line.id),
        str(line.account_id),
        line.day.isoformat(),
        line.created_at.isoformat(),
        line.type,
        str(line.amount),
        str(line.balance_after),
        str(line.task_id or ""),
        task.jira_id or "",
        task.title or "",
        task.description or "",
        str(line.corrects or ""),
        str(line.reversed_by or ""),
        line.reason or "",
        line.booked_by or "",
    ]
