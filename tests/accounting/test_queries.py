"""What the dashboards will show: balances, audit logs, per-day history, CSV exports."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accounting import domain, exports, queries
from accounting.domain import TaskDescription, task_facts
from accounting.exports import AccountingExports
from accounting.queries import AccountingQueries
from accounting.service import AccountingService, LedgerCommands
from platform_kit import cursor
from tests.accounting.conftest import (
    DAY,
    add_account,
    assign,
    complete,
    moment,
    new_id,
    price_of,
    queries_of,
    task_state_event,
)


def a_closed_day_with_one_task(sessions, engine, books, clock):
    """An account assigned and completing a task on DAY, which is then closed; the clock
    is moved to the next day. Returns the account, the task and its fee and reward."""
    clock.set(moment(DAY))
    account = add_account(sessions)
    task = new_id()
    assign(sessions, books, task, account)
    complete(sessions, books, task, account)
    AccountingService(sessions, books).close_day(DAY)
    clock.advance(days=1)
    return account, task, *price_of(engine, task)


def test_summary_shows_the_balance_and_what_was_earned_today(sessions, engine, books, clock):
    account, _, fee, reward = a_closed_day_with_one_task(sessions, engine, books, clock)
    other = new_id()
    assign(sessions, books, other, account)

    summary = queries_of(sessions, books).account_summary(account)
    assert summary.day == DAY + timedelta(days=1)
    assert summary.balance == -price_of(engine, other)[0]
    assert summary.earned_today == -price_of(engine, other)[0]
    assert queries_of(sessions, books).account_summary(new_id()).balance == 0
    assert reward - fee > 0


def test_audit_log_pages_newest_first_and_fills_in_tasks_learned_later(
    sessions, engine, books, clock
):
    clock.set(moment(DAY))
    account = add_account(sessions)
    tasks = [new_id() for _ in range(5)]
    for task in tasks:
        assign(sessions, books, task, account)

    first, cursor = AccountingQueries(sessions).audit_log(account, limit=2)
    second, cursor2 = AccountingQueries(sessions).audit_log(account, cursor=cursor, limit=2)
    third, end = AccountingQueries(sessions).audit_log(account, cursor=cursor2, limit=2)
    lines = first + second + third
    assert end is None and len(lines) == 5
    assert [line.task_id for line in lines] == tasks[::-1]
    assert [line.balance_after for line in lines] == [
        -sum(price_of(engine, t)[0] for t in tasks[: 5 - i]) for i in range(5)
    ]
    assert all(line.task is None and line.type == "fee" for line in lines)

    state = task_state_event(tasks[0], account, "Fix the button", "UBERPOP-42", description="Why")
    with sessions() as session, session.begin():
        LedgerCommands(books).apply_task_states(session, [task_facts(state.data, 2)])
    [*_, oldest] = AccountingQueries(sessions).audit_log(account)[0]
    assert oldest.task == queries.TaskInfo("Fix the button", "UBERPOP-42", "Why")
    assert oldest.amount == -price_of(engine, tasks[0])[0]
    assert oldest.day == DAY


def test_bad_cursors_and_limits_are_refused(sessions):
    with pytest.raises(domain.InvalidCursor):
        AccountingQueries(sessions).audit_log(new_id(), cursor="not a cursor!")
    with pytest.raises(domain.InvalidCursor):
        AccountingQueries(sessions).audit_log(new_id(), cursor=cursor.encode_id(new_id()))
    with pytest.raises(domain.InvalidCursor):
        AccountingQueries(sessions).account_days(new_id(), cursor="yesterday")
    with pytest.raises(domain.InvalidRange):
        AccountingQueries(sessions).list_balances(limit=0)


def test_history_has_one_line_per_day(sessions, engine, books, clock):
    account, task, fee, reward = a_closed_day_with_one_task(sessions, engine, books, clock)
    assign(sessions, books, task, account)

    days, cursor = AccountingQueries(sessions).account_days(account, limit=1)
    older, end = AccountingQueries(sessions).account_days(account, cursor=cursor)
    assert end is None
    assert days == [queries.AccountDay(DAY + timedelta(days=1), -fee, 0, 0)]
    assert older == [queries.AccountDay(DAY, -fee, reward, -(reward - fee))]
    assert older[0].earned == reward - fee


def test_all_balances_include_accounts_without_transactions(sessions, engine, books, clock):
    clock.set(moment(DAY))
    idle, busy = add_account(sessions, role="manager"), add_account(sessions)
    assign(sessions, books, new_id(), busy)
    stranger = new_id()
    assign(sessions, books, new_id(), stranger)

    first, cursor = AccountingQueries(sessions).list_balances(limit=2)
    rest, end = AccountingQueries(sessions).list_balances(cursor=cursor, limit=2)
    balances = {item.account_id: item for item in first + rest}
    assert end is None and set(balances) == {idle, busy, stranger}
    assert balances[idle].balance == 0 and balances[idle].role == "manager"
    assert balances[busy].balance < 0 and balances[busy].email.endswith("@popug.inc")
    assert balances[stranger].email is None


def test_audit_log_csv(sessions, engine, books, clock):
    clock.set(moment(DAY))
    account = add_account(sessions)
    task = new_id()
    with sessions() as session, session.begin():
        described = TaskDescription(task, 'Fix, the "button"', "UBERPOP-42", None)
        LedgerCommands(books).apply_tasks_added(session, [described])
    assign(sessions, books, task, account)
    assign(sessions, books, new_id(), new_id())

    mine = list(AccountingExports(AccountingQueries(sessions)).audit_log_csv_rows(account))
    everyone = list(AccountingExports(AccountingQueries(sessions)).audit_log_csv_rows())
    assert mine[0] == exports.AUDIT_LOG_CSV_HEADER
    assert len(mine) == 2 and len(everyone) == 3
    row = dict(zip(mine[0], mine[1], strict=True))
    assert row["account_id"] == str(account)
    assert row["type"] == "fee" and int(row["amount"]) == -price_of(engine, task)[0]
    assert (row["task_jira_id"], row["task_title"]) == ("UBERPOP-42", 'Fix, the "button"')
    assert row["day"] == DAY.isoformat()


def test_report_ranges_are_bounded(sessions):
    with pytest.raises(domain.InvalidRange):
        AccountingQueries(sessions).management_days(DAY, DAY - timedelta(days=1))
    with pytest.raises(domain.InvalidRange):
        AccountingQueries(sessions).management_days(DAY, DAY + timedelta(days=5000))
