"""Reading tasks: one task, and pages of tasks filtered by assignee and status."""

from __future__ import annotations

import random
import uuid

import pytest

from tasks import domain, service
from tests.tasks.conftest import actor


@pytest.fixture
def board(sessions, tasks_settings, team):
    """Seven tasks, oldest first; the first worker completes the ones assigned to them."""
    creator = actor(team.manager, "manager")
    tasks = [
        service.create_task(sessions, tasks_settings, creator, f"Task {n}", rng=random.Random(n))
        for n in range(7)
    ]
    done = [
        service.complete_task(sessions, tasks_settings, actor(t.assignee_id), t.id)
        for t in tasks
        if t.assignee_id == team.workers[0]
    ]
    return tasks, {t.id for t in done}


def all_pages(sessions, **filters) -> list[list[uuid.UUID]]:
    pages, cursor = [], None
    while True:
        items, cursor = service.list_tasks(sessions, cursor=cursor, limit=3, **filters)
        pages.append([t.id for t in items])
        if cursor is None:
            return pages


def test_pages_list_every_task_newest_first(sessions, board):
    tasks, _ = board
    newest_first = [t.id for t in reversed(tasks)]
    assert all_pages(sessions) == [newest_first[:3], newest_first[3:6], newest_first[6:]]


def test_an_exactly_full_last_page_has_no_next_cursor(sessions, board):
    items, cursor = service.list_tasks(sessions, limit=7)
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
    page, cursor = service.list_tasks(sessions, limit=2)
    assert cursor is not None and str(page[-1].id) not in cursor
    for bad in ("not a cursor!", "AAAA", service.encode_cursor(uuid.uuid4())):
        with pytest.raises(domain.ValidationError, match="invalid cursor"):
            service.list_tasks(sessions, cursor=bad)


@pytest.mark.parametrize("limit", [0, service.MAX_PAGE_SIZE + 1])
def test_page_size_is_bounded(sessions, limit):
    with pytest.raises(domain.ValidationError, match="limit must be between"):
        service.list_tasks(sessions, limit=limit)


def test_unknown_status_filter_is_refused(sessions):
    with pytest.raises(domain.ValidationError, match="status must be one of"):
        service.list_tasks(sessions, status="closed")
