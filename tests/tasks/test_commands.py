"""Creating and completing tasks against the real database, and the events they write."""

from __future__ import annotations

import random
import uuid
from dataclasses import replace

import pytest

from auth_client.replica import AccountMayNotAct
from tasks import domain
from tasks.events import rfc3339
from tasks.queries import TaskQueries
from tests.tasks.conftest import (
    actor,
    add_account,
    all_tasks,
    assignee_slots,
    commands,
    count_rows,
    last_outbox_row,
    stored_events,
)

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_create_task_stores_an_open_task_for_an_eligible_assignee(
    sessions, engine, tasks_settings, team
):
    creator = actor(team.manager, "manager")
    task = commands(sessions, tasks_settings).create_task(
        creator, "  Fix the button ", "uberpop-42", "It is broken.")

    assert task.title == "Fix the button" and task.jira_id == "UBERPOP-42"
    assert (task.status, task.completed_at, task.version) == ("open", None, 1)
    assert task.assignee_id in team.eligible
    assert task.created_by == team.manager
    assert TaskQueries(sessions).get_task(task.id) == task
    [stored] = all_tasks(engine)
    assert (stored.public_id, stored.assignee_id) == (task.id, task.assignee_id)


def test_create_task_writes_created_added_and_assigned_events(
    sessions, engine, tasks_settings, team
):
    task = commands(sessions, tasks_settings).create_task(
        actor(team.workers[0]), 'Feed "the" parrots 100% ü', "UBERPOP-42", None,
        traceparent=TRACEPARENT)
    created_at, task_id = rfc3339(task.created_at), str(task.id)

    created, added, assigned = stored_events(engine)

    assert [(s.topic, s.key) for s in (created, added, assigned)] == [
        ("tasks-stream", task_id),
        ("tasks-lifecycle", task_id),
        ("tasks-lifecycle", task_id),
    ]
    assert [(s.event.type, s.event.dataversion) for s in (created, added, assigned)] == [
        ("task.created", 2),
        ("task.added", 1),
        ("task.assigned", 1),
    ]
    assert created.event.data == {
        "task_id": task_id,
        "title": 'Feed "the" parrots 100% ü',
        "jira_id": "UBERPOP-42",
        "description": None,
        "status": "open",
        "assignee_id": str(task.assignee_id),
        "created_at": created_at,
        "completed_at": None,
        "version": 1,
    }
    assert added.event.data == {
        "task_id": task_id,
        "title": 'Feed "the" parrots 100% ü',
        "jira_id": "UBERPOP-42",
        "description": None,
        "created_by": str(team.workers[0]),
        "created_at": created_at,
    }
    assert assigned.event.data == {
        "task_id": task_id,
        "assignee_id": str(task.assignee_id),
        "previous_assignee_id": None,
        "reason": "created",
        "assigned_at": created_at,
    }
    for stored in (created, added, assigned):
        assert (stored.event.source, stored.event.time) == ("tasks", created_at)
        assert stored.event.traceparent == TRACEPARENT
        assert stored.headers["traceparent"] == TRACEPARENT


def test_with_nobody_eligible_creation_fails_and_stores_nothing(sessions, engine, tasks_settings):
    add_account(sessions, "manager")
    add_account(sessions, "admin")
    add_account(sessions, "worker", active=False)
    creator = actor(uuid.uuid4(), "admin")

    with pytest.raises(domain.NoEligibleAssignee):
        commands(sessions, tasks_settings).create_task(creator, "Feed the parrots")

    assert count_rows(engine, "tasks") == 0
    assert count_rows(engine, "outbox") == 0


@pytest.mark.parametrize(("who", "reason"), [("inactive_worker", "the account is deactivated"),
                                              ("deleted_worker", "the account is deleted")])
def test_an_actor_the_replica_knows_may_not_act_creates_nothing(
    sessions, engine, tasks_settings, team, who, reason
):
    with pytest.raises(AccountMayNotAct, match=f"^{reason}$"):
        commands(sessions, tasks_settings).create_task(actor(getattr(team, who)), "Fix")

    assert count_rows(engine, "tasks") == 0
    assert count_rows(engine, "outbox") == 0


def test_an_actor_the_replica_has_not_heard_of_yet_may_create(sessions, tasks_settings, team):
    task = commands(sessions, tasks_settings).create_task(actor(uuid.uuid4()), "Fix")

    assert task.assignee_id in team.eligible


@pytest.mark.parametrize(
    ("title", "jira_id", "description"),
    [
        ("", None, None),
        ("[UBERPOP-1] Fix", None, None),
        ("Fix", "not a key", None),
        ("Fix", None, "x" * (domain.DESCRIPTION_MAX_LENGTH + 1)),
    ],
)
def test_invalid_input_stores_nothing(
    sessions, engine, tasks_settings, team, title, jira_id, description
):
    with pytest.raises(domain.ValidationError):
        commands(sessions, tasks_settings).create_task(
            actor(team.workers[0]), title, jira_id, description)
    assert count_rows(engine, "tasks") == 0
    assert count_rows(engine, "outbox") == 0


def test_creation_follows_the_injected_random_source_over_exactly_the_eligible_accounts(
    sessions, engine, tasks_settings, team
):
    # With the same seed, the service must pick exactly the slot a uniform choice among
    # the eligible accounts picks: nobody else ever gets a task.
    creator = actor(team.workers[0])
    picks = [
        commands(sessions, tasks_settings, random.Random(n))
        .create_task(creator, f"Task {n}").assignee_id
        for n in range(60)
    ]
    slots = assignee_slots(engine)
    assert sorted(slots.values()) == sorted(team.eligible)
    assert picks == [slots[domain.choose_slot(len(slots), random.Random(n))] for n in range(60)]
    assert set(picks) == set(team.eligible)


def test_assignee_completes_the_task(sessions, engine, tasks_settings, team):
    task = commands(sessions, tasks_settings).create_task(actor(team.manager, "manager"), "Fix")
    before = last_outbox_row(engine)

    done = commands(sessions, tasks_settings).complete_task(
        actor(task.assignee_id), task.id, traceparent=TRACEPARENT)

    assert (done.status, done.version, done.assignee_id) == ("done", 2, task.assignee_id)
    assert done.completed_at is not None and done.completed_at >= task.created_at
    assert TaskQueries(sessions).get_task(task.id) == done
    updated, completed = stored_events(engine, after_row=before)
    assert (updated.topic, updated.event.type, updated.event.dataversion) == (
        "tasks-stream",
        "task.updated",
        2,
    )
    assert updated.event.data == {
        "task_id": str(task.id),
        "title": "Fix",
        "jira_id": None,
        "description": None,
        "status": "done",
        "assignee_id": str(task.assignee_id),
        "created_at": rfc3339(task.created_at),
        "completed_at": rfc3339(done.completed_at),
        "version": 2,
    }
    assert (completed.topic, completed.event.type) == ("tasks-lifecycle", "task.completed")
    assert completed.event.data == {
        "task_id": str(task.id),
        "assignee_id": str(task.assignee_id),
        "completed_at": rfc3339(done.completed_at),
    }
    assert completed.event.traceparent == TRACEPARENT


def test_only_the_assignee_may_complete(sessions, engine, tasks_settings, team):
    task = commands(sessions, tasks_settings).create_task(actor(team.workers[0]), "Fix")
    before = last_outbox_row(engine)
    someone_else = next(a for a in team.eligible if a != task.assignee_id)

    for intruder in (actor(someone_else), actor(team.admin, "admin")):
        with pytest.raises(domain.NotAssignee):
            commands(sessions, tasks_settings).complete_task(intruder, task.id)

    assert TaskQueries(sessions).get_task(task.id) == task
    assert last_outbox_row(engine) == before


def test_completing_twice_is_an_error_and_changes_nothing(sessions, engine, tasks_settings, team):
    task = commands(sessions, tasks_settings).create_task(actor(team.workers[0]), "Fix")
    done = commands(sessions, tasks_settings).complete_task(actor(task.assignee_id), task.id)
    before = last_outbox_row(engine)

    with pytest.raises(domain.AlreadyDone):
        commands(sessions, tasks_settings).complete_task(actor(task.assignee_id), task.id)

    assert TaskQueries(sessions).get_task(task.id) == done
    assert last_outbox_row(engine) == before


def test_unknown_task(sessions, tasks_settings, team):
    missing = uuid.uuid4()
    with pytest.raises(domain.TaskNotFound, match=str(missing)):
        TaskQueries(sessions).get_task(missing)
    with pytest.raises(domain.TaskNotFound):
        commands(sessions, tasks_settings).complete_task(actor(team.workers[0]), missing)


def test_v1_mode_folds_the_jira_key_into_the_title(sessions, engine, tasks_settings, team):
    v1 = replace(tasks_settings, task_event_version=1)
    keyed = commands(sessions, v1).create_task(
        actor(team.workers[0]), "Fix the button", "UBERPOP-42")
    commands(sessions, v1).create_task(actor(team.workers[0]), "Feed the parrots")
    commands(sessions, v1).complete_task(actor(keyed.assignee_id), keyed.id)

    state_events = [s.event for s in stored_events(engine) if s.topic == "tasks-stream"]
    assert [(e.type, e.dataversion) for e in state_events] == [
        ("task.created", 1),
        ("task.created", 1),
        ("task.updated", 1),
    ]
    assert [e.data["title"] for e in state_events] == [
        "[UBERPOP-42] Fix the button",
        "Feed the parrots",
        "[UBERPOP-42] Fix the button",
    ]
    assert all("jira_id" not in e.data for e in state_events)
    added = [s.event for s in stored_events(engine) if s.event.type == "task.added"]
    assert [(e.data["title"], e.data["jira_id"]) for e in added] == [
        ("Fix the button", "UBERPOP-42"),
        ("Feed the parrots", None),
    ]
    assert TaskQueries(sessions).get_task(keyed.id).title == "Fix the button"
