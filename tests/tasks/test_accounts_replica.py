"""The accounts replica, fed by auth's events in whatever order they arrive."""

from __future__ import annotations

import itertools
import random
import uuid
from dataclasses import dataclass

import pytest
from confluent_kafka import Producer
from sqlalchemy import select

from event_schemas import Event, default_registry
from messaging.kafka import producer_config
from tasks import domain
from tasks.app import consumer_runtime
from tasks.consumers import handlers
from tasks.models import Account
from tests.messaging.conftest import poll_until
from tests.tasks.conftest import actor, assignee_slots, commands, count_rows


@dataclass(frozen=True)
class Replica:
    email: str | None
    full_name: str | None
    role: str | None
    active: bool
    deleted: bool


def account_event(event_type: str, account_id: uuid.UUID, version: int, **data) -> Event:
    if event_type in ("account.created", "account.updated"):
        data = {
            "email": f"kesha-{account_id.hex[:6]}@popug.inc",
            "full_name": "Kesha Popugaev",
            "role": "worker",
            "active": True,
        } | data
    return default_registry().build(
        event_type, {"account_id": str(account_id), "version": version, **data}, source="auth"
    )


def promoted_then_deactivated(account_id: uuid.UUID) -> list[Event]:
    """Rename, promotion to manager (state and business event), deactivation."""
    return [
        account_event("account.created", account_id, 1),
        account_event("account.updated", account_id, 2, full_name="Kesha the Great"),
        account_event("account.role_changed", account_id, 3, old_role="worker", new_role="manager"),
        account_event(
            "account.updated", account_id, 3, full_name="Kesha the Great", role="manager"
        ),
        account_event(
            "account.updated",
            account_id,
            4,
            full_name="Kesha the Great",
            role="manager",
            active=False,
        ),
    ]


PROMOTED_THEN_DEACTIVATED = Replica(None, "Kesha the Great", "manager", False, False)


def role_change_without_state(account_id: uuid.UUID) -> list[Event]:
    """A role change whose ``account.updated`` never comes: the role must still win."""
    return [
        account_event("account.created", account_id, 1, role="manager"),
        account_event(
            "account.role_changed", account_id, 2, old_role="manager", new_role="accountant"
        ),
    ]


ROLE_CHANGE_WITHOUT_STATE = Replica(None, "Kesha Popugaev", "accountant", True, False)


def created_then_deleted(account_id: uuid.UUID) -> list[Event]:
    return [
        account_event("account.created", account_id, 1),
        account_event("account.updated", account_id, 2, full_name="Kesha II"),
        account_event("account.deleted", account_id, 3),
    ]


DELETED = Replica(None, None, None, False, True)


def replica_of(sessions, account_id: uuid.UUID) -> Replica:
    with sessions() as session:
        account = session.scalar(select(Account).where(Account.public_id == account_id))
    assert account is not None
    return Replica(account.email, account.full_name, account.role, account.active, account.deleted)


def apply_in_order(sessions, events: list[Event]) -> None:
    """Run the handlers as the consumer does with a batch: in one transaction."""
    with sessions() as session, session.begin():
        for event in events:
            handlers.find(event)(session, event)


def comparable(replica: Replica) -> Replica:
    """What must not depend on the order: emails embed the account id in these tests, and
    of a deleted account only the deletion matters (it never gets a task again)."""
    if replica.deleted:
        return DELETED
    return Replica(None, replica.full_name, replica.role, replica.active, replica.deleted)


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        (promoted_then_deactivated, PROMOTED_THEN_DEACTIVATED),
        (role_change_without_state, ROLE_CHANGE_WITHOUT_STATE),
        (created_then_deleted, DELETED),
    ],
)
def test_every_arrival_order_ends_in_the_same_state(sessions, engine, history, expected):
    events = history(uuid.uuid4())
    for order in itertools.permutations(events):
        account_id = uuid.uuid4()  # a fresh account for each order
        reordered = [_for_account(e, account_id) for e in order]
        apply_in_order(sessions, reordered + reordered[:2])  # plus redeliveries
        assert comparable(replica_of(sessions, account_id)) == expected, order


def _for_account(event: Event, account_id: uuid.UUID) -> Event:
    data = event.data | {"account_id": str(account_id)}
    return default_registry().build(event.type, data, source="auth", version=event.dataversion)


def test_a_deleted_account_stays_deleted_even_if_a_newer_state_arrives(sessions):
    account_id = uuid.uuid4()
    apply_in_order(
        sessions,
        [
            account_event("account.deleted", account_id, 2),
            account_event("account.created", account_id, 1),
            account_event("account.updated", account_id, 3, full_name="Ghost"),
        ],
    )
    replica = replica_of(sessions, account_id)
    assert (replica.deleted, replica.full_name) == (True, "Ghost")


def test_created_account_is_stored_with_every_field(sessions):
    account_id = uuid.uuid4()
    apply_in_order(sessions, [account_event("account.created", account_id, 1, role="accountant")])
    assert replica_of(sessions, account_id) == Replica(
        f"kesha-{account_id.hex[:6]}@popug.inc", "Kesha Popugaev", "accountant", True, False
    )


def test_replica_built_through_the_consumer_from_shuffled_and_duplicated_events(
    sessions, engine, settings, tasks_settings, tasks_database_url
):
    histories = {
        uuid.uuid4(): (promoted_then_deactivated, PROMOTED_THEN_DEACTIVATED),
        uuid.uuid4(): (role_change_without_state, ROLE_CHANGE_WITHOUT_STATE),
        uuid.uuid4(): (created_then_deleted, DELETED),
        uuid.uuid4(): (lambda a: [account_event("account.created", a, 1)], None),
    }
    events = [e for account_id, (history, _) in histories.items() for e in history(account_id)]
    rng = random.Random(42)
    delivered = events + rng.sample(events, 5)  # redeliveries of the same event ids
    rng.shuffle(delivered)
    _produce(settings, delivered)

    platform = settings.with_(service_database_urls={"tasks": tasks_database_url})
    runtime = consumer_runtime(engine, platform, backoff_base=0.01, backoff_max=0.05)
    try:
        poll_until(runtime, lambda: count_rows(engine, "inbox") == len(events))
        for _ in range(3):
            runtime.poll_once(0.2)  # anything still in flight is a duplicate
    finally:
        runtime.close()

    assert count_rows(engine, "inbox") == len(events)
    worker = next(a for a, (_, expected) in histories.items() if expected is None)
    for account_id, (_, expected) in histories.items():
        if expected is not None:
            assert comparable(replica_of(sessions, account_id)) == expected
    assert replica_of(sessions, worker).role == "worker"
    # Only the worker and the account that became an accountant may get tasks now.
    eligible = {
        commands(sessions, tasks_settings, random.Random(n))
        .create_task(actor(worker), f"Task {n}").assignee_id
        for n in range(30)
    }
    accountant = next(a for a, (h, _) in histories.items() if h is role_change_without_state)
    assert eligible == {worker, accountant}


def _produce(settings, events: list[Event]) -> None:
    registry = default_registry()
    producer = Producer(producer_config(settings))
    for event in events:
        topic = settings.topic(registry.topic_of(event.type))
        producer.produce(topic, key=registry.key_of(event).encode(), value=event.to_json())
    assert producer.flush(10) == 0


def test_no_task_for_an_account_deactivated_or_deleted_later(sessions, tasks_settings):
    account_id = uuid.uuid4()
    creator = actor(uuid.uuid4(), "manager")
    apply_in_order(sessions, [account_event("account.created", account_id, 1)])
    commands(sessions, tasks_settings).create_task(creator, "First")
    apply_in_order(sessions, [account_event("account.updated", account_id, 2, active=False)])
    with pytest.raises(domain.NoEligibleAssignee):
        commands(sessions, tasks_settings).create_task(creator, "Second")
    apply_in_order(sessions, [account_event("account.updated", account_id, 3)])
    commands(sessions, tasks_settings).create_task(creator, "Third")
    apply_in_order(sessions, [account_event("account.deleted", account_id, 4)])
    with pytest.raises(domain.NoEligibleAssignee):
        commands(sessions, tasks_settings).create_task(creator, "Fourth")


def test_a_run_of_states_of_many_accounts_applied_at_once_keeps_the_newest(sessions, engine):
    # The consumer hands a run of account.created/updated events to one batch handler:
    # several versions of one account in the run, in any order, end in the newest.
    rng = random.Random(3)
    accounts = [uuid.uuid4() for _ in range(30)]
    states = [
        account_event("account.updated", account_id, version, full_name=f"Popug v{version}",
                      role=rng.choice(domain.ROLES), active=rng.random() < 0.7)
        for account_id in accounts
        for version in (1, 2, 3)
    ]
    rng.shuffle(states)
    newest = {(e.data["account_id"]): e.data for e in states if e.data["version"] == 3}
    with sessions() as session, session.begin():
        handlers.find(states[0]).batch(session, states)
        handlers.find(states[0]).batch(session, states[:40])  # redelivered part of it
    for account_id in accounts:
        expected = newest[str(account_id)]
        replica = replica_of(sessions, account_id)
        assert (replica.full_name, replica.role, replica.active) == (
            expected["full_name"], expected["role"], expected["active"])
    eligible = {a for a in accounts if domain.is_eligible_assignee(
        newest[str(a)]["role"], newest[str(a)]["active"], False)}
    assert eligible == set(assignee_slots(engine).values())
