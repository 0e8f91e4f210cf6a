"""End of day: payouts, carried-over debts, idempotent and serialised closing, reports."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text

from accounting import closing, domain, payout_mail
from accounting.domain import task_facts
from accounting.exports import AccountingExports
from accounting.ledger_sql import Books
from accounting.queries import AccountingQueries
from accounting.service import AccountingService, LedgerCommands
from tests.accounting import ledger_oracle
from tests.accounting.conftest import (
    DAY,
    add_account,
    assign,
    balance_of,
    charge,
    complete,
    count,
    ledger_violations,
    moment,
    new_id,
    price_of,
    queries_of,
    stored_events,
    task_state_event,
)


def earn(sessions, books, engine, account, title="Feed the parrots"):
    """Assign and complete a new task: the account earns reward - fee (> 0)."""
    task = new_id()
    state = task_facts(task_state_event(task, account, title, "UBERPOP-42").data, 2)
    with sessions() as session, session.begin():
        LedgerCommands(books).apply_task_states(session, [state])
    assign(sessions, books, task, account)
    complete(sessions, books, task, account)
    fee, reward = price_of(engine, task)
    return reward - fee


def owe(sessions, books, engine, account):
    """Assign a task that is never completed: the account owes its fee."""
    task = new_id()
    assign(sessions, books, task, account)
    return -price_of(engine, task)[0]


def day_of(engine, transaction_type):
    with engine.connect() as connection:
        return connection.scalars(
            text("SELECT day FROM transactions WHERE type = :t ORDER BY id"),
            {"t": transaction_type},
        ).all()


def test_positive_balances_are_paid_and_negative_ones_carry_over(sessions, engine, books, clock):
    clock.set(moment(DAY))
    rich, poor = add_account(sessions), add_account(sessions)
    earned = earn(sessions, books, engine, rich)
    owed = owe(sessions, books, engine, poor)

    [closed] = AccountingService(sessions, books).close_day(DAY)

    assert (closed.day, closed.accounts_paid, closed.total_paid) == (DAY, 1, earned)
    assert balance_of(engine, rich) == 0
    assert balance_of(engine, poor) == owed
    with engine.connect() as connection:
        payout = connection.execute(text("SELECT account_id, day, amount FROM payouts")).one()
    assert tuple(payout) == (rich, DAY, earned)


def test_the_close_pays_what_the_oracle_says_of_each_balance(sessions, engine, books, clock):
    clock.set(moment(DAY))
    accounts = [add_account(sessions) for _ in range(3)]  # earns, owes, and does nothing
    earn(sessions, books, engine, accounts[0])
    owe(sessions, books, engine, accounts[1])
    before = {account: balance_of(engine, account) for account in accounts}

    AccountingService(sessions, books).close_day(DAY)

    with engine.connect() as connection:
        paid = dict(connection.execute(text("SELECT account_id, amount FROM payouts")).all())
    for account, balance in before.items():
        assert paid.get(account, 0) == ledger_oracle.payout_for(balance)
        assert balance_of(engine, account) == balance - ledger_oracle.payout_for(balance)


def test_payout_events_are_written_and_valid(sessions, engine, books, clock):
    clock.set(moment(DAY))
    rich = add_account(sessions)
    earned = earn(sessions, books, engine, rich)
    AccountingService(sessions, books).close_day(DAY)

    payout = stored_events(engine, "transaction.applied")[-1]
    [paid] = stored_events(engine, "payment.made")
    [cycle] = stored_events(engine, "billing_cycle.closed")
    assert payout.key == paid.key == str(rich)
    assert {payout.topic, paid.topic, cycle.topic} == {"acct.accounting-lifecycle"}
    assert payout.event.data == {
        "transaction_id": paid.event.data["transaction_id"],
        "account_id": str(rich),
        "type": "payout",
        "amount": -earned,
        "balance_after": 0,
        "task_id": None,
        "day": DAY.isoformat(),
        "applied_at": payout.event.data["applied_at"],
    }
    assert paid.event.data == {
        "payment_id": paid.event.data["payment_id"],
        "account_id": str(rich),
        "transaction_id": payout.event.data["transaction_id"],
        "amount": earned,
        "day": DAY.isoformat(),
        "paid_at": payout.event.data["applied_at"],
    }
    assert cycle.key == DAY.isoformat()
    assert cycle.event.data == {
        "day": DAY.isoformat(),
        "closed_at": payout.event.data["applied_at"],
        "accounts_paid": 1,
        "total_paid": earned,
    }
    assert all(e.event.source == "accounting" for e in (payout, paid, cycle))
    with engine.connect() as connection:
        ids = connection.execute(text("SELECT public_id FROM payouts")).scalar_one()
    assert paid.event.data["payment_id"] == str(ids)


def test_closing_a_day_twice_pays_once(sessions, engine, books, clock):
    clock.set(moment(DAY))
    rich = add_account(sessions)
    earn(sessions, books, engine, rich)
    assert len(AccountingService(sessions, books).close_day(DAY)) == 1
    assert AccountingService(sessions, books).close_day(DAY) == []
    assert count(engine, "payouts") == 1
    assert count(engine, "payout_emails") == 1
    assert len(stored_events(engine, "billing_cycle.closed")) == 1


def test_a_debt_carries_over_and_only_the_positive_balance_is_paid_later(
    sessions, engine, books, clock
):
    clock.set(moment(DAY))
    account = add_account(sessions)
    owed = owe(sessions, books, engine, account)
    assert AccountingService(sessions, books).close_day(DAY)[0].accounts_paid == 0
    assert balance_of(engine, account) == owed

    clock.advance(days=1)
    earned = earn(sessions, books, engine, account)
    [closed] = AccountingService(sessions, books).close_day(DAY + timedelta(days=1))
    assert closed.total_paid == max(0, owed + earned)
    assert balance_of(engine, account) == min(0, owed + earned)


def test_racing_closers_close_the_day_once(sessions, engine, books, clock):
    clock.set(moment(DAY))
    accounts = [add_account(sessions) for _ in range(5)]
    expected = sum(earn(sessions, books, engine, a) for a in accounts)
    start = threading.Barrier(4)
    results: list = []

    def close() -> None:
        start.wait()
        results.append(AccountingService(sessions, books).close_day(DAY))

    threads = [threading.Thread(target=close) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    closed = [r for r in results if r]
    assert len(results) == 4 and len(closed) == 1
    assert closed[0][0].total_paid == expected
    assert count(engine, "payouts") == 5
    assert all(balance_of(engine, a) == 0 for a in accounts)


def test_closing_without_a_date_ends_the_day_at_once(sessions, engine, books, clock):
    clock.set(moment(DAY, hour=10))
    account = add_account(sessions)
    earn(sessions, books, engine, account)

    [closed] = AccountingService(sessions, books).close_day()
    assert closed.day == DAY
    assert queries_of(sessions, books).open_day() == DAY + timedelta(days=1)

    owe(sessions, books, engine, account)  # same hour, but the day is over
    assert day_of(engine, "fee")[-1] == DAY + timedelta(days=1)
    assert AccountingService(sessions, books).close_day(DAY) == []
    assert queries_of(sessions, books).management_earnings().day == DAY + timedelta(days=1)


def test_a_day_that_has_not_begun_cannot_be_closed(sessions, books, clock):
    clock.set(moment(DAY))
    with pytest.raises(domain.DayNotStarted):
        AccountingService(sessions, books).close_day(DAY + timedelta(days=1))


def test_missed_days_are_caught_up_in_order_paying_each_days_balance(
    sessions, engine, books, clock
):
    clock.set(moment(DAY))
    account = add_account(sessions)
    first_day = earn(sessions, books, engine, account)
    clock.advance(days=2)  # nobody closed DAY nor DAY + 1
    third_day = earn(sessions, books, engine, account)

    closed = AccountingService(sessions, books).close_due_days()

    assert [(c.day, c.total_paid) for c in closed] == [
        (DAY, first_day),
        (DAY + timedelta(days=1), 0),
    ]
    assert balance_of(engine, account) == third_day
    assert AccountingService(sessions, books).close_due_days() == []


def test_the_billing_day_follows_the_configured_time_zone(sessions, engine, books, clock):
    platform = books.settings.platform.with_(timezone="Europe/Moscow")
    moscow = dataclasses.replace(
        books, settings=dataclasses.replace(books.settings, platform=platform)
    )
    clock.set(datetime(2026, 11, 22, 22, 30, tzinfo=UTC))  # 01:30 on the 23rd in Moscow
    owe(sessions, moscow, engine, new_id())
    assert day_of(engine, "fee") == [date(2026, 11, 23)]


def test_management_earns_the_fees_minus_the_rewards_of_each_day(sessions, engine, books, clock):
    clock.set(moment(DAY))
    worker = add_account(sessions)
    tasks = [new_id() for _ in range(3)]
    for task in tasks:
        assign(sessions, books, task, worker)
    assign(sessions, books, tasks[0], worker)  # reshuffled: a second fee
    complete(sessions, books, tasks[1], worker)
    prices = [price_of(engine, t) for t in tasks]
    AccountingService(sessions, books).close_day(DAY)  # payouts must not count
    clock.advance(days=1)
    complete(sessions, books, tasks[2], worker)

    first, second = AccountingQueries(sessions).management_days(DAY, DAY + timedelta(days=1))

    fees = sum(fee for fee, _ in prices) + prices[0][0]
    assert (first.fees_charged, first.rewards_paid) == (fees, prices[1][1])
    assert first.earned == fees - prices[1][1]
    assert (second.fees_charged, second.rewards_paid, second.earned) == (
        0,
        prices[2][1],
        -prices[2][1],
    )
    assert queries_of(sessions, books).management_earnings(DAY) == first
    exports = AccountingExports(AccountingQueries(sessions))
    rows = list(exports.management_csv_rows(DAY, DAY + timedelta(days=1)))
    assert rows[0] == ["day", "fees_charged", "rewards_paid", "earned"]
    assert rows[1] == [DAY.isoformat(), str(fees), str(prices[1][1]), str(first.earned)]


def queued_mail(engine):
    with engine.connect() as connection:
        return connection.execute(text("SELECT * FROM payout_emails")).one()


def composed_mail(sessions, engine):
    with sessions() as session, session.begin():
        payout_mail.compose(session, queued_mail(engine).payout_id)
    return queued_mail(engine)


def test_the_payout_mail_lists_the_days_fees_and_rewards(sessions, engine, books, clock):
    clock.set(moment(DAY))
    account = add_account(sessions)
    earned = earn(sessions, books, engine, account, title="Feed <the> parrots & owls")
    AccountingService(sessions, books).close_day(DAY)
    assert queued_mail(engine).subject is None  # composed when first sent
    mail = composed_mail(sessions, engine)
    dollars = f"${earned // 100}.{earned % 100:02d}"
    assert mail.recipient is None  # looked up when the mail is sent (test_mailer)
    assert mail.subject == f"Your aTES payout for {DAY.isoformat()}: {dollars}"
    assert f"you have been paid {dollars} for {DAY.isoformat()}" in mail.text_body
    lines = [line for line in mail.text_body.splitlines() if "UBERPOP-42" in line]
    assert [line.split()[0] for line in lines] == ["fee", "reward"]
    assert all(line.endswith("[UBERPOP-42] Feed <the> parrots & owls") for line in lines)
    assert "Feed &lt;the&gt; parrots &amp; owls" in mail.html_body
    assert f"<strong>{dollars}</strong>" in mail.html_body
    assert mail.sent_at is None


def test_a_task_title_arriving_after_the_close_is_in_the_mail(sessions, engine, books, clock):
    clock.set(moment(DAY))
    account, task = add_account(sessions), new_id()
    assign(sessions, books, task, account)
    complete(sessions, books, task, account)
    AccountingService(sessions, books).close_day(DAY)
    state = task_facts(task_state_event(task, account, "Count the owls", "UBERPOP-7").data, 2)
    with sessions() as session, session.begin():
        LedgerCommands(books).apply_task_states(session, [state])
    mail = composed_mail(sessions, engine)
    assert "[UBERPOP-7] Count the owls" in mail.text_body
    assert f"task {task}" not in mail.text_body


def test_the_mail_lists_only_the_paid_days_transactions(sessions, engine, books, clock):
    clock.set(moment(DAY))
    account, later_task = add_account(sessions), new_id()
    earn(sessions, books, engine, account)
    AccountingService(sessions, books).close_day(DAY)
    clock.set(moment(DAY + timedelta(days=1)))
    complete(sessions, books, later_task, account)  # composed after the next day began
    mail = composed_mail(sessions, engine)
    assert "UBERPOP-42" in mail.text_body
    assert str(later_task) not in mail.text_body


def test_the_invariant_check_notices_a_balance_out_of_step(sessions, engine, books):
    account = new_id()
    owe(sessions, books, engine, account)
    with engine.begin() as connection:
        connection.execute(text("UPDATE balances SET balance = balance + 1"))
    assert "a balance differs from the sum of its entries" in ledger_violations(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE balances SET balance = balance - 1"))


def test_many_accounts_close_in_one_go(sessions, engine, books: Books, clock, monkeypatch):
    monkeypatch.setattr(closing, "_IDS_PER_PAGE", 7)  # the payouts' events span many pages
    clock.set(moment(DAY))
    accounts = [new_id() for _ in range(300)]
    with sessions() as session, session.begin():
        LedgerCommands(books).apply_task_completed(session, [charge(new_id(), a) for a in accounts])
    [closed] = AccountingService(sessions, books).close_day(DAY)
    assert closed.accounts_paid == 300
    assert count(engine, "payout_emails") == 300
    payout_events = [e.event for e in stored_events(engine)
                     if e.event.type == "payment.made" or e.event.data.get("type") == "payout"]
    assert [e.type for e in payout_events] == ["transaction.applied", "payment.made"] * 300
    assert [e.data["account_id"] for e in payout_events[::2]] == [
        e.data["account_id"] for e in payout_events[1::2]]
    assert sorted(e.data["account_id"] for e in payout_events[1::2]) == sorted(map(str, accounts))
    assert len({e.id for e in payout_events}) == 600
    assert count(engine, "outbox", "renderer IS NOT NULL") == 1


def test_a_close_racing_with_bookings_pays_exactly_what_its_day_booked(
    sessions, engine, books, clock
):
    clock.set(moment(DAY))
    accounts = [new_id() for _ in range(3)]
    stop = threading.Event()

    def keep_booking() -> None:
        while not stop.is_set():
            with sessions() as session, session.begin():
                LedgerCommands(books).apply_task_completed(
                    session, [charge(new_id(), a) for a in accounts])

    booker = threading.Thread(target=keep_booking)
    booker.start()
    try:
        _wait_for_rewards(engine, at_least=30)
        [closed] = AccountingService(sessions, books).close_day()
        _wait_for_rewards(engine, at_least=30, day=DAY + timedelta(days=1))
    finally:
        stop.set()
        booker.join(30)

    with engine.connect() as connection:
        booked = dict(
            connection.execute(
                text("SELECT day, sum(amount) FROM transactions WHERE type = 'reward' GROUP BY day")
            ).all()
        )
    assert closed.total_paid == booked[DAY]
    assert sum(balance_of(engine, a) for a in accounts) == booked[DAY + timedelta(days=1)]


def _wait_for_rewards(engine, at_least: int, day: date = DAY) -> None:
    deadline = time.monotonic() + 20
    while count(engine, "transactions", f"type = 'reward' AND day = '{day}'") < at_least:
        assert time.monotonic() < deadline
        time.sleep(0.02)
