"""The pool of eligible assignees (``assignee_slots``) and the open-task counts: kept in
step with the replica and the tasks by triggers, read in constant time."""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter

import pytest
from sqlalchemy import Engine, func, select, text

from platform_kit.db import driver_transaction
from tasks import consumers, domain, service
from tasks.models import ASSIGNEE_POOL_LOCK, AssigneeSlot
from tasks.queries import TaskQueries
from tasks.reshuffle import _hold_assignee_pool
from tests.tasks.conftest import (
    actor,
    add_account,
    assignee_slots,
    commands,
    delete_account,
    insert_open_tasks,
)
from tests.tasks.stats import uniformity_p_value
from tests.tasks.test_concurrency import wait_for_advisory_lock_waiters


def eligible_accounts(engine: Engine) -> set[uuid.UUID]:
    with engine.connect() as connection:
        query = "SELECT public_id FROM accounts WHERE active AND NOT deleted" \
                " AND role IN ('worker', 'accountant')"
        return set(connection.execute(text(query)).scalars())


def set_state(sessions, account_id: uuid.UUID, version: int, role: str, active: bool) -> None:
    with sessions() as session, session.begin():
        consumers.apply_account_state(
            session, account_id, email=f"{account_id.hex[:8]}@popug.inc",
            full_name="Popug", role=role, active=active, version=version,
        )


def assert_slots_number_exactly_the_eligible(engine: Engine) -> None:
    slots = assignee_slots(engine)
    assert sorted(slots) == list(range(1, len(slots) + 1))
    assert set(slots.values()) == eligible_accounts(engine)
    assert len(set(slots.values())) == len(slots)


def test_slots_follow_every_change_of_the_replica(sessions, engine):
    rng = random.Random(20261203)
    versions: dict[uuid.UUID, int] = {}
    for _ in range(150):
        move = rng.choice(["create", "create", "change", "change", "role", "delete"])
        if move == "create" or not versions:
            account_id = add_account(sessions, rng.choice(domain.ROLES), active=rng.random() < 0.8)
            versions[account_id] = 1
        else:
            account_id = rng.choice(sorted(versions))
            versions[account_id] += 1
            if move == "change":
                set_state(sessions, account_id, versions[account_id],
                          rng.choice(domain.ROLES), rng.random() < 0.6)
            elif move == "role":
                with sessions() as session, session.begin():
                    consumers.apply_role_change(session, account_id, rng.choice(domain.ROLES),
                                              versions[account_id])
            else:
                delete_account(sessions, account_id)
        assert_slots_number_exactly_the_eligible(engine)


def test_account_rows_removed_outright_leave_the_pool(sessions, engine, team):
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM accounts WHERE public_id = :id"),
                           {"id": team.workers[0]})
    assert_slots_number_exactly_the_eligible(engine)
    assert team.workers[0] not in assignee_slots(engine).values()


def test_the_pick_is_uniform_over_the_eligible_accounts(sessions, engine, team):
    # The service's own random source: nothing seeded, so a strict threshold (a fair draw
    # fails it once in a million runs; an off-by-one slot gives p < 1e-30).
    rng = random.SystemRandom()
    with driver_transaction(engine) as cursor:
        counts = Counter(service.lock_random_assignee(cursor, rng, uuid.uuid4())
                         for _ in range(4_000))
    assert set(counts) == set(team.eligible)
    assert uniformity_p_value([counts[a] for a in team.eligible]) > 1e-6


def test_a_pick_never_lands_on_an_account_that_left_meanwhile(sessions, engine, team):
    leaving = team.workers[0]
    with engine.begin() as connection:  # the account leaves, but its slot is still read
        connection.execute(text("ALTER TABLE accounts DISABLE TRIGGER USER"))
        connection.execute(text("UPDATE accounts SET active = false WHERE public_id = :id"),
                           {"id": leaving})
        connection.execute(text("ALTER TABLE accounts ENABLE TRIGGER USER"))
    with driver_transaction(engine) as cursor:
        picks = {service.lock_random_assignee(cursor, random.Random(n), uuid.uuid4())
                 for n in range(200)}
    assert leaving not in picks
    assert picks == set(team.eligible) - {leaving}


def test_a_deactivation_waits_for_a_running_reshuffle(sessions, engine, team):
    with sessions() as reshuffling, reshuffling.begin():
        assert _hold_assignee_pool(reshuffling) == len(team.eligible)
        deactivation = threading.Thread(
            target=set_state, args=(sessions, team.workers[0], 2, "worker", False)
        )
        deactivation.start()
        wait_for_advisory_lock_waiters(engine, 1)
        assert team.workers[0] in eligible_accounts(engine)
    deactivation.join(timeout=10)
    assert not deactivation.is_alive()
    assert team.workers[0] not in assignee_slots(engine).values()


def test_the_pool_lock_is_the_one_the_triggers_take(engine):
    with engine.connect() as connection:
        source = connection.execute(
            text("SELECT prosrc FROM pg_proc WHERE proname = 'assignee_slots_join'")
        ).scalar_one()
    assert f"pg_advisory_xact_lock({ASSIGNEE_POOL_LOCK})" in source


def test_open_task_counts_follow_creation_completion_reshuffle_and_bulk_loads(
    sessions, engine, tasks_settings, team
):
    created = [
        commands(sessions, tasks_settings).create_task(actor(team.admin, "admin"), f"T{n}")
        for n in range(6)
    ]
    assert TaskQueries(sessions).count_open_tasks() == 6
    for task in created[:2]:
        commands(sessions, tasks_settings).complete_task(actor(task.assignee_id), task.id)
    assert TaskQueries(sessions).count_open_tasks() == 4
    insert_open_tasks(engine, 500, team.workers[0])
    commands(sessions, tasks_settings).reshuffle(actor(team.admin, "admin"))
    with engine.connect() as connection:
        counted = connection.execute(
            text("SELECT count(*) FROM tasks WHERE status = 'open'")
        ).scalar_one()
    assert TaskQueries(sessions).count_open_tasks() == counted == 504


@pytest.fixture
def large_tables(engine, team):
    """Enough accounts and tasks that the planner would scan a table it had no index for."""
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO accounts (public_id, email, full_name, role, active, version)"
            " SELECT gen_random_uuid(), 'p' || n || '@popug.inc', 'Popug ' || n, 'worker',"
            " true, 1 FROM generate_series(1, 20000) AS n"
        ))
    insert_open_tasks(engine, 20_000, team.workers[0])
    with engine.begin() as connection:
        connection.execute(text("UPDATE tasks SET status = 'done', completed_at = now()"
                                " WHERE id % 10 = 0"))
        connection.execute(text("ANALYZE accounts, assignee_slots, tasks"))


def plan_of(engine: Engine, statement, params: dict | None = None) -> str:
    with engine.connect() as connection:
        if not isinstance(statement, str):
            compiled = statement.compile(connection, compile_kwargs={"literal_binds": True})
            statement = str(compiled).replace("%%", "%")  # text() escapes % itself
        rows = connection.execute(text(f"EXPLAIN {statement}"), params or {}).scalars()
        return "\n".join(rows)


@pytest.mark.usefixtures("large_tables")
def test_picking_an_assignee_and_counting_open_tasks_scan_no_table(sessions, engine):
    pick = service._PICK.params(draw=17, caller=uuid.uuid4())
    size = select(func.max(AssigneeSlot.slot))
    for statement in (pick, size):
        plan = plan_of(engine, statement)
        assert "Seq Scan" not in plan, plan
    count = plan_of(engine, "SELECT sum(open) FROM open_task_counts")
    assert "tasks " not in count.replace("open_task_counts", "")


@pytest.mark.usefixtures("large_tables")
def test_a_reshuffle_chunk_reads_tasks_and_slots_by_index(engine):
    from tasks.reshuffle import _LAST_OF_CHUNK, _REASSIGN_OPEN_TASKS

    bounds = {"%(pool_size)s": "20000", "%(after)s": "100", "%(last)s": "1100",
              "%(chunk)s": "1000", "%(actor)s": "NULL", "%(at)s": "now()"}
    for statement in (_REASSIGN_OPEN_TASKS, _LAST_OF_CHUNK):
        for name, value in bounds.items():
            statement = statement.replace(name, value)
        plan = plan_of(engine, statement)
        assert "Seq Scan" not in plan, plan
