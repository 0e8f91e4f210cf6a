"""End of day on a schedule: APScheduler with its jobs stored in the accounting database.

The job runs shortly after midnight in ``ATES_TIMEZONE`` (``close_time``) and closes
every day that has ended and is still open. Runs missed while no scheduler was up are
coalesced into one and run as soon as a scheduler starts (no misfire limit); on start the
scheduler also closes the missed days itself. Several replicas may each run the job:
closing is serialised and idempotent (``AccountingService.close_day``), so a day closes once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine

from accounting.ledger_sql import Books
from accounting.service import AccountingService
from platform_kit.db import make_session_factory

log = structlog.get_logger("accounting.scheduler")

CLOSE_JOB_ID = "close-billing-days"
JOBS_TABLE = "scheduled_jobs"

# What the stored job calls: set by the scheduler running in this process. A stored job
# can only name an importable function, and its arguments are pickled into the database.
_close_due_days: Callable[[], object] | None = None


def run_close_due_days() -> None:
    if _close_due_days is None:
        raise RuntimeError("no accounting scheduler is running in this process")
    _close_due_days()


def close_trigger(books: Books) -> CronTrigger:
    at = books.settings.close_time
    return CronTrigger(
        hour=at.hour, minute=at.minute, second=at.second, timezone=books.settings.timezone
    )


class DayCloser:
    """A running APScheduler that closes the billing days."""

    def __init__(self, engine: Engine, books: Books):
        self.books = books
        self.service = AccountingService(make_session_factory(engine), books)
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)},
            timezone=books.settings.timezone,
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
        )

    def close_due_days(self) -> None:
        for closed in self.service.close_due_days():
            log.info(
                "billing day closed",
                day=closed.day.isoformat(),
                accounts_paid=closed.accounts_paid,
                total_paid=closed.total_paid,
            )

    def start(self) -> None:
        """Start scheduling; missed days are closed (and missed runs run) right away."""
        global _close_due_days
        _close_due_days = self.close_due_days
        self.scheduler.start(paused=True)
        self._schedule()
        try:
            self.close_due_days()
        except Exception:
            log.exception("catching up missed billing days failed; the job will retry")
        self.scheduler.resume()

    def _schedule(self) -> None:
        """Add the job unless it is stored already: re-adding it would forget a missed run."""
        trigger = close_trigger(self.books)
        job = self.scheduler.get_job(CLOSE_JOB_ID)
        if job is None:
            self.scheduler.add_job(
                "accounting.scheduler:run_close_due_days",
                trigger=trigger,
                id=CLOSE_JOB_ID,
                name="close billing days",
                replace_existing=True,
            )
        elif str(job.trigger) != str(trigger):
            self.scheduler.reschedule_job(CLOSE_JOB_ID, trigger=trigger)

    def stop(self) -> None:
        global _close_due_days
        self.scheduler.shutdown(wait=True)
        if _close_due_days == self.close_due_days:
            _close_due_days = None


def run_scheduler(engine: Engine, books: Books, stop: threading.Event) -> None:
    closer = DayCloser(engine, books)
    closer.start()
    log.info("scheduler started", close_time=books.settings.close_time.isoformat())
    try:
        stop.wait()
    finally:
        closer.stop()
        log.info("scheduler stopped")
