"""The commands of the accounting service, with their collaborators handed in.

``LedgerCommands`` applies consumed events (task prices, fees, rewards, the task and
account replicas); each command runs in the caller's session, inside the transaction that
also records the handled events in the inbox. ``AccountingService`` runs the commands that
open their own transactions: closing days and correcting the ledger. Both write through
``Books`` (settings, outbox, event builder, the random source that prices tasks and the
clock that dates transactions); the SQL they run lives in ``accounting.ledger_sql``,
``accounting.closing`` and ``accounting.corrections``. Reads are ``accounting.queries``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Unpack

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from accounting import domain, metrics
from accounting.closing import ClosedDay, close_next_day, closing_target, last_ended_day
from accounting.corrections import (
    Corrected,
    CorrectionRequested,
    book_correction,
    check_key,
    earlier_request,
)
from accounting.domain import ADJUSTMENT, FEE, REVERSAL, REWARD, TaskDescription, TaskFacts
from accounting.ledger_sql import (
    Booked,
    Books,
    TaskCharge,
    book_task_charges,
    ensure_priced,
    last_closed_day,
    lock_chain,
    lock_day_for_recording,
)
from accounting.models import Account, Balance, CorrectionRequest
from auth_client import replica
from platform_kit.db import array_literal

Sessions = sessionmaker[Session]

_UPSERT_TASK_STATES = text(
    """
    INSERT INTO tasks AS k (public_id, title, jira_id, description, assignee_id, status, version)
    SELECT * FROM unnest(
        CAST(:ids AS uuid[]), CAST(:titles AS text[]), CAST(:jira_ids AS text[]),
        CAST(:descriptions AS text[]), CAST(:assignees AS uuid[]), CAST(:statuses AS text[]),
        CAST(:versions AS int[])
    )
    ON CONFLICT (public_id) DO UPDATE
    SET title = excluded.title, jira_id = excluded.jira_id,
        description = excluded.description, assignee_id = excluded.assignee_id,
        status = excluded.status, version = excluded.version, updated_at = now()
    WHERE k.version < excluded.version
    """
)

_UPSERT_TASK_DESCRIPTIONS = text(
    """
    INSERT INTO tasks AS k (public_id, title, jira_id, description)
    SELECT * FROM unnest(
        CAST(:ids AS uuid[]), CAST(:titles AS text[]), CAST(:jira_ids AS text[]),
        CAST(:descriptions AS text[])
    )
    ON CONFLICT (public_id) DO UPDATE
    SET title = excluded.title, jira_id = excluded.jira_id, description = excluded.description
    WHERE k.version = 0
    """
)

_OPEN_BALANCES = text(
    "INSERT INTO balances (account_id) SELECT DISTINCT unnest(CAST(:ids AS uuid[])) ORDER BY 1"
    " ON CONFLICT DO NOTHING"
)


def _open_balance(session: Session, account_id: uuid.UUID) -> None:
    """Every known account is listed with its balance, zero until something is booked."""
    session.execute(insert(Balance).values(account_id=account_id).on_conflict_do_nothing())


class LedgerCommands:
    """What the events accounting consumes do to the ledger and the replicas, each in the
    caller's session. The account replica needs no collaborator: its commands are static."""

    def __init__(self, books: Books) -> None:
        self.books = books

    # -- task events ------------------------------------------------------------------

    def apply_task_assigned(
        self, session: Session, assignments: Sequence[TaskCharge], report: bool = True
    ) -> list[Booked]:
        """``task.assigned``: debit each assignee the task's fee (pricing new tasks
        first); returns the transactions booked if asked to ``report`` them."""
        return book_task_charges(session, self.books, FEE, assignments, report)

    def apply_task_completed(
        self, session: Session, completions: Sequence[TaskCharge], report: bool = True
    ) -> list[Booked]:
        """``task.completed``: credit each assignee the task's reward; returns the
        transactions booked if asked to ``report`` them."""
        return book_task_charges(session, self.books, REWARD, completions, report)

    def apply_task_states(
        self,
        session: Session,
        states: Sequence[TaskFacts],
        traceparents: Mapping[uuid.UUID, str | None] | None = None,
    ) -> None:
        """``task.created``/``task.updated`` (either version): keep the newest state of
        each task and price the tasks seen for the first time (``traceparents``: the trace
        context of the event each task's state came with)."""
        newest = domain.newest_per_task(states)
        if not newest:
            return
        session.execute(
            _UPSERT_TASK_STATES,
            {
                "ids": array_literal(s.task_id for s in newest),
                "titles": array_literal(s.title for s in newest),
                "jira_ids": array_literal(s.jira_id for s in newest),
                "descriptions": array_literal(s.description for s in newest),
                "assignees": array_literal(s.assignee_id for s in newest),
                "statuses": array_literal(s.status for s in newest),
                "versions": array_literal(s.version for s in newest),
            },
        )
        traceparents = traceparents or {}
        tasks = {state.task_id: traceparents.get(state.task_id) for state in newest}
        ensure_priced(session, self.books, tasks, self.books.clock())

    def apply_tasks_added(
        self,
        session: Session,
        added: Sequence[TaskDescription],
        traceparents: Mapping[uuid.UUID, str | None] | None = None,
    ) -> None:
        """``task.added``: what each task is about, kept until a CUD event brings its
        state; tasks seen for the first time are priced."""
        latest = {task.task_id: task for task in added}  # one row per task in one statement
        if not latest:
            return
        session.execute(
            _UPSERT_TASK_DESCRIPTIONS,
            {
                "ids": array_literal(latest),
                "titles": array_literal(t.title for t in latest.values()),
                "jira_ids": array_literal(t.jira_id for t in latest.values()),
                "descriptions": array_literal(t.description for t in latest.values()),
            },
        )
        traceparents = traceparents or {}
        tasks = {i: traceparents.get(i) for i in latest}
        ensure_priced(session, self.books, tasks, self.books.clock())

    # -- accounts replica -------------------------------------------------------------

    @staticmethod
    def apply_account_state(
        session: Session, account_id: uuid.UUID, **state: Unpack[replica.AccountState]
    ) -> None:
        """``account.created``/``account.updated`` (see :func:`auth_client.replica.apply_state`)."""
        replica.apply_state(session, Account, account_id, state)
        _open_balance(session, account_id)

    @staticmethod
    def apply_account_states(
        session: Session, states: Iterable[tuple[uuid.UUID | str, replica.AccountState]]
    ) -> None:
        """A run of ``account.created``/``account.updated`` events at once."""
        states = list(states)
        replica.apply_states(session, Account, states)
        session.execute(_OPEN_BALANCES, {"ids": array_literal(a for a, _ in states)})

    @staticmethod
    def apply_role_change(
        session: Session, account_id: uuid.UUID, role: str, version: int
    ) -> None:
        """``account.role_changed``: take the role unless a newer one is already known."""
        replica.apply_role_change(session, Account, account_id, role, version)
        _open_balance(session, account_id)

    @staticmethod
    def apply_account_deleted(session: Session, account_id: uuid.UUID, version: int) -> None:
        """``account.deleted``: a tombstone, and inactive as in auth; its ledger stays."""
        replica.apply_deleted(session, Account, account_id, version, deactivate=True)


class AccountingService:
    """Closing billing days and correcting the ledger, each in transactions of its own
    drawn from ``sessions``; ``books.clock`` dates what they book."""

    def __init__(self, sessions: Sessions, books: Books) -> None:
        self.sessions = sessions
        self.books = books
        self.clock: Callable[[], datetime] = books.clock

    # -- billing days -----------------------------------------------------------------

    def close_day(
        self, day: date | None = None, traceparent: str | None = None,
        on_closed: Callable[[ClosedDay], None] | None = None,
    ) -> list[ClosedDay]:
        """End of day: pay out every positive balance, once per day.

        Without ``day`` the current day ends at once (later transactions belong to the
        next one); asked again the same day, ``DayAlreadyEnded``. A ``day`` after today
        or before the ledger's first day is refused. Open days before ``day`` are closed
        first, in order, each in its own transaction. Returns the days closed by this
        call: none if ``day`` was already closed. ``on_closed`` is told of each day as it
        is closed.
        """
        with self.sessions() as session:
            through = closing_target(session, self.books, day)
        return self._close_through(through, traceparent, on_closed)

    def closing_plan(self, day: date | None = None) -> tuple[date, date | None]:
        """What ``close_day(day)`` would close through, and the last day closed so far
        (None: none yet); raises as ``close_day`` does for a day it refuses."""
        with self.sessions() as session:
            return closing_target(session, self.books, day), last_closed_day(session)

    def close_due_days(self) -> list[ClosedDay]:
        """Close every day that has ended and is still open (what the scheduler runs)."""
        with self.sessions() as session:
            through = last_ended_day(session, self.books)
        return [] if through is None else self._close_through(through, None)

    def _close_through(
        self, through: date, traceparent: str | None,
        on_closed: Callable[[ClosedDay], None] | None = None,
    ) -> list[ClosedDay]:
        closed: list[ClosedDay] = []
        while True:
            with self.sessions() as session, session.begin():
                next_closed = close_next_day(session, self.books, through, traceparent)
            if next_closed is None:
                break
            closed.append(next_closed)
            metrics.count_payouts([next_closed])
            if on_closed is not None:
                on_closed(next_closed)
        return closed

    # -- corrections (see ``accounting.corrections``) ---------------------------------

    def reverse(self, transaction_id: uuid.UUID, reason: str, by: str,
                key: str | None = None, traceparent: str | None = None) -> Corrected:
        """Reverse a fee or a reward: the same amount the other way, on the same account."""
        asked = CorrectionRequested(REVERSAL, transaction_id, domain.check_reason(reason))
        return self._correct(asked, by, check_key(key), traceparent)

    def adjust(self, account_id: uuid.UUID, amount: int, reason: str, by: str,
               key: str | None = None, traceparent: str | None = None) -> Corrected:
        """Move an account's balance by ``amount`` (signed cents as seen from the account)."""
        asked = CorrectionRequested(ADJUSTMENT, account_id, domain.check_reason(reason),
                                    domain.check_adjustment(amount))
        return self._correct(asked, by, check_key(key), traceparent)

    def _correct(self, asked: CorrectionRequested, by: str, key: str | None,
                 traceparent: str | None) -> Corrected:
        with self.sessions() as session, session.begin():
            lock_day_for_recording(session)
            lock_chain(session)
            if key is not None:
                earlier = earlier_request(session, by, key, asked)
                if earlier is not None:
                    return Corrected(earlier, replayed=True)
            booked_id, public_id = book_correction(session, self.books, asked, by, traceparent)
            if key is not None:
                session.add(CorrectionRequest(
                    caller=by, key=key, fingerprint=asked.fingerprint(),
                    transaction_id=booked_id, created_at=self.clock()))
        return Corrected(public_id, replayed=False)
