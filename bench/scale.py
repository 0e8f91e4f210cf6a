"""Every interactive request at 1,000 / 100,000 / 1,000,000 users, side by side.

    python -m bench.scale --users 1000,100000,1000000
    (without --users: ATES_BENCH_SCALE_USERS, else 1,000 / 100,000 / 1,000,000)

For each size, its own platform: starts it as ``make up`` does (``deploy.stack``:
embedded PostgreSQL, Tansu broker, SMTP sink, migrations, demo accounts, each service in
its own process) on free ports in a temporary folder. Between the migrations and the start
of the services it seeds, with ``COPY`` into the tables the services use
(``bench.scale_seed``): the users, a task per user (half of them done) and about ten
ledger transactions per user over 30 days, all but today closed with their payouts. Then
a sample goes through the real event path: ``SAMPLE_ACCOUNTS`` accounts and their
``account.created`` events in auth's outbox, and ``SAMPLE_TASKS`` tasks for some of them
with their events in the tasks outbox; the relays publish them, the consumers apply them,
and the bench waits until every outbox is sent and every consumer group has caught up.

Once every size's platform is up (they run side by side), a separate client process
(async httpx, one request at a time, after one untimed warm-up each) sends each size in
turn the same request, so that whatever else the machine does meanwhile weighs on every
size alike: ``ATES_BENCH_SCALE_REQUESTS`` requests (default 100) of every
interactive endpoint: create a task, complete one, my open tasks, all tasks (first page
and a page from the middle), one task, my account, an audit-log page, management earnings
of a day and of the month, a page of balances, analytics summary / most expensive task /
days, and sign-in (code + PKCE, fewer: each costs an argon2id hash). Then, size by size,
once each: reshuffle of every open task and close-day (both over the API), and ``ates
analytics rebuild`` as a subprocess. The peak resident memory of every service process is
sampled from the start of the measurements to the end of the rebuild.

Printed per figure: the value at the smallest size, at the largest, their ratio (the
growth) and the aim: an interactive p50 at most twice as long; reshuffle and close-day
linear in the rows they write (time per row, growth about 1); peak memory bounded. The
rebuild replays the topics, which hold the sample's and the measured requests' events but
not the seeded history, so its figure is per message read.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import multiprocessing
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from bench import platform_load, scale_seed
from bench.common import Result, format_table
from bench.platform import MemoryWatch, group_lag, percentile, unsent_outbox_rows
from bench.scale_seed import ACCOUNT, TASK, Plan, derived_id
from deploy.embedded import free_ports
from deploy.serve import available_services
from deploy.stack import Stack, StackConfig
from platform_kit.settings import Settings

DEFAULT_USERS = (1_000, 100_000, 1_000_000)
ADMIN_PASSWORD = "scale-bench-admin-password"
SAMPLE_ACCOUNTS = 1_000
SAMPLE_TASKS = 300
PROBE_WORKERS = 20
SIGN_INS = 20
SERVICES = ("auth", "tasks", "accounting", "analytics")
DRAIN_TIMEOUT_SECONDS = 3_600.0
# A reshuffle and a close at a million users leave a few million events to absorb.
ABSORB_TIMEOUT_SECONDS = 3 * 3_600.0
REBUILD_TIMEOUT_SECONDS = 3 * 3_600.0
SLOW = httpx.Timeout(3_600.0)

ENDPOINTS = (
    "create task", "complete task", "my open tasks", "all tasks, first page",
    "all tasks, deep page", "task page", "my account", "audit-log page",
    "management day", "management days", "balances page", "analytics summary",
    "analytics most expensive", "analytics days", "sign-in",
)


def sizes_from(raw: str | None) -> list[int]:
    raw = raw if raw is not None else os.environ.get("ATES_BENCH_SCALE_USERS", "")
    if not raw.strip():
        return list(DEFAULT_USERS)
    return sorted({int(part.replace("_", "")) for part in raw.split(",") if part.strip()})


def run(users: list[int] | None = None) -> list[Result]:
    sizes = users or sizes_from(None)
    client = concurrent.futures.ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn"))
    platforms: list[SeededPlatform] = []
    try:
        for size in sizes:
            platforms.append(SeededPlatform(size))
            platforms[-1].start()
        # Every size answers the same requests in turn, so that whatever else the machine
        # is doing meanwhile weighs on each size alike.
        print(f"scale: measuring the endpoints at {', '.join(f'{s:,}' for s in sizes)} "
              "users, interleaved ...", flush=True)
        for platform in platforms:
            platform.memory.reset()
        endpoint_figures = client.submit(measure_endpoints,
                                         [p.spec for p in platforms]).result()
        measured = []
        for platform, figures in zip(platforms, endpoint_figures, strict=True):
            measured.append((platform.users, platform.measure_batch(client) | figures))
            print(describe(platform.users, measured[-1][1]), flush=True)
    finally:
        client.shutdown(wait=True, cancel_futures=True)
        for platform in platforms:
            platform.stop()
    print(aims_table(measured), flush=True)
    return results(measured)


# -- one size ---------------------------------------------------------------------------------


class ScaleStack(Stack):
    """The platform of ``make up``, seeded in bulk before its services start."""

    def __init__(self, config: StackConfig, env: dict[str, str], users: int):
        super().__init__(config, env)
        self.users = users
        self.plan: Plan | None = None
        self.seeded: scale_seed.Seeded | None = None
        self.seed_seconds = 0.0
        self.sample: Sample | None = None

    def _seed(self, settings: Settings) -> list[dict]:
        logins = super()._seed(settings)
        now = datetime.now(UTC)
        today = now.astimezone(ZoneInfo(settings.timezone)).date()
        self.plan = Plan.for_users(self.users, today, settings.timezone, now=now)
        urls = {s: settings.database_for(s) for s in SERVICES}
        started = time.perf_counter()
        self.seeded = scale_seed.seed(urls, self.plan)
        self.seed_seconds = time.perf_counter() - started
        self.sample = write_sample(settings, self.plan)
        return logins


@dataclass(frozen=True)
class Sample:
    """What went through the event path: accounts (the first ``PROBE_WORKERS`` of them
    given the sample's tasks), by email."""

    emails: list[str]
    probe_emails: list[str]


def write_sample(settings: Settings, plan: Plan) -> Sample:
    """Accounts in auth with their ``account.created`` events, and tasks for the first of
    them with their events, all in the outboxes (as the services' own commands write)."""
    from sqlalchemy import insert

    from auth.models import Account as AuthAccount
    from event_schemas import default_registry
    from messaging.outbox import Outbox
    from platform_kit.db import make_engine, make_session_factory
    from tasks.events import TaskEvents, TaskState
    from tasks.models import Task
    from tasks.settings import DEFAULT_TASK_EVENT_VERSION

    count = min(SAMPLE_ACCOUNTS, max(PROBE_WORKERS, plan.users // 10))
    registry, outbox = default_registry(), Outbox(settings)
    hashed = scale_seed.password_hash()
    accounts = [{"public_id": uuid.uuid4(), "email": f"scale-sample-{n}@popug.inc",
                 "full_name": f"Sample Popug {n}", "role": "worker", "active": True,
                 "password_hash": hashed, "version": 1} for n in range(count)]
    engine = make_engine(settings.database_for("auth"), pool_size=1)
    with make_session_factory(engine)() as session, session.begin():
        session.execute(insert(AuthAccount), accounts)
        outbox.publish_many(session, [registry.build("account.created", {
            "account_id": str(a["public_id"]), "email": a["email"],
            "full_name": a["full_name"], "role": a["role"], "active": True, "version": 1,
        }, source="auth") for a in accounts])
    engine.dispose()
    probes = accounts[:PROBE_WORKERS]
    events = TaskEvents(DEFAULT_TASK_EVENT_VERSION, None)
    creator = derived_id(ACCOUNT, 1)
    now = datetime.now(UTC)
    tasks = [{"public_id": uuid.uuid4(), "title": f"Sample task {n}", "jira_id": f"SAMPLE-{n}",
              "description": None, "status": "open",
              "assignee_id": probes[n % len(probes)]["public_id"], "created_by": creator,
              "created_at": now, "completed_at": None, "version": 1}
             for n in range(SAMPLE_TASKS)]
    engine = make_engine(settings.database_for("tasks"), pool_size=1)
    with make_session_factory(engine)() as session, session.begin():
        session.execute(insert(Task), tasks)
        outbox.publish_many(session, [
            event for row in tasks for event in events.on_creation(
                TaskState(**{k: row[k] for k in TaskState.__dataclass_fields__}), creator)])
    engine.dispose()
    return Sample([a["email"] for a in accounts], [a["email"] for a in probes])


def wait_drained(settings: Settings, timeout: float = DRAIN_TIMEOUT_SECONDS) -> float:
    """Seconds until every outbox is sent and every consumer group has read to the end."""
    from accounting.consumers import CONSUMED_TOPICS as ACCOUNTING_TOPICS
    from accounting.consumers import CONSUMER_NAME as ACCOUNTING
    from analytics.consumers import CONSUMED_TOPICS as ANALYTICS_TOPICS
    from analytics.stream import live_group_id
    from tasks.consumers import CONSUMED_TOPICS as TASKS_TOPICS
    from tasks.consumers import CONSUMER_NAME as TASKS

    s = settings
    groups = [
        (s.topic_prefix + ACCOUNTING, [s.topic(t) for t in ACCOUNTING_TOPICS]),
        (live_group_id(s), [s.topic(t) for t in ANALYTICS_TOPICS]),
        (s.topic_prefix + TASKS, [s.topic(t) for t in TASKS_TOPICS]),
    ]
    started = time.monotonic()
    while True:
        unsent = sum(unsent_outbox_rows(s.database_for(svc)) for svc in SERVICES)
        behind = 0 if unsent else sum(group_lag(s.kafka_bootstrap, g, t) for g, t in groups)
        if unsent == 0 and behind == 0:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"not drained: {unsent} unsent, {behind} behind")
        time.sleep(0.5)


def wait_sample_applied(settings: Settings, sample: Sample) -> None:
    """Until the tasks and accounting replicas know every sampled account."""
    import psycopg

    from bench.scale_seed import dsn

    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    for service in ("tasks", "accounting"):
        with psycopg.connect(dsn(settings.database_for(service)), autocommit=True) as conn:
            while conn.execute("SELECT count(*) FROM accounts WHERE email LIKE 'scale-sample-%'"
                               ).fetchone()[0] < len(sample.emails):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{service} did not learn of the sampled accounts")
                time.sleep(0.5)


class SeededPlatform:
    """One size: the seeded stack, its sample applied, and the memory of its processes."""

    def __init__(self, users: int):
        self.users = users
        self.var_dir = Path(tempfile.mkdtemp(prefix="ates-bench-scale-"))
        self.var_dir.chmod(0o755)
        env = {k: v for k, v in os.environ.items()
               if k not in ("ATES_DATABASE_URL", "ATES_KAFKA_BOOTSTRAP", "ATES_SMTP_URL")}
        ports = free_ports(["PG", "KAFKA", "SMTP", "MAIL",
                            *(s.upper() for s in available_services())])
        env |= {f"ATES_{name}_PORT": str(port) for name, port in ports.items()}
        env |= {"ATES_VAR_DIR": str(self.var_dir), "ATES_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "ATES_AUTH_ACCESS_TOKEN_TTL": "7200"}
        self.stack = ScaleStack(StackConfig.from_env(env), env, users)
        self.memory = MemoryWatch()
        self.spec: LoadSpec | None = None
        self.settings: Settings | None = None
        self.sample_seconds = 0.0

    def start(self) -> None:
        stack, users = self.stack, self.users
        print(f"scale: {users:,} users: starting the stack and seeding ...", flush=True)
        stack.start()
        self.settings = Settings.from_env(stack.env)
        plan, seeded = stack.plan, stack.seeded
        print(f"scale: seeded {seeded.users:,} users, {seeded.tasks:,} tasks, "
              f"{seeded.transactions:,} transactions ({seeded.payouts:,} payouts) in "
              f"{stack.seed_seconds:,.1f} s; waiting for the sample's events ...", flush=True)
        self.memory.watch({name: child.pid for name, child in stack.children.items()
                           if name != "mailsink"})
        started = time.monotonic()
        wait_sample_applied(self.settings, stack.sample)
        wait_drained(self.settings)
        self.sample_seconds = time.monotonic() - started
        self.spec = LoadSpec(
            urls={s: stack.config.service_url(s) for s in SERVICES}, users=plan.users,
            tasks=plan.tasks, first_day=plan.first_day.isoformat(),
            today=plan.today.isoformat(), admin=("admin@popug.inc", ADMIN_PASSWORD),
            manager=scale_seed.email_of(1), probes=stack.sample.probe_emails,
            requests=int(os.environ.get("ATES_BENCH_SCALE_REQUESTS", "100")))

    def measure_batch(self, client: concurrent.futures.Executor) -> dict:
        """Reshuffle, close-day and the analytics rebuild, after the endpoints' events."""
        users = self.users
        wait_drained(self.settings)
        print(f"scale: {users:,} users: reshuffle and close-day ...", flush=True)
        figures = client.submit(measure_reshuffle_and_close, self.spec).result()
        try:
            figures["absorbed_seconds"] = wait_drained(self.settings, ABSORB_TIMEOUT_SECONDS)
        except TimeoutError as error:
            print(f"scale: {users:,} users: {error}; rebuilding all the same", flush=True)
            figures["absorbed_seconds"] = float("nan")
        print(f"scale: {users:,} users: analytics rebuild ...", flush=True)
        figures |= measure_rebuild(self.stack.env)
        figures["peak_rss"] = self.memory.peaks()
        figures["seed_seconds"] = self.stack.seed_seconds
        figures["sample_seconds"] = self.sample_seconds
        figures["seeded"] = self.stack.seeded
        figures["seeder_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return figures

    def stop(self) -> None:
        self.memory.stop()
        self.stack.stop()
        shutil.rmtree(self.var_dir, ignore_errors=True)


def measure_rebuild(env: dict[str, str]) -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "deploy.cli", "analytics", "rebuild", "--yes",
                           "--timeout", str(REBUILD_TIMEOUT_SECONDS)],
                          env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        print(f"scale: analytics rebuild failed: {done.stderr[-2000:]}", flush=True)
        return {"rebuild_seconds": float("nan"), "rebuild_messages": 0}
    found = re.search(r"from (\d+) message", done.stdout)
    return {"rebuild_seconds": seconds, "rebuild_messages": int(found.group(1)) if found else 0}


# -- the client process -----------------------------------------------------------------------


@dataclass(frozen=True)
class LoadSpec:
    urls: dict[str, str]
    users: int
    tasks: int
    first_day: str
    today: str
    admin: tuple[str, str]
    manager: str
    probes: list[str]
    requests: int


def measure_endpoints(specs: list[LoadSpec]) -> list[dict]:
    """Latencies of every endpoint at each size, the sizes taking turns request by
    request."""
    return asyncio.run(_endpoints(specs))


def measure_reshuffle_and_close(spec: LoadSpec) -> dict:
    return asyncio.run(_batch(spec))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _endpoints(specs: list[LoadSpec]) -> list[dict]:
    async with httpx.AsyncClient(timeout=SLOW) as http:
        sizes = [await _Size.prepare(spec, http) for spec in specs]
        for turn in range(SIGN_INS):
            for size in sizes:
                await size.sign_in(turn)
        for name in ENDPOINTS[:-1]:
            count = min([size.count(name) for size in sizes])
            for size in sizes:
                await size.warm_up(name, count)
            for i in range(count):
                for size in sizes:
                    await size.stats.call(name, lambda i=i, size=size, name=name:
                                          size.requests[name](i))
    return [{"latencies": dict(size.stats.latencies),
             "statuses": {k: dict(v) for k, v in size.stats.statuses.items()}}
            for size in sizes]


class _Size:
    """The requests of every endpoint at one size, and their latencies."""

    def __init__(self, spec: LoadSpec):
        self.spec = spec
        self.stats = platform_load.Stats()
        self.rng = random.Random(11)
        self.requests: dict = {}
        self.own: list[tuple[dict[str, str], str]] = []

    async def sign_in(self, turn: int) -> None:
        spec = self.spec
        email = (spec.probes[turn] if turn < len(spec.probes)
                 else scale_seed.email_of(_worker(spec, self.rng)))
        started = time.perf_counter()
        await platform_load.sign_in(spec.urls["auth"], email, scale_seed.PASSWORD)
        self.stats.latencies["sign-in"].append(time.perf_counter() - started)
        self.stats.statuses["sign-in"][200] += 1

    def count(self, name: str) -> int:
        if name == "complete task":
            return min(self.spec.requests, len(self.own) - 1)
        return self.spec.requests

    async def warm_up(self, name: str, count: int) -> None:
        if count <= 0:
            return
        warm = await self.requests[name](count if name == "complete task" else 0)
        if warm.status_code >= 400:
            print(f"  {self.spec.users:,} users, {name}: HTTP {warm.status_code} "
                  f"{warm.text[:200]}", flush=True)

    @classmethod
    async def prepare(cls, spec: LoadSpec, http: httpx.AsyncClient) -> _Size:
        size = cls(spec)
        size.requests = await size._requests(http)
        return size

    async def _requests(self, http: httpx.AsyncClient) -> dict:
        from platform_kit.cursor import encode_id as balance_cursor
        from platform_kit.cursor import encode_id as task_cursor

        spec, rng, urls = self.spec, self.rng, self.spec.urls
        admin = _bearer(await platform_load.sign_in(urls["auth"], *spec.admin))
        manager = _bearer(await platform_load.sign_in(urls["auth"], spec.manager,
                                                      scale_seed.PASSWORD))
        probes = [_bearer(await platform_load.sign_in(urls["auth"], email,
                                                      scale_seed.PASSWORD))
                  for email in spec.probes]
        await _own_tasks(http, f"{urls['tasks']}/api", probes, self.own, rng)
        return _requests_of(spec, rng, http, admin, manager, probes, self.own,
                            balance_cursor, task_cursor)


async def _own_tasks(http: httpx.AsyncClient, tasks: str, probes: list[dict[str, str]],
                     own: list, rng: random.Random) -> None:
    """The sample's tasks, each assigned to one of the probing workers, to complete."""
    for headers in probes:
        page = (await http.get(f"{tasks}/tasks", headers=headers,
                               params={"assignee": "me", "status": "open",
                                       "limit": 100})).json()
        own += [(headers, item["id"]) for item in page["items"]]
    rng.shuffle(own)


def _requests_of(spec: LoadSpec, rng: random.Random, http: httpx.AsyncClient,
                 admin: dict[str, str], manager: dict[str, str], probes: list[dict[str, str]],
                 own: list, balance_cursor, task_cursor) -> dict:
    urls = spec.urls
    tasks, accounting, analytics = (f"{urls[s]}/api" for s in ("tasks", "accounting",
                                                              "analytics"))
    middle = task_cursor(derived_id(TASK, spec.tasks // 2))
    days = (spec.first_day, spec.today)

    def worker() -> dict[str, str]:
        return rng.choice(probes)

    def some_task() -> str:
        return str(derived_id(TASK, rng.randrange(spec.tasks)))

    def some_account() -> str:
        return str(derived_id(ACCOUNT, _worker(spec, rng)))

    def some_day() -> str:
        first = datetime.fromisoformat(days[0]).date()
        return (first + timedelta(days=rng.randrange(30))).isoformat()

    return {
        "create task": lambda i: http.post(f"{tasks}/tasks", headers=manager,
                                           json={"title": f"Scale bench task {i}"}),
        "complete task": lambda i: http.post(
            f"{tasks}/tasks/{own[i][1]}/complete", headers=own[i][0]),
        "my open tasks": lambda i: http.get(f"{tasks}/tasks", headers=worker(),
                                            params={"assignee": "me", "status": "open"}),
        "all tasks, first page": lambda i: http.get(f"{tasks}/tasks", headers=admin),
        "all tasks, deep page": lambda i: http.get(f"{tasks}/tasks", headers=admin,
                                                   params={"cursor": middle}),
        "task page": lambda i: http.get(f"{tasks}/tasks/{some_task()}", headers=admin),
        "my account": lambda i: http.get(f"{accounting}/me/account", headers=worker()),
        "audit-log page": lambda i: http.get(
            f"{accounting}/accounts/{some_account()}/transactions", headers=admin),
        "management day": lambda i: http.get(f"{accounting}/management/earnings",
                                             headers=admin, params={"date": some_day()}),
        "management days": lambda i: http.get(
            f"{accounting}/management/days", headers=admin,
            params={"from": days[0], "to": days[1]}),
        "balances page": lambda i: http.get(
            f"{accounting}/accounts", headers=admin,
            params={"cursor": balance_cursor(uuid.UUID(some_account()))}),
        "analytics summary": lambda i: http.get(f"{analytics}/analytics/summary",
                                                headers=admin),
        "analytics most expensive": lambda i: http.get(
            f"{analytics}/analytics/most-expensive-task", headers=admin,
            params={"period": ("day", "week", "month")[i % 3], "date": some_day()}),
        "analytics days": lambda i: http.get(f"{analytics}/analytics/days", headers=admin,
                                             params={"from": days[0], "to": days[1]}),
    }


def _worker(spec: LoadSpec, rng: random.Random) -> int:
    user = rng.randrange(spec.users)
    while scale_seed.role_of(user) == "manager":
        user = (user + 1) % spec.users
    return user


async def _batch(spec: LoadSpec) -> dict:
    admin = _bearer(await platform_load.sign_in(spec.urls["auth"], *spec.admin))
    async with httpx.AsyncClient(timeout=SLOW) as http:
        started = time.perf_counter()
        reshuffled = await http.post(f"{spec.urls['tasks']}/api/tasks/reshuffle", headers=admin)
        reshuffle_seconds = time.perf_counter() - started
        if reshuffled.status_code != 200:
            raise RuntimeError(f"reshuffle: HTTP {reshuffled.status_code} {reshuffled.text}")
        started = time.perf_counter()
        closed = await http.post(f"{spec.urls['accounting']}/api/billing/close-day",
                                 headers=admin)
        close_seconds = time.perf_counter() - started
        if closed.status_code != 200:
            raise RuntimeError(f"close-day: HTTP {closed.status_code} {closed.text}")
    return {"reshuffle_seconds": reshuffle_seconds,
            "reshuffled": reshuffled.json()["reassigned"],
            "close_seconds": close_seconds,
            "paid": sum(day["accounts_paid"] for day in closed.json()["closed"])}


# -- figures ----------------------------------------------------------------------------------


def _per_row(seconds: float, rows: int) -> float:
    return seconds / rows * 1e6 if rows else float("nan")


def figures_of(f: dict) -> dict[str, tuple[float, str, str]]:
    """Every compared figure of one size: name -> (value, unit, aim)."""
    out: dict[str, tuple[float, str, str]] = {}
    for endpoint in ENDPOINTS:
        values = f["latencies"].get(endpoint, [])
        out[f"{endpoint} p50"] = (percentile(values, 50) * 1e3, "ms", "<= 2.00")
        out[f"{endpoint} p95"] = (percentile(values, 95) * 1e3, "ms", "")
    out["reshuffle per task written"] = (_per_row(f["reshuffle_seconds"], f["reshuffled"]),
                                         "us/row", "~1 (linear)")
    out["close-day per account paid"] = (_per_row(f["close_seconds"], f["paid"]),
                                         "us/row", "~1 (linear)")
    out["analytics rebuild per message"] = (
        _per_row(f["rebuild_seconds"], f["rebuild_messages"]), "us/msg", "~1 (linear)")
    for process, rss in sorted(f["peak_rss"].items()):
        out[f"peak RSS {process}"] = (rss / 2**20, "MiB", "bounded")
    return out


def results(measured: list[tuple[int, dict]]) -> list[Result]:
    (small, first), (large, last) = measured[0], measured[-1]
    before, after = figures_of(first), figures_of(last)
    return [Result("scale", f"{name} ({unit})", value, unit,
                   f"same at {small:,} users (value at {large:,})",
                   before.get(name, (float("nan"),))[0])
            for name, (value, unit, _) in after.items()]


def aims_table(measured: list[tuple[int, dict]]) -> str:
    (small, first), (large, last) = measured[0], measured[-1]
    before, after = figures_of(first), figures_of(last)
    header = (f"{'measure':<36} {'unit':<7} {f'{small:,} users':>14} {f'{large:,} users':>14}"
              f" {'growth':>8}  aim")
    lines = ["", header, "-" * len(header)]
    for name, (value, unit, aim) in after.items():
        base = before.get(name, (float("nan"),))[0]
        growth = value / base if base else float("nan")
        met = ""
        if aim.startswith("<="):
            met = "  met" if growth <= float(aim[2:]) else "  NOT met"
        lines.append(f"{name:<36} {unit:<7} {base:>14,.2f} {value:>14,.2f} {growth:>8.2f}  "
                     f"{aim}{met}")
    for size, f in measured:
        lines.append(f"{size:,} users: reshuffled {f['reshuffled']:,} tasks in "
                     f"{f['reshuffle_seconds']:.2f} s, close-day paid {f['paid']:,} accounts "
                     f"in {f['close_seconds']:.2f} s, rebuild read {f['rebuild_messages']:,} "
                     f"messages in {f['rebuild_seconds']:.2f} s, seeding took "
                     f"{f['seed_seconds']:,.1f} s")
    return "\n".join(lines)


def describe(users: int, f: dict) -> str:
    lines = [f"\n{users:,} users:",
             f"  {'endpoint':<28} {'n':>5} {'p50 ms':>9} {'p95 ms':>9}  statuses"]
    for endpoint in ENDPOINTS:
        values = f["latencies"].get(endpoint, [])
        lines.append(f"  {endpoint:<28} {len(values):>5} {percentile(values, 50) * 1e3:>9.1f} "
                     f"{percentile(values, 95) * 1e3:>9.1f}  "
                     f"{f['statuses'].get(endpoint, {})}")
    lines.append(f"  reshuffle {f['reshuffled']:,} open tasks: {f['reshuffle_seconds']:.2f} s; "
                 f"close-day paying {f['paid']:,} accounts: {f['close_seconds']:.2f} s; "
                 f"absorbed by the consumers in {f['absorbed_seconds']:.1f} s")
    lines.append(f"  analytics rebuild: {f['rebuild_messages']:,} messages in "
                 f"{f['rebuild_seconds']:.2f} s")
    lines.append("  peak RSS: " + ", ".join(f"{p} {rss / 2**20:,.0f} MiB"
                                            for p, rss in sorted(f["peak_rss"].items()))
                 + f"; the bench's own process (the seeding) {f['seeder_rss'] / 2**20:,.0f} MiB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", default=None,
                        help="sizes, comma-separated (e.g. 1000,100000,1000000)")
    args = parser.parse_args(argv)
    # Stopped with SIGTERM, still stop the stack (its children run in their own sessions).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rows = run(sizes_from(args.users))
    print()
    print(format_table(rows))


if __name__ == "__main__":
    main()
