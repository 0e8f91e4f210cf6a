"""The accounting consumer on the real broker: out-of-order, v1 and v2, redelivered events."""

from __future__ import annotations

import random
import time
import uuid

import pytest
from sqlalchemy import text

from accounting.app import consumer_runtime
from accounting.ledger_sql import Books
from accounting.queries import AccountingQueries
from tests.accounting.conftest import (
    account_event,
    accounting_settings_for,
    balance_of,
    build,
    count,
    new_id,
    poll_until,
    price_of,
    publish,
    stored_events,
    task_assigned_event,
    task_completed_event,
    task_state_event,
)


@pytest.fixture
def kafka_books(settings, accounting_database_url, clock) -> Books:
    return Books.create(
        accounting_settings_for(settings, accounting_database_url),
        rng=random.Random(5),
        clock=clock,
    )


def runtime(engine, books, **overrides):
    return consumer_runtime(
        engine, books, backoff_base=0.01, backoff_max=0.05, consumer_overrides=overrides or None
    )


def consume_everything(runtime, expected_messages: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    consumed = 0
    while consumed < expected_messages:
        assert time.monotonic() < deadline, f"{consumed} of {expected_messages} consumed"
        consumed += runtime.poll_once(0.3)


def test_events_in_any_order_and_redelivered_are_booked_exactly_once(
    engine, sessions, settings, kafka_books
):
    alice, bob = new_id(), new_id()
    fixed, legacy, early = new_id(), new_id(), new_id()
    events = [
        # a task completed and assigned before accounting hears that it exists
        task_completed_event(early, alice),
        task_assigned_event(early, alice),
        account_event(alice),
        account_event(bob),
        account_event(bob, role="accountant", version=2, event_type="account.updated"),
        task_state_event(fixed, alice, "Fix the button", "UBERPOP-42"),
        task_state_event(legacy, bob, "Feed the parrots", "UBERPOP-7", dataversion=1),
        task_assigned_event(fixed, alice),
        task_assigned_event(legacy, bob),
        # reshuffle: the fixed task moves to bob, then bob completes it
        task_state_event(
            fixed, bob, "Fix the button", "UBERPOP-42", event_type="task.updated", version=2
        ),
        task_assigned_event(fixed, bob, previous=alice),
        task_completed_event(fixed, bob),
        task_state_event(
            early,
            alice,
            "Early bird",
            status="done",
            version=3,
            event_type="task.updated",
            dataversion=1,
        ),
    ]
    publish(settings, events + events)  # every event delivered twice

    first = runtime(engine, kafka_books)
    try:
        poll_until(first, lambda: count(engine, "transactions") >= 6 and _titles(engine) == 3)
    finally:
        first.close()

    fee = {task: price_of(engine, task)[0] for task in (fixed, legacy, early)}
    reward = {task: price_of(engine, task)[1] for task in (fixed, legacy, early)}
    assert balance_of(engine, alice) == -fee[fixed] - fee[early] + reward[early]
    assert balance_of(engine, bob) == -fee[legacy] - fee[fixed] + reward[fixed]
    assert _tasks(engine) == {
        fixed: ("Fix the button", "UBERPOP-42", bob, 2),
        legacy: ("Feed the parrots", "UBERPOP-7", bob, 1),
        early: ("Early bird", None, alice, 3),
    }

    # Redelivery of everything: a consumer of the same name reading from the start.
    again = runtime(engine, kafka_books, **{"group.id": f"{settings.topic_prefix}replay"})
    try:
        consume_everything(again, expected_messages=2 * len(events))
    finally:
        again.close()

    assert count(engine, "transactions") == 6
    assert len(stored_events(engine, "transaction.applied")) == 6
    assert sorted(e.event.data["task_id"] for e in stored_events(engine, "task.priced")) == sorted(
        str(t) for t in (fixed, legacy, early)
    )
    assert count(engine, "inbox") == len(events)

    lines, _ = AccountingQueries(sessions).audit_log(bob)
    assert sorted((line.type, line.task.title) for line in lines) == [
        ("fee", "Feed the parrots"),
        ("fee", "Fix the button"),
        ("reward", "Fix the button"),
    ]
    with engine.connect() as connection:
        role = connection.scalar(text("SELECT role FROM accounts WHERE public_id = :a"), {"a": bob})
    assert role == "accountant"


def _titles(engine) -> int:
    return count(engine, "tasks", "title IS NOT NULL AND version > 0")


def _tasks(engine) -> dict[uuid.UUID, tuple]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT public_id, title, jira_id, assignee_id, version FROM tasks")
        ).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def task_added_event(task_id, title, jira_id=None):
    return build("task.added", {
        "task_id": str(task_id), "title": title, "jira_id": jira_id, "description": None,
        "created_by": str(new_id()), "created_at": "2026-11-22T10:15:00Z",
    })


def test_a_run_of_task_added_events_is_written_and_priced_in_bulk(
    engine, settings, kafka_books
):
    """A burst of new tasks (as an import) is handled as runs; a task whose state already
    arrived keeps it, and every task is priced once."""
    tasks = [new_id() for _ in range(120)]
    stated = tasks[0]
    events = [task_state_event(stated, new_id(), "From the CUD stream", "UBERPOP-1")]
    events += [task_added_event(t, f"Task {n}", f"UBERPOP-{n}") for n, t in enumerate(tasks)]
    publish(settings, events)

    consumer = runtime(engine, kafka_books)
    try:
        poll_until(consumer, lambda: count(engine, "inbox") == len(events))
    finally:
        consumer.close()

    titles = {task: row[0] for task, row in _tasks(engine).items()}
    assert titles[stated] == "From the CUD stream"
    assert all(titles[t] == f"Task {n}" for n, t in enumerate(tasks) if t != stated)
    priced = [e.event.data["task_id"] for e in stored_events(engine, "task.priced")]
    assert sorted(priced) == sorted(str(t) for t in tasks)
