"""Fees, rewards, prices and replicas, against the real database."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from accounting.domain import FEE, REWARD, Price, TaskDescription, task_facts
from accounting.ledger_sql import TaskCharge
from accounting.service import AccountingService, LedgerCommands
from tests.accounting import ledger_oracle
from tests.accounting.conftest import (
    add_account,
    assign,
    balance_of,
    charge,
    complete,
    count,
    new_id,
    price_of,
    stored_events,
    task_state_event,
)


def test_every_assignment_debits_the_fee_and_completion_credits_the_reward(sessions, engine, books):
    first, second = add_account(sessions), add_account(sessions)
    task = new_id()
    assign(sessions, books, task, first)
    fee, reward = price_of(engine, task)
    assert balance_of(engine, first) == -fee

    assign(sessions, books, task, second)  # reshuffle
    assign(sessions, books, task, second)  # reshuffled onto the same popug again
    complete(sessions, books, task, second)

    assert price_of(engine, task) == (fee, reward)  # fixed once
    assert balance_of(engine, first) == -fee
    assert balance_of(engine, second) == -2 * fee + reward
    assert count(engine, "transactions") == 4


def test_the_sql_books_what_the_oracle_says(sessions, engine, books):
    """Each fee and reward is the task's price signed as the oracle signs it, written as
    the oracle's two balanced entries."""
    accounts, tasks = [add_account(sessions) for _ in range(2)], [new_id() for _ in range(3)]
    for n, task in enumerate(tasks):
        assign(sessions, books, task, accounts[n % 2])
        complete(sessions, books, task, accounts[n % 2])
    with engine.connect() as connection:
        booked = connection.execute(text(
            "SELECT id, type, account_id, task_id, amount FROM transactions")).all()
        entries = connection.execute(
            text("SELECT transaction_id, account_id, amount FROM entries")).all()
    assert {kind for _, kind, *_ in booked} == {FEE, REWARD} and len(booked) == 6
    for transaction_id, kind, account, task, amount in booked:
        assert amount == ledger_oracle.task_charge(kind, Price(*price_of(engine, task)))
        written = {ledger_oracle.Entry(a, cents)
                   for t, a, cents in entries if t == transaction_id}
        assert written == set(ledger_oracle.double_entry(account, amount))
        assert ledger_oracle.is_balanced(written)


def test_the_same_event_is_booked_once(sessions, engine, books):
    account, task = add_account(sessions), new_id()
    once = charge(task, account)
    for _ in range(3):
        with sessions() as session, session.begin():
            LedgerCommands(books).apply_task_assigned(session, [once, once])
    assert count(engine, "transactions") == 1
    assert balance_of(engine, account) == -price_of(engine, task)[0]


def test_completion_before_anything_else_prices_the_task(sessions, engine, books):
    account, task = new_id(), new_id()
    complete(sessions, books, task, account)
    fee, reward = price_of(engine, task)
    assert balance_of(engine, account) == reward
    assign(sessions, books, task, account)
    assert balance_of(engine, account) == reward - fee


def test_a_task_is_priced_once_whichever_event_comes_first(sessions, engine, books):
    account = new_id()
    task = new_id()
    assign(sessions, books, task, account)  # before task.created
    price = price_of(engine, task)
    state = task_facts(task_state_event(task, account, "Fix the button", "UBERPOP-1").data, 2)
    with sessions() as session, session.begin():
        LedgerCommands(books).apply_task_states(session, [state])
    with sessions() as session, session.begin():
        described = TaskDescription(task, "Fix the button", "UBERPOP-1", None)
        LedgerCommands(books).apply_tasks_added(session, [described])
    assert price_of(engine, task) == price
    [priced] = stored_events(engine, "task.priced")
    assert priced.event.data["task_id"] == str(task)
    assert (priced.event.data["fee"], priced.event.data["reward"]) == price


def test_prices_follow_the_random_source(sessions, engine, books):
    tasks = [new_id() for _ in range(200)]
    with sessions() as session, session.begin():
        LedgerCommands(books).apply_task_assigned(session, [charge(t, new_id()) for t in tasks])
    prices = [price_of(engine, t) for t in tasks]
    assert all(1000 <= fee <= 2000 and 2000 <= reward <= 4000 for fee, reward in prices)
    assert len(set(prices)) > 150


def test_transaction_events_carry_the_booking(sessions, engine, books):
    account, task = add_account(sessions), new_id()
    [fee] = assign(sessions, books, task, account)
    [reward] = complete(sessions, books, task, account)

    applied = stored_events(engine, "transaction.applied")
    assert [(e.key, e.topic) for e in applied] == [(str(account), "acct.accounting-lifecycle")] * 2
    assert [e.event.data for e in applied] == [
        {
            "transaction_id": str(booked.public_id),
            "account_id": str(account),
            "type": booked.type,
            "amount": booked.amount,
            "balance_after": booked.balance_after,
            "task_id": str(task),
            "day": booked.day.isoformat(),
            "applied_at": applied[i].event.data["applied_at"],
        }
        for i, booked in enumerate((fee, reward))
    ]
    assert [e.event.data["amount"] for e in applied] == [-price_of(engine, task)[0], reward.amount]
    assert applied[1].event.data["balance_after"] == balance_of(engine, account)
    assert all(e.event.source == "accounting" for e in applied)
    [priced] = stored_events(engine, "task.priced")
    assert priced.key == str(task)


def test_balance_after_runs_through_a_batch_with_repeated_accounts(sessions, engine, books):
    account, other = new_id(), new_id()
    tasks = [new_id() for _ in range(5)]
    with sessions() as session, session.begin():
        booked = LedgerCommands(books).apply_task_assigned(
            session, [charge(t, account if i % 2 == 0 else other) for i, t in enumerate(tasks)]
        )
    mine = [b for b in booked if b.account_id == account]
    running = 0
    for b in mine:
        running += b.amount
        assert b.balance_after == running
    assert balance_of(engine, account) == running


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE entries SET amount = amount + 1",
        "DELETE FROM entries",
        "UPDATE transactions SET balance_after = 0",
        "DELETE FROM transactions",
        "TRUNCATE entries, transactions CASCADE",
    ],
)
def test_the_ledger_is_append_only(sessions, engine, books, statement):
    assign(sessions, books, new_id(), new_id())
    with pytest.raises(DBAPIError, match="append-only"):
        with engine.begin() as connection:
            connection.execute(text(statement))
    assert count(engine, "entries") == 2


def test_an_unbalanced_transaction_is_refused(sessions, engine, books):
    assign(sessions, books, new_id(), new_id())
    with pytest.raises(DBAPIError, match="two entries summing to zero"):
        with engine.begin() as connection:
            connection.execute(
                text(
                    "WITH t AS (INSERT INTO transactions (public_id, type, account_id, task_id,"
                    " day, amount, balance_after, created_at, hash) VALUES (gen_random_uuid(),"
                    " 'fee', gen_random_uuid(), gen_random_uuid(), current_date, -5, -5, now(),"
                    " '\\x00')"
                    " RETURNING id, account_id)"
                    " INSERT INTO entries SELECT id, account_id, -5 FROM t"
                )
            )


def test_v1_and_v2_task_states_fill_the_replica(sessions, engine, books):
    assignee = new_id()
    v1_task, v2_task = new_id(), new_id()
    states = [
        task_facts(
            task_state_event(v1_task, assignee, "Fix it", "UBERPOP-42", dataversion=1).data, 1
        ),
        task_facts(task_state_event(v2_task, assignee, "Feed them", "UBERPOP-7").data, 2),
    ]
    with sessions() as session, session.begin():
        LedgerCommands(books).apply_task_states(session, states)
    with engine.connect() as connection:
        rows = dict(connection.execute(text("SELECT public_id, (title, jira_id) FROM tasks")).all())
    assert rows == {v1_task: ("Fix it", "UBERPOP-42"), v2_task: ("Feed them", "UBERPOP-7")}


def test_stale_task_states_are_ignored(sessions, engine, books):
    task, assignee = new_id(), new_id()

    def apply(title, version):
        event = task_state_event(task, assignee, title, event_type="task.updated", version=version)
        with sessions() as session, session.begin():
            LedgerCommands(books).apply_task_states(session, [task_facts(event.data, 2)])

    apply("Newest", 3)
    apply("Older", 2)
    with sessions() as session, session.begin():
        described = TaskDescription(task, "Original", None, None)
        LedgerCommands(books).apply_tasks_added(session, [described])
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT title FROM tasks")) == "Newest"


def test_task_added_describes_a_task_known_only_from_business_events(sessions, engine, books):
    task = new_id()
    assign(sessions, books, task, new_id())
    with sessions() as session, session.begin():
        described = TaskDescription(task, "Fix the button", "UBERPOP-42", "Now")
        LedgerCommands(books).apply_tasks_added(session, [described])
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT title, jira_id, description, version FROM tasks")
        ).one()
    assert tuple(row) == ("Fix the button", "UBERPOP-42", "Now", 0)


def _account_state(session, account, name: str, role: str, active: bool, version: int) -> None:
    LedgerCommands.apply_account_state(
        session,
        account,
        email=f"{name}@popug.inc",
        full_name=name,
        role=role,
        active=active,
        version=version,
    )


def test_account_replica_takes_the_newest_state_in_any_order(sessions, engine):
    account = new_id()
    with sessions() as session, session.begin():
        LedgerCommands.apply_role_change(session, account, "accountant", version=3)
        _account_state(session, account, "a", "worker", active=True, version=2)
        _account_state(session, account, "old", "manager", active=False, version=1)
    with engine.connect() as connection:
        row = connection.execute(text("SELECT email, role, active FROM accounts")).one()
    assert tuple(row) == ("a@popug.inc", "accountant", True)
    with sessions() as session, session.begin():
        LedgerCommands.apply_account_deleted(session, account, version=4)
        _account_state(session, account, "b", "worker", active=True, version=3)
    with engine.connect() as connection:
        row = connection.execute(text("SELECT deleted, active FROM accounts")).one()
    assert tuple(row) == (True, False)
    assert count(engine, "balances") == 1


TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_events_carry_the_trace_context_of_their_cause(sessions, engine, books):
    traced = TaskCharge(new_id(), new_id(), new_id(), traceparent=TRACE)
    untraced = charge(new_id(), new_id())
    with sessions() as session, session.begin():
        LedgerCommands(books).apply_task_assigned(session, [traced, untraced])
    applied = stored_events(engine, "transaction.applied")
    assert [e.event.traceparent for e in applied] == [TRACE, None]
    assert [e.headers.get("traceparent") for e in applied] == [TRACE, None]
    priced = {e.key: e.event.traceparent for e in stored_events(engine, "task.priced")}
    assert priced == {str(traced.task_id): TRACE, str(untraced.task_id): None}
    complete(sessions, books, new_id(), new_id())  # someone to pay at the end of the day
    AccountingService(sessions, books).close_day(traceparent=TRACE)
    [payout] = [
        e for e in stored_events(engine, "transaction.applied") if e.event.data["type"] == "payout"
    ]
    closing = [
        payout,
        *stored_events(engine, "payment.made"),
        *stored_events(engine, "billing_cycle.closed"),
    ]
    assert [(e.event.traceparent, e.headers["traceparent"]) for e in closing] == [
        (TRACE, TRACE)
    ] * 3
