"""The accounting service served over HTTP beside a real auth provider, and its people.

The fixtures serving the app live in ``tests.accounting.served``. Each test starts from an empty
accounting database (the ``engine`` fixture of the package) and books exactly the fees
and rewards it wants, through the same service functions the consumer uses.
"""

from __future__ import annotations

import csv
import io
import uuid

import httpx
from sqlalchemy.orm import Session, sessionmaker

from accounting.domain import TaskDescription
from accounting.ledger_sql import Books
from accounting.service import LedgerCommands
from tests.accounting.conftest import add_account, assign, complete, new_id
from tests.auth.support import Person

OTHER_DASHBOARDS = {
    "ATES_TASKS_URL": "http://127.0.0.1:8001",
    "ATES_ANALYTICS_URL": "http://127.0.0.1:8003",
}
LINE_FIELDS = {
    "id", "type", "amount", "balance_after", "task_id", "task", "created_at", "day",
    "corrects", "reversed_by", "reason", "booked_by",
}


def feed_replica(sessions: sessionmaker[Session], *people: Person) -> None:
    """Tell accounting about these accounts, as auth's ``account.created`` would."""
    with sessions() as session, session.begin():
        for person in people:
            LedgerCommands.apply_account_state(
                session, person.uuid, email=person.login.email, full_name=person.name,
                role=person.login.role, active=True, version=1,
            )


def book_task(sessions: sessionmaker[Session], books: Books, person: Person | uuid.UUID,
              title: str = "Feed the parrots", jira_id: str | None = None,
              description: str | None = None, done: bool = True) -> uuid.UUID:
    """A task assigned to ``person`` (the fee) and, when ``done``, completed (the reward)."""
    account_id = person.uuid if isinstance(person, Person) else person
    task_id = new_id()
    with sessions() as session, session.begin():
        described = TaskDescription(task_id, title, jira_id, description)
        LedgerCommands(books).apply_tasks_added(session, [described])
    assign(sessions, books, task_id, account_id)
    if done:
        complete(sessions, books, task_id, account_id)
    return task_id


def unknown_account(sessions: sessionmaker[Session]) -> uuid.UUID:
    """An account accounting knows nothing about, next to one it knows."""
    add_account(sessions)
    return new_id()


def parse_csv(response: httpx.Response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.text)))
