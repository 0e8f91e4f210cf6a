"""Reading tasks: one task, and pages of tasks filtered by assignee and status."""

from __future__ import annotations

import random
import uuid

import pytest

from platform_kit.cursor import InvalidCursor, encode_id
from tasks import domain, queries
from tasks.queries import TaskQueries
from tests.tasks.conftest import actor, commands


@pytest.fixture
def board(sessions, tasks_settings, team):
    """Seven tasks, oldest first; the first worker completes the ones assigned to them."""
    creator = actor(team.manager, "manager")
    tasks = [
        commands(sessions, tasks_settings, random.Random(n)).create_task(creator, f"Task {n}")
        for n in range(7)
    ]
    done = [
        commands(sessions, tasks_settings).complete_task(actor(t.assignee_id), t.id)
        for t in tasks
        if t.assignee_id == team.workers[0]
    ]
    return tasks, {t.id for t in done}


def all_pages(sessions, **filters) -> list[list[uuid.UUID]]:
    pages, cursor = [], None
    while True:
        items, cursor = TaskQueries(sessions).list_tasks(cursor=cursor, limit=3, **filters)
        pages.append([t.id for t in items])
        if cursor is None:
            return pages


def test_pages_list_every_task_newest_first(sessions, board):
    tasks, _ = board
    newest_first = [t.id for t in reversed(tasks)]
    assert all_pages(sessions) == [newest_first[:3], newest_first[3:6], newest_first[6:]]


def test_an_exactly_full_last_page_has_no_next_cursor(sessions, board):
    items, cursor = TaskQueries(sessions).list_tasks(limit=7)
    assert len(items) == 7 and cursor is None


def test_filter_by_assignee_and_status(sessions, board, team):
    tasks, done = board
    mine = [t.id for t in reversed(tasks) if t.assignee_id == team.workers[0]]
    assert done == set(mine)
    assert sum(all_pages(sessions, assignee=team.workers[0]), []) == mine
    assert sum(all_pages(sessions, assignee=team.workers[0], status="open"), []) == []
    open_ids = [t.id for t in reversed(tasks) if t.id not in done]
    assert sum(all_pages(sessions, status="open"), []) == open_ids
    assert sum(all_pages(sessions, status="done"), []) == mine
    assert all_pages(sessions, assignee=team.manager) == [[]]


def test_the_cursor_is_opaque_and_checked(sessions, board):
    page, cursor = TaskQueries(sessions).list_tasks(limit=2)
    assert cursor is not None and str(page[-1].id) not in cursor
    for bad in ("not a cursor!", "AAAA", encode_id(uuid.uuid4())):
        with pytest.raises(InvalidCursor, match="invalid cursor"):
            TaskQueries(sessions).list_tasks(cursor=bad)


@pytest.mark.parametrize("limit", [0, queries.MAX_PAGE_SIZE + 1])
def test_page_size_is_bounded(sessions, limit):
    with pytest.raises(domain.ValidationError, match="limit must be between"):
        TaskQueries(sessions).list_tasks(limit=limit)


def test_unknown_status_filter_is_refused(sessions):
    with pytest.raises(domain.ValidationError, match="status must be one of"):
        TaskQueries(sessions).list_tasks(status="closed")
