"""Search, filters, sorting, totals and the history of a task, against real PostgreSQL."""

from __future__ import annotations

import random
import uuid

import pytest
from sqlalchemy import select, text

from tasks import consumers, domain, queries
from tasks.models import Task
from tasks.queries import TaskQueries
from tests.helpers import add_replica_account
from tests.tasks.conftest import actor, add_account, commands, insert_open_tasks
from tests.tasks.test_assignee_pool import plan_of


def ids(tasks) -> list[uuid.UUID]:
    return [task.id for task in tasks]


def every_page(sessions, limit=2, **conditions) -> list[uuid.UUID]:
    found, cursor = [], None
    while True:
        page, cursor = TaskQueries(sessions).list_tasks(cursor=cursor, limit=limit, **conditions)
        found += ids(page)
        if cursor is None:
            return found


@pytest.fixture
def named_team(sessions):
    """Two workers with distinct names (the only eligible ones) and a manager."""
    kesha = add_replica_account(consumers, sessions, uuid.uuid4(), "worker", "Kesha Parrot")
    rio = add_replica_account(consumers, sessions, uuid.uuid4(), "worker", "Rio Macaw")
    boss = add_replica_account(consumers, sessions, uuid.uuid4(), "manager", "Big Boss")
    return kesha, rio, boss


@pytest.fixture
def tasks(sessions, tasks_settings, named_team):
    kesha, rio, boss = named_team
    made = []
    specs = [
        (boss, "Feed the parrots", "UBERPOP-7", "Millet and water"),
        (kesha, "Clean the cage", None, "Use 100% natural soap_and water"),
        (boss, "Buy millet", "UBERPOP-42", None),
        (rio, "Answer the mail", None, "About the FEEDING schedule"),
    ]
    seeds = (0, 6, 1, 7)  # draws that give the tasks to Rio and Kesha in turn
    for seed, (creator, title, jira_id, description) in zip(seeds, specs, strict=True):
        made.append(commands(sessions, tasks_settings, random.Random(seed)).create_task(
            actor(creator), title, jira_id, description))
    return made


def test_search_looks_in_title_jira_id_and_description_ignoring_case(sessions, tasks):
    feed, clean, buy, mail = tasks
    assert every_page(sessions, q="feed") == [mail.id, feed.id]
    assert every_page(sessions, q="uberpop-4") == [buy.id]
    assert every_page(sessions, q="MILLET") == [buy.id, feed.id]
    assert every_page(sessions, q="  cage ") == [clean.id]
    assert every_page(sessions, q="giraffe") == []


def test_search_takes_wildcards_literally(sessions, tasks):
    _, clean, _, _ = tasks
    assert every_page(sessions, q="100%") == [clean.id]
    assert every_page(sessions, q="soap_and") == [clean.id]
    assert every_page(sessions, q="soap%water") == []
    assert every_page(sessions, q="m_llet") == []


def test_filters_by_assignee_and_creator_name_and_id(sessions, tasks, named_team):
    kesha, rio, boss = named_team
    by_boss = [task.id for task in reversed(tasks) if task.title in ("Feed the parrots",
                                                                     "Buy millet")]
    assert every_page(sessions, creator_name="boss") == by_boss
    assert every_page(sessions, creator=boss) == by_boss
    assert every_page(sessions, creator=kesha) == [tasks[1].id]
    to_kesha = [task.id for task in reversed(tasks) if task.assignee_id == kesha]
    to_rio = [task.id for task in reversed(tasks) if task.assignee_id == rio]
    assert to_kesha and to_rio  # the fixed seeds spread the tasks over both
    assert every_page(sessions, assignee_name="kesha") == to_kesha
    assert every_page(sessions, assignee_name="MACAW") == to_rio
    assert every_page(sessions, assignee_name="Big Boss") == []
    assert every_page(sessions, assignee_name="kesha", q="millet") == [
        task_id for task_id in to_kesha if task_id in (tasks[0].id, tasks[2].id)]


def test_sorting_by_age_and_title_pages_through_everything_once(sessions, tasks):
    newest = ids(reversed(tasks))
    assert every_page(sessions) == newest
    assert every_page(sessions, sort="oldest") == newest[::-1]
    by_title = [t.id for t in sorted(tasks, key=lambda t: t.title)]
    assert every_page(sessions, sort="title", limit=1) == by_title
    assert every_page(sessions, sort="title", limit=3) == by_title


def test_sorting_by_title_keeps_equal_titles_apart(sessions, tasks_settings, named_team):
    kesha, _, _ = named_team
    same = [commands(sessions, tasks_settings).create_task(actor(kesha), "Same") for _ in range(5)]
    assert every_page(sessions, sort="title", limit=2) == ids(same)


def test_unknown_sort_and_overlong_search_are_refused(sessions):
    with pytest.raises(domain.ValidationError, match="sort must be one of"):
        TaskQueries(sessions).list_tasks(sort="random")
    with pytest.raises(domain.ValidationError, match="search must be at most"):
        TaskQueries(sessions).list_tasks(q="x" * (queries.QUERY_MAX_LENGTH + 1))


def test_totals_are_exact_for_small_sets(sessions, tasks, named_team, tasks_settings):
    kesha, _, boss = named_team
    assert TaskQueries(sessions).count_tasks() == queries.Total(4, exact=True)
    assert TaskQueries(sessions).count_tasks(q="millet") == queries.Total(2, exact=True)
    assert TaskQueries(sessions).count_tasks(creator=boss) == queries.Total(2, exact=True)
    assert TaskQueries(sessions).count_tasks(status="open") == queries.Total(4, exact=True)
    task = next(t for t in tasks if t.assignee_id == kesha)
    commands(sessions, tasks_settings).complete_task(actor(kesha), task.id)
    assert TaskQueries(sessions).count_tasks(status="done") == queries.Total(1, exact=True)
    assert TaskQueries(sessions).count_tasks(status="open") == queries.Total(3, exact=True)


@pytest.mark.parametrize("q", ["a:b", "it's", "99%", "%(x)s", "back\\slash", "$1 ? {}"])
def test_totals_take_any_search_text_literally(sessions, tasks, q):
    assert TaskQueries(sessions).count_tasks(q=q) == queries.Total(0, exact=True)
    assert TaskQueries(sessions).count_tasks(q=q, creator_name=q) == queries.Total(0, exact=True)


def test_totals_beyond_the_exact_limit_are_estimates(sessions, engine, team, monkeypatch):
    monkeypatch.setattr(queries, "COUNT_EXACTLY_UP_TO", 50)
    insert_open_tasks(engine, 2_000, team.workers[0])
    with engine.begin() as connection:
        connection.execute(text("ANALYZE tasks"))
    open_total = TaskQueries(sessions).count_tasks(status="open")
    assert open_total == queries.Total(2_000, exact=True)  # the maintained counts
    everything = TaskQueries(sessions).count_tasks()
    assert not everything.exact and 1_000 <= everything.count <= 4_000
    few = TaskQueries(sessions).count_tasks(q="Task 199")  # 199 and 1990..1999
    assert few == queries.Total(11, exact=True)
    many = TaskQueries(sessions).count_tasks(q="Task 1")  # 1111 of them
    assert not many.exact and many.count > 50


# -- history ---------------------------------------------------------------------------


def test_history_records_creation_reshuffles_and_completion(sessions, tasks_settings, team):
    creator = actor(team.workers[0])
    task = commands(sessions, tasks_settings).create_task(creator, "Feed the parrots")
    manager = actor(team.manager, "manager")
    commands(sessions, tasks_settings).reshuffle(manager)
    commands(sessions, tasks_settings).reshuffle(manager)
    current = TaskQueries(sessions).get_task(task.id)
    commands(sessions, tasks_settings).complete_task(actor(current.assignee_id), task.id)

    created, first, second, completed = TaskQueries(sessions).task_history(task.id)
    assert (created.kind, created.actor_id, created.assignee_id) == (
        "created", team.workers[0], task.assignee_id)
    assert created.previous_assignee_id is None and created.at == task.created_at
    assert (first.kind, first.actor_id, first.previous_assignee_id) == (
        "reassigned", team.manager, task.assignee_id)
    assert (second.kind, second.previous_assignee_id, second.assignee_id) == (
        "reassigned", first.assignee_id, current.assignee_id)
    assert first.at <= second.at <= completed.at
    assert (completed.kind, completed.actor_id, completed.assignee_id) == (
        "completed", current.assignee_id, current.assignee_id)


def test_a_reshuffle_in_several_chunks_writes_one_history_row_per_task(
        sessions, engine, tasks_settings, team, monkeypatch):
    from tasks import reshuffle as reshuffle_module

    monkeypatch.setattr(reshuffle_module, "CHUNK", 30)
    insert_open_tasks(engine, 100, team.workers[0])
    assert commands(sessions, tasks_settings).reshuffle(actor(team.admin, "admin")) == 100
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT h.task_id, h.assignee_id = t.assignee_id, h.previous_assignee_id, h.actor_id"
            " FROM task_history h JOIN tasks t ON t.id = h.task_id")).all()
    assert sorted(row[0] for row in rows) == list(range(1, 101))
    assert all(row[1] and row[2] == team.workers[0] and row[3] == team.admin for row in rows)


def test_history_is_not_written_when_the_change_fails(sessions, engine, tasks_settings, team):
    task = commands(sessions, tasks_settings).create_task(actor(team.workers[0]), "Feed")
    with pytest.raises(domain.NotAssignee):
        commands(sessions, tasks_settings).complete_task(actor(team.manager), task.id)
    assert [entry.kind for entry in TaskQueries(sessions).task_history(task.id)] == ["created"]
    assert TaskQueries(sessions).task_history(uuid.uuid4()) == []


# -- index use at scale ----------------------------------------------------------------


@pytest.fixture
def many_tasks(engine, sessions):
    """20,000 tasks by a few hundred creators, with statistics: the planner's real choices."""
    workers = [add_account(sessions) for _ in range(3)]
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO tasks (public_id, title, description, assignee_id, created_by,"
            " created_at)"
            " SELECT gen_random_uuid(), 'Task ' || n || ' ' || md5(n::text),"
            "        'About ' || md5((n * 7)::text), CAST(:assignee AS uuid),"
            "        CAST(lpad(to_hex(n % 300), 32, '0') AS uuid), now()"
            " FROM generate_series(1, 20000) AS n"), {"assignee": workers[0]})
        connection.execute(text("ANALYZE accounts, tasks"))
    return workers


def search_query(q: str, **conditions):
    where = queries.TaskFilter(q=q, **conditions).validated()
    return where.apply(select(Task)).order_by(Task.id.desc()).limit(21)


@pytest.mark.usefixtures("many_tasks")
def test_a_search_reads_the_trigram_index(engine):
    rare = queries.TaskFilter(q="e4da3b7f").validated()  # md5('5'), in one title
    plan = plan_of(engine, rare.apply(select(Task.id)))
    assert "ix_tasks_search" in plan, plan
    assert "Seq Scan" not in plan, plan
    page = plan_of(engine, search_query("e4da3b7f"))
    assert "ix_tasks_search" in page, page


@pytest.mark.usefixtures("many_tasks")
def test_filters_by_creator_and_assignee_name_read_indexes(engine, sessions):
    creator = uuid.UUID(int=17)
    plan = plan_of(engine, queries.TaskFilter(creator=creator).apply(select(Task.id)))
    assert "ix_tasks_created_by_id" in plan and "Seq Scan" not in plan, plan
    by_name = plan_of(engine, search_query("zzz", assignee_name="Popug w"))
    assert "Seq Scan on tasks" not in by_name, by_name


@pytest.mark.usefixtures("many_tasks")
def test_a_page_sorted_by_title_reads_the_title_index(engine, sessions):
    page = select(Task).order_by(Task.title, Task.id).limit(21)
    plan = plan_of(engine, page)
    assert "ix_tasks_title_id" in plan and "Seq Scan" not in plan, plan
