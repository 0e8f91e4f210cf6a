"""The end-of-day scheduler: a persistent job after midnight, missed days caught up."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from accounting.scheduler import CLOSE_JOB_ID, JOBS_TABLE, DayCloser
from accounting.service import LedgerCommands
from tests.accounting.conftest import DAY, add_account, charge, count, moment, new_id


def book_a_reward(sessions, books, account) -> None:
    with sessions() as session, session.begin():
        LedgerCommands(books).apply_task_completed(session, [charge(new_id(), account)])


def test_starting_closes_missed_days_and_stores_the_nightly_job(sessions, engine, books, clock):
    clock.set(moment(DAY))
    book_a_reward(sessions, books, add_account(sessions))
    clock.advance(days=1)

    closer = DayCloser(engine, books)
    closer.start()
    try:
        job = closer.scheduler.get_job(CLOSE_JOB_ID)
        next_run = job.next_run_time.astimezone(ZoneInfo("UTC"))
    finally:
        closer.stop()

    assert count(engine, "billing_days", f"day = '{DAY.isoformat()}'") == 1
    assert count(engine, "payouts") == 1
    assert (next_run.hour, next_run.minute) == (0, 1)
    assert next_run - datetime.now(ZoneInfo("UTC")) <= timedelta(days=1)
    assert count(engine, JOBS_TABLE) == 1
    assert job.coalesce and job.misfire_grace_time is None


def test_a_run_missed_while_no_scheduler_was_up_runs_on_start(sessions, engine, books, clock):
    clock.set(moment(DAY))
    first = DayCloser(engine, books)
    first.start()
    first.stop()
    _pretend_the_job_was_due_a_day_ago(engine)
    book_a_reward(sessions, books, add_account(sessions))
    clock.advance(days=1)

    ran = threading.Event()
    closer = DayCloser(engine, books)
    closer.scheduler.add_listener(
        lambda event: ran.set() if event.job_id == CLOSE_JOB_ID else None,
        EVENT_JOB_EXECUTED | EVENT_JOB_ERROR,
    )
    closer.start()
    try:
        assert ran.wait(10)
        next_run = closer.scheduler.get_job(CLOSE_JOB_ID).next_run_time
    finally:
        closer.stop()
    assert next_run > datetime.now(ZoneInfo("UTC"))
    assert count(engine, "billing_days", f"day = '{DAY.isoformat()}'") == 1
    assert count(engine, "payouts") == 1


def _pretend_the_job_was_due_a_day_ago(engine) -> None:
    """Move the stored job's next run into the past, as if the service had been down."""
    store = SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)
    store.start(BackgroundScheduler(), "default")
    job = store.lookup_job(CLOSE_JOB_ID)
    job.next_run_time = datetime.now(ZoneInfo("UTC")) - timedelta(days=1)
    store.update_job(job)
