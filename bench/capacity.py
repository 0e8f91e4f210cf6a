"""Capacity plan: load, storage and processes for 1,000 / 100,000 / 1,000,000 users.

    python -m bench.capacity            # print docs/capacity.md's tables
    python -m bench.capacity --write    # rewrite them in docs/capacity.md
    python -m bench.capacity --check    # fail if docs/capacity.md is out of date

Every figure is arithmetic on two inputs, both stated here: a workload (what a user
does in a day: an assumption, change it to yours) and rates measured by ``make bench``
(docs/performance.md). Nothing else goes in.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "capacity.md"
BEGIN, END = "<!-- capacity:begin -->", "<!-- capacity:end -->"
USERS = (1_000, 100_000, 1_000_000)
DAY_SECONDS = 86_400
HEADROOM = 2  # provision for twice the peak
CATCH_UP_SECONDS = 600  # consumers read a reshuffle's events within ten minutes


@dataclass(frozen=True)
class Workload:
    worker_share: float = 0.9  # the rest: managers, admins, accountants
    tasks_per_worker: float = 3  # created, assigned and completed per worker per day
    reshuffles: float = 2  # per day, company-wide
    open_share: float = 0.5  # share of a day's tasks open when a reshuffle runs
    requests_per_user: float = 40  # API calls and page views per user per day
    working_hours: float = 8  # when nearly all requests arrive
    peak_factor: float = 3  # busiest minute against the working-hours average
    paid_share: float = 0.75  # workers with a positive balance at the close


@dataclass(frozen=True)
class Measured:
    """Rates of the `make bench` run in docs/performance.md (2 shared cores, one process
    of each kind)."""

    web_requests_per_s: float = 92.7  # POST /api/tasks per tasks web process
    pipeline_events_per_s: float = 6_162  # outbox -> relay -> Kafka -> consumer + inbox
    ledger_events_per_s: float = 6_263  # accounting consumer booking task.assigned
    analytics_events_per_s: float = 9_804  # faust projection (bench.analytics, lowest of 3)
    # bench.scale at 1,000,000 users, the slower of two quiet runs: 500,300 open tasks moved
    # in 68.8 s (62.0 in the other), 197,082 accounts paid by a close in 59.2 s (46.3),
    # events and mail rows included
    reshuffle_s_per_100k: float = 13.75  # open tasks moved
    close_s_per_100k: float = 30.03  # a day's close, per 100,000 accounts paid
    ledger_bytes_per_transaction: float = 487  # transaction + 2 entries, with indexes
    outbox_bytes_per_event: float = 745  # payload, headers, indexes
    process_rss_mb: float = 280  # one service process at 100,000 tasks (platform bench peak)


# Events per business fact (SPEC §3; what tasks and accounting publish for each).
EVENTS_PER_CREATED_TASK = 5  # task.created, task.added, task.assigned, task.priced, tx
EVENTS_PER_COMPLETION = 3  # task.updated, task.completed, transaction.applied
EVENTS_PER_MOVED_TASK = 3  # task.assigned, task.updated, transaction.applied
EVENTS_PER_PAYOUT = 2  # transaction.applied, payment.made
# Of those, what each consumer reads per task created and completed.
ACCOUNTING_READS_PER_MOVED_TASK = 2  # task.assigned, task.updated
ACCOUNTING_READS_PER_TASK = 5  # task.created, task.added, task.assigned, task.updated, completed
ANALYTICS_READS_PER_TASK = 6  # task.created, task.updated, task.priced, task.completed, 2 tx


@dataclass(frozen=True)
class Plan:
    users: int
    tasks_per_day: float
    requests_per_s_average: float
    requests_per_s_peak: float
    events_per_day: float
    events_per_s_peak: float
    reshuffle_events: float
    reshuffle_seconds: float
    close_seconds: float
    ledger_gb_per_year: float
    outbox_gb_per_day: float
    web_processes: int
    partitions: int
    accounting_consumers: int
    accounting_catch_up_seconds: float
    analytics_consumers: int
    analytics_read_replica: bool
    memory_gb: float


def plan(users: int, work: Workload = Workload(), rates: Measured = Measured()) -> Plan:
    workers = users * work.worker_share
    tasks = workers * work.tasks_per_worker
    open_at_reshuffle = tasks * work.open_share
    moved = work.reshuffles * open_at_reshuffle
    payouts = workers * work.paid_share
    events = (
        tasks * (EVENTS_PER_CREATED_TASK + EVENTS_PER_COMPLETION)
        + moved * EVENTS_PER_MOVED_TASK
        + payouts * EVENTS_PER_PAYOUT
        + 1
    )
    stored_events = events - payouts * EVENTS_PER_PAYOUT  # a close stores one deferred row
    working_seconds = work.working_hours * 3600
    requests_peak = users * work.requests_per_user / working_seconds * work.peak_factor
    per_task_peak = tasks / working_seconds * work.peak_factor  # tasks/s in the peak minute
    events_peak = per_task_peak * (EVENTS_PER_CREATED_TASK + EVENTS_PER_COMPLETION)
    transactions = tasks + moved + tasks + payouts  # fees, reshuffle fees, rewards, payouts
    web = _processes(requests_peak, rates.web_requests_per_s)
    reshuffle_reads = open_at_reshuffle * ACCOUNTING_READS_PER_MOVED_TASK
    accounting = max(
        _processes(per_task_peak * ACCOUNTING_READS_PER_TASK, rates.ledger_events_per_s),
        math.ceil(reshuffle_reads / CATCH_UP_SECONDS / rates.ledger_events_per_s),
    )
    analytics = _processes(per_task_peak * ANALYTICS_READS_PER_TASK, rates.analytics_events_per_s)
    partitions = max(3, accounting, analytics)
    processes = web + 4 + 6 + accounting + analytics  # 4 web apps at least; 6 other workers
    return Plan(
        users=users,
        tasks_per_day=tasks,
        requests_per_s_average=users * work.requests_per_user / DAY_SECONDS,
        requests_per_s_peak=requests_peak,
        events_per_day=events,
        events_per_s_peak=events_peak,
        reshuffle_events=open_at_reshuffle * EVENTS_PER_MOVED_TASK,
        reshuffle_seconds=open_at_reshuffle / 100_000 * rates.reshuffle_s_per_100k,
        close_seconds=payouts / 100_000 * rates.close_s_per_100k,
        ledger_gb_per_year=transactions * 365 * rates.ledger_bytes_per_transaction / 1e9,
        outbox_gb_per_day=stored_events * rates.outbox_bytes_per_event / 1e9,
        web_processes=web,
        partitions=partitions,
        accounting_consumers=accounting,
        accounting_catch_up_seconds=reshuffle_reads / (accounting * rates.ledger_events_per_s),
        analytics_consumers=analytics,
        analytics_read_replica=analytics > 1,
        memory_gb=processes * rates.process_rss_mb / 1000,
    )


def _processes(load_per_s: float, rate_per_process: float) -> int:
    return max(1, math.ceil(HEADROOM * load_per_s / rate_per_process))


def _number(value: float | bool) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:,.1f}"
    return f"{value:.2f}"


ROWS = (
    ("tasks created and completed per day", "tasks_per_day"),
    ("HTTP requests/s, 24 h average", "requests_per_s_average"),
    ("HTTP requests/s, peak minute", "requests_per_s_peak"),
    ("events per day", "events_per_day"),
    ("events/s, peak minute (without reshuffles and the close)", "events_per_s_peak"),
    ("events of one reshuffle", "reshuffle_events"),
    ("one reshuffle, seconds in the database", "reshuffle_seconds"),
    ("closing a day, seconds", "close_seconds"),
    ("ledger growth per year, GB", "ledger_gb_per_year"),
    ("outbox written per day, GB (pruned after 7 days: x7 kept)", "outbox_gb_per_day"),
    ("web processes, all services together", "web_processes"),
    ("partitions per topic", "partitions"),
    ("accounting consumer processes", "accounting_consumers"),
    ("accounting reading one reshuffle's events, seconds", "accounting_catch_up_seconds"),
    ("analytics projector processes", "analytics_consumers"),
    ("analytics read replica for the dashboard", "analytics_read_replica"),
    ("memory of all service processes, GB", "memory_gb"),
)


def tables(work: Workload = Workload(), rates: Measured = Measured()) -> str:
    plans = [plan(users, work, rates) for users in USERS]
    lines = [
        "| per day / at once | " + " | ".join(f"{p.users:,} users" for p in plans) + " |",
        "|---|" + "---:|" * len(plans),
    ]
    for label, field in ROWS:
        lines.append(
            f"| {label} | " + " | ".join(_number(getattr(p, field)) for p in plans) + " |"
        )
    lines += ["", "Workload assumed:", ""]
    lines += [f"- `{name}` = {value}" for name, value in vars(work).items()]
    lines += ["", "Measured rates used (docs/performance.md):", ""]
    lines += [f"- `{name}` = {value:,}" for name, value in vars(rates).items()]
    return "\n".join(lines)


def _with_tables(document: str, generated: str) -> str:
    before, rest = document.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    return f"{before}{BEGIN}\n{generated}\n{END}{after}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite docs/capacity.md")
    parser.add_argument("--check", action="store_true", help="fail if the doc is stale")
    args = parser.parse_args(argv)
    generated = tables()
    if not (args.write or args.check):
        print(generated)
        return 0
    current = DOC.read_text()
    wanted = _with_tables(current, generated)
    if args.check:
        if current != wanted:
            print("docs/capacity.md is out of date: run python -m bench.capacity --write")
            return 1
        return 0
    DOC.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
