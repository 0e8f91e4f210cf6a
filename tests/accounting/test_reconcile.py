"""``ates reconcile``: the tasks' topic against the ledger, on the real broker."""

from __future__ import annotations

import random

import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import text

from accounting.app import consumer_runtime
from accounting.ledger_sql import Books, TaskCharge
from accounting.reconcile import reconcile
from accounting.service import AccountingService, LedgerCommands
from deploy.cli import main
from messaging.dlq import read_all
from messaging.groups import consumer_group_of
from tests.accounting.conftest import (
    accounting_settings_for,
    add_account,
    count,
    new_id,
    poll_until,
    publish,
    task_assigned_event,
    task_completed_event,
)


@pytest.fixture
def kafka_books(settings, accounting_database_url) -> Books:
    return Books.create(accounting_settings_for(settings, accounting_database_url),
                        rng=random.Random(5))


def _consume(engine, books, transactions: int) -> None:
    runtime = consumer_runtime(engine, books, backoff_base=0.01, backoff_max=0.05)
    try:
        poll_until(runtime, lambda: count(engine, "transactions") >= transactions)
    finally:
        runtime.close()


def _commit_to_the_end(settings) -> None:
    """Move accounting's group past everything on the topic, as if it had handled it."""
    group, _ = consumer_group_of("accounting", settings)
    topic = settings.topic("tasks-lifecycle")
    ends: dict[int, int] = {}
    for message in read_all(settings.kafka_bootstrap, topic):
        ends[message.partition()] = message.offset() + 1
    client = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group,
                       "enable.auto.commit": False})
    try:
        client.commit(offsets=[TopicPartition(topic, p, end) for p, end in ends.items()],
                      asynchronous=False)
    finally:
        client.close()


def _command(settings, database_url):
    return CliRunner().invoke(main, ["reconcile"], env={
        "ATES_ACCOUNTING_DATABASE_URL": database_url,
        "ATES_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ATES_TOPIC_PREFIX": settings.topic_prefix,
    })


def test_what_tasks_published_and_the_ledger_agree(engine, sessions, settings, kafka_books,
                                                   accounting_database_url):
    alice, bob = add_account(sessions), add_account(sessions)
    first, second = new_id(), new_id()
    publish(settings, [task_assigned_event(first, alice), task_assigned_event(second, bob),
                       task_assigned_event(first, bob, previous=alice),
                       task_completed_event(first, bob)])
    _consume(engine, kafka_books, 4)
    fee = _any_fee(engine)
    AccountingService(sessions, kafka_books).reverse(fee, "Wrong popug", "someone")

    answer = _command(settings, accounting_database_url)

    assert answer.exit_code == 0, answer.output
    assert answer.stdout.strip() == (
        "3 assignment(s) and 1 completion(s) match the ledger; 0 not consumed yet;"
        " 0 difference(s)")


def test_every_difference_is_listed(engine, sessions, settings, kafka_books,
                                    accounting_database_url):
    alice, bob = add_account(sessions), add_account(sessions)
    booked, lost, late = new_id(), new_id(), new_id()
    publish(settings, [task_assigned_event(booked, alice), task_completed_event(booked, alice)])
    _consume(engine, kafka_books, 2)
    # a fee tasks never published, booked straight into the ledger
    stray = TaskCharge(source_event_id=new_id(), task_id=new_id(), account_id=bob)
    with sessions() as session, session.begin():
        LedgerCommands(kafka_books).apply_task_assigned(session, [stray])
    # an assignment and a completion accounting's group went past without booking them
    lost_assignment = task_assigned_event(lost, bob)
    lost_completion = task_completed_event(booked, bob)
    publish(settings, [lost_assignment, lost_completion])
    _commit_to_the_end(settings)
    # an assignment published and not consumed yet: pending, not a difference
    publish(settings, [task_assigned_event(late, alice)])

    result = reconcile(settings, engine)

    listed = sorted(str(d).split(", partition ")[0] for d in result.differences)
    assert listed == sorted([
        f"fee booked without a published event: transaction {_id_of(engine, stray)}"
        f" (event {stray.source_event_id}, task {stray.task_id})",
        f"task.assigned without a fee: event {lost_assignment.id} (task {lost},"
        f" account {bob}",
        f"task.completed without a reward: event {lost_completion.id} (task {booked},"
        f" account {bob}",
    ])
    assert result.pending == 1
    assert result.compared == {"fee": 1, "reward": 1}
    answer = _command(settings, accounting_database_url)
    assert answer.exit_code == 1
    assert len([line for line in answer.stderr.splitlines()
                if line.startswith("DIFFERENCE ")]) == 3
    assert "3 difference(s)" in answer.stdout


def test_a_booking_for_another_account_is_a_difference(engine, sessions, settings,
                                                        kafka_books):
    alice, bob = add_account(sessions), add_account(sessions)
    task = new_id()
    event = task_assigned_event(task, alice)
    publish(settings, [event])
    _commit_to_the_end(settings)
    # booked from the same event, but for bob
    with sessions() as session, session.begin():
        LedgerCommands(kafka_books).apply_task_assigned(session, [
            TaskCharge(source_event_id=event.id, task_id=task, account_id=bob)])

    [difference] = reconcile(settings, engine).differences

    assert difference.kind == "task.assigned booked differently"
    assert f"for {alice}" in difference.detail and f"for {bob}" in difference.detail


# -- helpers ------------------------------------------------------------------------------


def _any_fee(engine):
    with engine.connect() as connection:
        return connection.scalar(text("SELECT public_id FROM transactions WHERE type = 'fee'"
                                      " ORDER BY id LIMIT 1"))


def _id_of(engine, charge: TaskCharge):
    with engine.connect() as connection:
        return connection.scalar(text(
            "SELECT public_id FROM transactions WHERE source_event_id = :e"
        ), {"e": charge.source_event_id})
