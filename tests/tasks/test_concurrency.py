"""Reshuffles and completions at the same moment, in threads against the real database."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from sqlalchemy import Engine, text

from tasks import domain, queries
from tasks.queries import TaskQueries
from tasks.reshuffle import RESHUFFLE_LOCK
from tests.tasks.conftest import actor, all_tasks, commands, insert_open_tasks, stored_events


def events_per_task(engine: Engine) -> dict[str, list]:
    """Each task's events in the order they were written."""
    per_task = defaultdict(list)
    for stored in stored_events(engine):
        per_task[stored.key].append(stored.event)
    return per_task


def wait_for_advisory_lock_waiters(engine: Engine, count: int, timeout: float = 10.0) -> None:
    query = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            if connection.execute(query).scalar_one() >= count:
                return
        time.sleep(0.01)
    raise AssertionError(f"{count} transactions never queued for the reshuffle lock")


@contextmanager
def completion_in_flight(engine: Engine) -> Iterator[Callable[[], None]]:
    """Holds the reshuffle lock as a running completion does, until ``release()`` (or the
    end of the block, so that a failing test never leaves threads waiting)."""
    with engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(
            text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": RESHUFFLE_LOCK}
        )
        try:
            yield transaction.rollback
        finally:
            if transaction.is_active:
                transaction.rollback()


def test_completions_during_reshuffles_are_never_lost(sessions, engine, tasks_settings, team):
    insert_open_tasks(engine, 400, team.workers[0])
    manager = actor(team.manager, "manager")
    reshuffles_done = threading.Event()
    completed: dict[uuid.UUID, queries.TaskView] = {}

    def reshuffle_a_few_times() -> list[int]:
        counts = []
        try:
            for _ in range(10):
                counts.append(commands(sessions, tasks_settings).reshuffle(manager))
                time.sleep(0.02)  # let completions in between reshuffles too
            return counts
        finally:
            reshuffles_done.set()

    def complete_own_tasks(account_id: uuid.UUID) -> int:
        refused = 0
        while not reshuffles_done.is_set():
            mine, _ = TaskQueries(sessions).list_tasks(assignee=account_id, status="open", limit=5)
            for task in mine:
                try:
                    done = commands(sessions, tasks_settings).complete_task(
                        actor(account_id), task.id)
                except domain.NotAssignee:
                    refused += 1  # reshuffled away since it was listed
                else:
                    completed[done.id] = done
        return refused

    with ThreadPoolExecutor(max_workers=1 + len(team.eligible)) as pool:
        reshuffled = pool.submit(reshuffle_a_few_times)
        completers = [pool.submit(complete_own_tasks, a) for a in team.eligible]
        counts = reshuffled.result(timeout=120)
        for completer in completers:
            completer.result(timeout=120)

    assert len(completed) > 10, "too few completions ran alongside the reshuffles"
    tasks = {t.public_id: t for t in all_tasks(engine)}
    assert {i for i, t in tasks.items() if t.status == "done"} == set(completed)
    for task_id, done in completed.items():
        assert (tasks[task_id].assignee_id, tasks[task_id].completed_at) == (
            done.assignee_id,
            done.completed_at,
        )
    _assert_histories_are_consistent(engine, team.workers[0], len(completed), sum(counts))


def _assert_histories_are_consistent(
    engine: Engine, first_assignee: uuid.UUID, completions: int, reassignments: int
) -> None:
    """Per task: versions 2, 3, ... without gap; nothing after the completion; the
    completion by whoever the last assignment named."""
    histories = events_per_task(engine)
    seen_completions = seen_reassignments = 0
    for events in histories.values():
        versions = [e.data["version"] for e in events if e.type == "task.updated"]
        assert versions == list(range(2, 2 + len(versions)))
        assignee = str(first_assignee)
        for position, event in enumerate(events):
            if event.type == "task.assigned":
                assert event.data["previous_assignee_id"] == assignee
                assignee = event.data["assignee_id"]
                seen_reassignments += 1
            elif event.type == "task.completed":
                assert event.data["assignee_id"] == assignee
                assert [e.type for e in events[position + 1 :]] == []
                seen_completions += 1
            elif event.type == "task.updated" and event.data["status"] == "done":
                assert [e.type for e in events[position + 1 :]] == ["task.completed"]
    assert (seen_completions, seen_reassignments) == (completions, reassignments)


def test_overlapping_reshuffles_run_one_after_the_other(sessions, engine, tasks_settings, team):
    insert_open_tasks(engine, 300, team.workers[0])
    manager, admin = actor(team.manager, "manager"), actor(team.admin, "admin")

    with ThreadPoolExecutor(max_workers=2) as pool, completion_in_flight(engine) as release:
        first = pool.submit(commands(sessions, tasks_settings).reshuffle, manager)
        second = pool.submit(commands(sessions, tasks_settings).reshuffle, admin)
        wait_for_advisory_lock_waiters(engine, 2)  # both started, both waiting
        release()
        assert (first.result(timeout=60), second.result(timeout=60)) == (300, 300)

    assert {t.version for t in all_tasks(engine)} == {3}
    for events in events_per_task(engine).values():
        assert [(e.type, e.data.get("version")) for e in events] == [
            ("task.updated", 2),
            ("task.assigned", None),
            ("task.updated", 3),
            ("task.assigned", None),
        ]
        first_move, second_move = events[1].data, events[3].data
        assert first_move["previous_assignee_id"] == str(team.workers[0])
        assert second_move["previous_assignee_id"] == first_move["assignee_id"]
        assert events[2].data["assignee_id"] == second_move["assignee_id"]


def test_a_completion_that_arrives_during_a_reshuffle_is_judged_after_it(
    sessions, engine, tasks_settings, team
):
    insert_open_tasks(engine, 12, team.workers[0])  # one connection each, within the pool
    tasks = all_tasks(engine)
    manager, first_assignee = actor(team.manager, "manager"), actor(team.workers[0])

    with (
        ThreadPoolExecutor(max_workers=1 + len(tasks)) as pool,
        completion_in_flight(engine) as release,
    ):
        reshuffle = pool.submit(commands(sessions, tasks_settings).reshuffle, manager)
        wait_for_advisory_lock_waiters(engine, 1)
        completions = [
            pool.submit(
                _outcome,
                lambda t=t: commands(sessions, tasks_settings).complete_task(
                    first_assignee, t.public_id),
            )
            for t in tasks
        ]
        wait_for_advisory_lock_waiters(engine, 1 + len(tasks))  # queued behind the reshuffle
        release()
        assert reshuffle.result(timeout=60) == len(tasks)
        outcomes = [c.result(timeout=60) for c in completions]

    after = {t.public_id: t for t in all_tasks(engine)}
    for task, outcome in zip(tasks, outcomes, strict=True):
        now = after[task.public_id]
        if isinstance(outcome, domain.NotAssignee):
            assert (now.status, now.version) == ("open", 2)
            assert now.assignee_id != team.workers[0]
        else:
            assert (now.status, now.version, now.assignee_id) == ("done", 3, team.workers[0])
    refused = sum(isinstance(o, domain.NotAssignee) for o in outcomes)
    _assert_histories_are_consistent(engine, team.workers[0], len(tasks) - refused, len(tasks))


def _outcome(action: Callable[[], object]) -> object:
    try:
        return action()
    except domain.TaskError as error:
        return error
