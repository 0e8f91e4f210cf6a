"""The whole platform under many concurrent users, at 1,000 / 10,000 / 100,000 tasks.

    python -m bench.platform          (sizes from ATES_BENCH_PLATFORM_SIZES, e.g. "1000,10000")

Starts the platform as ``make up`` does (``deploy.stack.Stack``: embedded PostgreSQL, Tansu
broker, SMTP sink, migrations, demo accounts, then each service in its own process) on free
ports in a temporary folder, creates ``ATES_BENCH_PLATFORM_WORKERS`` workers and a few
managers through the admin API, and drives it from a separate process with an async
httpx load generator (``bench.platform_load``).

The stack grows through the sizes: each size is the number of tasks the platform holds.
Up to ``ATES_BENCH_PLATFORM_HTTP_TASKS`` tasks of each step are created over HTTP during
the measured phase; the rest of the step is loaded beforehand in bulk, straight into the
tasks database together with the same three events per task in its outbox (the running
relay publishes them and accounting and analytics consume them, exactly as for tasks
created one by one), and the bench waits until every consumer has caught up. At 80-150
tasks/s through ``POST /api/tasks`` on two cores, creating 100,000 tasks over HTTP would
take 12-20 minutes by itself.

Each measured phase: every user signs in (code + PKCE); managers create tasks while
workers list and complete theirs; one in ``PROBE_EVERY`` accepted completions is followed
until its reward is in the worker's audit log (accounting) and until analytics has
projected it; at the end an admin reshuffles every open task, and the bench times how long
accounting and analytics take to absorb that burst.

Raw baselines, measured in the same run on the same servers and the same client:
- a bare FastAPI endpoint doing one INSERT (requests/s and latency, same concurrency);
- a raw confluent-kafka produce -> consume round trip on the same broker (latency);
- the resident memory of that bare FastAPI server process.
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psutil
from confluent_kafka import Consumer, Producer, TopicPartition
from sqlalchemy import func, insert, select, text

from bench import platform_load
from bench.common import Result, format_table
from deploy.embedded import free_port
from deploy.serve import available_services
from deploy.stack import Stack, StackConfig
from messaging.kafka import ensure_topics
from messaging.outbox import Outbox
from platform_kit.db import ensure_database, make_engine, make_session_factory
from platform_kit.migrations import upgrade
from platform_kit.settings import Settings, with_database
from tasks.events import TaskEvents, TaskState
from tasks.models import Account, Task
from tasks.settings import DEFAULT_TASK_EVENT_VERSION

DEFAULT_SIZES = (1_000, 10_000, 100_000)
ADMIN_PASSWORD = "bench-admin-password"
MANAGERS = 4
BULK_BATCH = 2_000
DRAIN_TIMEOUT_SECONDS = 1_800.0
SERVICES = ("auth", "tasks", "accounting", "analytics")
PLOT = Path(__file__).resolve().parent.parent / "docs" / "platform-bench.svg"


def sizes_from_env() -> list[int]:
    raw = os.environ.get("ATES_BENCH_PLATFORM_SIZES", "")
    if not raw.strip():
        return list(DEFAULT_SIZES)
    return sorted(int(part.replace("_", "")) for part in raw.split(",") if part.strip())


def run(sizes: list[int] | None = None) -> list[Result]:
    sizes = sizes or sizes_from_env()
    workers = int(os.environ.get("ATES_BENCH_PLATFORM_WORKERS", "40"))
    http_cap = int(os.environ.get("ATES_BENCH_PLATFORM_HTTP_TASKS", "2000"))
    var_dir = Path(tempfile.mkdtemp(prefix="ates-bench-platform-"))
    var_dir.chmod(0o755)
    env = {k: v for k, v in os.environ.items()
           if k not in ("ATES_DATABASE_URL", "ATES_KAFKA_BOOTSTRAP", "ATES_SMTP_URL")}
    env |= {f"ATES_{name}_PORT": str(free_port()) for name in ("PG", "KAFKA", "SMTP", "MAIL")}
    env |= {f"ATES_{s.upper()}_PORT": str(free_port()) for s in available_services()}
    env |= {"ATES_VAR_DIR": str(var_dir), "ATES_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "ATES_AUTH_ACCESS_TOKEN_TTL": "7200"}
    stack = Stack(StackConfig.from_env(env), env)
    loader = concurrent.futures.ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn"))
    memory = MemoryWatch()
    try:
        print("platform: starting the stack ...", flush=True)
        stack.start()
        memory.watch({s: stack.children[s].pid for s in SERVICES if s in stack.children})
        bench = PlatformBench(stack, loader, memory, workers, http_cap)
        return bench.run(sizes)
    finally:
        memory.stop()
        loader.shutdown(wait=True, cancel_futures=True)
        stack.stop()
        shutil.rmtree(var_dir, ignore_errors=True)


class PlatformBench:
    def __init__(self, stack: Stack, loader, memory: MemoryWatch, workers: int, http_cap: int):
        self.stack = stack
        self.loader = loader
        self.memory = memory
        self.http_cap = http_cap
        self.settings = Settings.from_env(stack.env)
        self.urls = {s: stack.config.service_url(s) for s in SERVICES}
        self.worker_logins = [(f"bench-worker-{n}@popug.inc", f"bench-worker-{n}-pass")
                              for n in range(workers)]
        self.manager_logins = [(f"bench-manager-{n}@popug.inc", f"bench-manager-{n}-pass")
                               for n in range(MANAGERS)]
        # The demo accounts that can be given tasks take part too, so every task has a user.
        self.worker_logins += [(d["email"], d["password"]) for d in stack.logins
                               if d["role"] in ("worker", "accountant") and d["password"]]
        self.admin = ("admin@popug.inc", ADMIN_PASSWORD)
        self.tasks_engine = make_engine(self.settings.database_for("tasks"), pool_size=2)

    def run(self, sizes: list[int]) -> list[Result]:
        self._create_users()
        baseline = self._baselines(clients=len(self.worker_logins) + len(self.manager_logins))
        measured = []
        held = 0
        for size in sizes:
            if size <= held:
                continue
            over_http = min(size - held, self.http_cap)
            bulk = size - held - over_http
            if bulk:
                print(f"platform: loading {bulk:,} tasks in bulk ...", flush=True)
                self._bulk_tasks(bulk)
                self._wait_drained()
            self.memory.reset()
            print(f"platform: {size:,} tasks: {over_http:,} created and "
                  f"{over_http // 2:,} completed over HTTP ...", flush=True)
            phase = self.loader.submit(platform_load.run_phase, platform_load.Phase(
                urls=self.urls, analytics_database=self.settings.database_for("analytics"),
                workers=self.worker_logins, managers=self.manager_logins, admin=self.admin,
                creations=over_http, completions=over_http // 2,
                label=f"{size:,} tasks")).result()
            self._wait_drained()
            phase["reshuffle_absorbed_seconds"] = time.monotonic() - phase["reshuffled_at"]
            phase["peak_rss"] = self.memory.peaks()
            held = size
            measured.append((size, phase))
            print(describe(size, phase, baseline), flush=True)
        write_plot(measured, baseline, PLOT)
        return results(measured, baseline)

    # -- set-up ---------------------------------------------------------------------------

    def _create_users(self) -> None:
        accounts = [{"email": e, "full_name": "Bench Popug", "role": "worker", "password": p}
                    for e, p in self.worker_logins if e.startswith("bench-")]
        accounts += [{"email": e, "full_name": "Bench Manager", "role": "manager", "password": p}
                     for e, p in self.manager_logins]
        print(f"platform: creating {len(accounts)} accounts ...", flush=True)
        self.loader.submit(platform_load.create_accounts, self.urls["auth"], *self.admin,
                           accounts).result()
        deadline = time.monotonic() + 120
        while self._known_bench_accounts() < len(accounts):
            if time.monotonic() > deadline:
                raise TimeoutError("the tasks service did not learn of the new accounts")
            time.sleep(0.2)
        self._wait_drained()

    def _known_bench_accounts(self) -> int:
        with self.tasks_engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(Account)
                               .where(Account.email.like("bench-%")))

    def _bulk_tasks(self, count: int) -> None:
        """``count`` open tasks with their three events each, as ``create_task`` writes them."""
        sessions = make_session_factory(self.tasks_engine)
        outbox = Outbox(self.settings)
        events = TaskEvents(DEFAULT_TASK_EVENT_VERSION, None)
        with self.tasks_engine.connect() as conn:
            assignees = list(conn.scalars(select(Account.public_id)
                                          .where(Account.is_eligible_assignee())))
            creators = list(conn.scalars(select(Account.public_id)
                                         .where(Account.role == "manager")))
        rng = random.Random(7)
        done = 0
        while done < count:
            batch = min(BULK_BATCH, count - done)
            now = datetime.now(UTC)
            rows = [{"public_id": uuid.uuid4(), "title": f"Preen the feathers {done + n}",
                     "jira_id": f"BULK-{done + n}", "description": None, "status": "open",
                     "assignee_id": rng.choice(assignees), "created_by": rng.choice(creators),
                     "created_at": now, "completed_at": None, "version": 1}
                    for n in range(batch)]
            with sessions() as session, session.begin():
                session.execute(insert(Task), rows)
                outbox.publish_many(session, [
                    event for row in rows for event in events.on_creation(
                        TaskState(**{k: row[k] for k in TaskState.__dataclass_fields__}),
                        row["created_by"])])
            done += batch

    def _wait_drained(self) -> None:
        """Until every outbox is sent and every consumer group has read to the end."""
        from accounting.consumers import CONSUMED_TOPICS as ACCOUNTING_TOPICS
        from accounting.consumers import CONSUMER_NAME as ACCOUNTING
        from analytics.consumers import CONSUMED_TOPICS as ANALYTICS_TOPICS
        from analytics.stream import live_group_id
        from tasks.consumers import CONSUMED_TOPICS as TASKS_TOPICS
        from tasks.consumers import CONSUMER_NAME as TASKS

        s = self.settings
        groups = [
            (s.topic_prefix + ACCOUNTING, [s.topic(t) for t in ACCOUNTING_TOPICS]),
            (live_group_id(s), [s.topic(t) for t in ANALYTICS_TOPICS]),
            (s.topic_prefix + TASKS, [s.topic(t) for t in TASKS_TOPICS]),
        ]
        deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
        while True:
            unsent = sum(unsent_outbox_rows(s.database_for(svc)) for svc in SERVICES)
            behind = 0 if unsent else sum(group_lag(s.kafka_bootstrap, g, t) for g, t in groups)
            if unsent == 0 and behind == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"not drained: {unsent} unsent, {behind} behind")
            time.sleep(0.5)

    # -- baselines ------------------------------------------------------------------------

    def _baselines(self, clients: int) -> dict:
        print("platform: raw baselines ...", flush=True)
        url = with_database(self.settings.database_url, "ates_bench_bare")
        ensure_database(url)
        upgrade("tasks.migrations", url)
        port = free_port()
        from bench.tasks_api import _serve_bare, _wait_until_listening

        child = multiprocessing.get_context("spawn").Process(target=_serve_bare,
                                                             args=(port, url))
        child.start()
        try:
            _wait_until_listening(port, child)
            bare_memory = MemoryWatch()
            bare_memory.watch({"bare": child.pid})
            bare = self.loader.submit(platform_load.run_baseline,
                                      f"http://127.0.0.1:{port}/tasks", 2_000, clients).result()
            bare_memory.stop()
            bare_rss = bare_memory.peaks()["bare"]
        finally:
            child.terminate()
            child.join(timeout=30)
        round_trips = kafka_round_trips(self.settings.kafka_bootstrap, 300)
        return {
            "bare_rps": len(bare["latencies"]) / bare["seconds"],
            "bare_latency": bare["latencies"],
            "bare_rss": bare_rss,
            "kafka_round_trip": round_trips,
            "clients": clients,
        }


# -- servers' state ---------------------------------------------------------------------------


def unsent_outbox_rows(database_url: str) -> int:
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            return conn.scalar(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
    finally:
        engine.dispose()


def group_lag(bootstrap: str, group: str, topics: list[str]) -> int:
    """Messages in ``topics`` not yet committed by consumer group ``group``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(timeout=10).topics
        partitions = [TopicPartition(t, p) for t in topics for p in metadata[t].partitions]
        behind = 0
        for committed in consumer.committed(partitions, timeout=10):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(committed.topic, committed.partition), timeout=10)
            # max(0, ...): the embedded broker may report a high watermark one below the
            # last committed offset.
            behind += max(0, high - (committed.offset if committed.offset >= 0 else low))
        return behind
    finally:
        consumer.close()


def kafka_round_trips(bootstrap: str, count: int) -> list[float]:
    """Seconds from produce (acks=all) to the message polled by a consumer, one at a time."""
    topic = f"bench-round-trip-{uuid.uuid4().hex[:8]}"
    ensure_topics(Settings(kafka_bootstrap=bootstrap, topic_partitions=1), [topic])
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                         "enable.idempotence": True})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic,
                         "auto.offset.reset": "earliest", "fetch.wait.max.ms": 50,
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    seconds = []
    try:
        for number in range(count + 20):
            payload = str(number).encode()
            started = time.perf_counter()
            producer.produce(topic, payload)
            producer.flush(30)
            while True:
                message = consumer.poll(10)
                if message is None:
                    raise TimeoutError("round trip message not consumed")
                if message.error() is None and message.value() == payload:
                    break
            if number >= 20:  # the first ones warm the connections up
                seconds.append(time.perf_counter() - started)
    finally:
        consumer.close()
    return seconds


class MemoryWatch:
    """Peak resident memory of some processes, sampled every 0.2 s in a thread."""

    def __init__(self) -> None:
        self.processes: dict[str, psutil.Process] = {}
        self.peak: dict[str, int] = {}
        self.done = threading.Event()
        self.lock = threading.Lock()

    def watch(self, pids: dict[str, int]) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.reset()
        threading.Thread(target=self._loop, daemon=True).start()

    def reset(self) -> None:
        with self.lock:
            self.peak = {name: 0 for name in self.processes}
        self._sample()

    def peaks(self) -> dict[str, int]:
        self._sample()
        with self.lock:
            return dict(self.peak)

    def stop(self) -> None:
        self.done.set()

    def _loop(self) -> None:
        while not self.done.wait(0.2):
            self._sample()

    def _sample(self) -> None:
        for name, process in self.processes.items():
            try:
                rss = process.memory_info().rss
            except psutil.Error:
                continue
            with self.lock:
                self.peak[name] = max(self.peak.get(name, 0), rss)


# -- figures ----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def requests_per_second(phase: dict) -> float:
    requests = sum(len(v) for k, v in phase["latencies"].items()
                   if not k.startswith("sign-in") and k != "POST /api/tasks/reshuffle")
    return requests / phase["load_seconds"]


ENDPOINTS = ("POST /api/tasks", "POST /api/tasks/{id}/complete",
             "GET /api/tasks?assignee=me&status=open", "GET /api/me/transactions (lag probe)",
             "sign-in (code + PKCE, 4-5 requests)")


def results(measured: list[tuple[int, dict]], baseline: dict) -> list[Result]:
    rows = []
    bare = baseline["bare_latency"]
    rt = baseline["kafka_round_trip"]
    for size, phase in measured:
        label = f"{size:,} tasks:"
        rows.append(Result("platform", f"{label} mixed load (req/s)", requests_per_second(phase),
                           "req/s", f"bare FastAPI+INSERT, {baseline['clients']} clients",
                           baseline["bare_rps"]))
        for endpoint in ENDPOINTS:
            values = phase["latencies"].get(endpoint, [])
            for q in (50, 95, 99):
                rows.append(Result("platform", f"{label} {short(endpoint)} p{q} (ms)",
                                   percentile(values, q) * 1000, "ms",
                                   f"bare FastAPI+INSERT p{q} (ms)", percentile(bare, q) * 1000))
        reshuffle = phase["latencies"]["POST /api/tasks/reshuffle"][0]
        rows.append(Result("platform", f"{label} reshuffle {phase['reassigned']:,} open (ms)",
                           reshuffle * 1000, "ms", "bare FastAPI+INSERT p50 (ms)",
                           percentile(bare, 50) * 1000))
        for name, lags in (("accounting", phase["accounting_lag"]),
                           ("analytics", phase["analytics_lag"])):
            for q in (50, 95, 99):
                rows.append(Result("platform", f"{label} completed->{name} p{q} (ms)",
                                   percentile(lags, q) * 1000, "ms",
                                   f"raw Kafka round trip p{q} (ms)", percentile(rt, q) * 1000))
        for service, rss in phase["peak_rss"].items():
            rows.append(Result("platform", f"{label} peak RSS {service} (MiB)", rss / 2**20,
                               "MiB", "bare FastAPI+uvicorn server (MiB)",
                               baseline["bare_rss"] / 2**20))
    return rows


def short(endpoint: str) -> str:
    return {"POST /api/tasks": "create", "POST /api/tasks/{id}/complete": "complete",
            "GET /api/tasks?assignee=me&status=open": "list own open",
            "GET /api/me/transactions (lag probe)": "audit log",
            "sign-in (code + PKCE, 4-5 requests)": "sign-in"}[endpoint]


def describe(size: int, phase: dict, baseline: dict) -> str:
    bare, rt = baseline["bare_latency"], baseline["kafka_round_trip"]
    lines = [
        f"\n{size:,} tasks: {phase['created']:,} created, {phase['completed']:,} completed, "
        f"{phase['reassigned']:,} reshuffled; load {phase['load_seconds']:.1f} s, "
        f"{requests_per_second(phase):,.1f} req/s (bare FastAPI+INSERT "
        f"{baseline['bare_rps']:,.1f} req/s, ratio "
        f"{requests_per_second(phase) / baseline['bare_rps']:.2f})",
        f"  {'endpoint':<42} {'n':>6} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9}  statuses",
    ]
    for endpoint, values in sorted(phase["latencies"].items()):
        statuses = phase["statuses"].get(endpoint, {})
        lines.append(f"  {endpoint:<42} {len(values):>6} {percentile(values, 50) * 1e3:>9.1f} "
                     f"{percentile(values, 95) * 1e3:>9.1f} {percentile(values, 99) * 1e3:>9.1f}"
                     f"  {dict(statuses)}")
    lines.append(f"  {'bare FastAPI+INSERT (baseline)':<42} {len(bare):>6} "
                 f"{percentile(bare, 50) * 1e3:>9.1f} {percentile(bare, 95) * 1e3:>9.1f} "
                 f"{percentile(bare, 99) * 1e3:>9.1f}")
    for name, lags in (("completed -> reward in accounting", phase["accounting_lag"]),
                       ("completed -> projected in analytics", phase["analytics_lag"])):
        lines.append(f"  {name:<42} {len(lags):>6} {percentile(lags, 50) * 1e3:>9.1f} "
                     f"{percentile(lags, 95) * 1e3:>9.1f} {percentile(lags, 99) * 1e3:>9.1f}")
    lines.append(f"  {'raw Kafka round trip (baseline)':<42} {len(rt):>6} "
                 f"{percentile(rt, 50) * 1e3:>9.1f} {percentile(rt, 95) * 1e3:>9.1f} "
                 f"{percentile(rt, 99) * 1e3:>9.1f}")
    if phase["lost_probes"]:
        lines.append(f"  probes that timed out: {phase['lost_probes']}")
    lines.append(f"  reshuffle absorbed by accounting and analytics in "
                 f"{phase['reshuffle_absorbed_seconds']:.1f} s")
    lines.append("  peak RSS: " + ", ".join(
        f"{s} {rss / 2**20:,.0f} MiB" for s, rss in phase["peak_rss"].items())
        + f" (bare FastAPI server {baseline['bare_rss'] / 2**20:,.0f} MiB)")
    return "\n".join(lines)


# -- the plot ---------------------------------------------------------------------------------


def write_plot(measured: list[tuple[int, dict]], baseline: dict, path: Path) -> None:
    """Two panels against size (log scale): req/s as a share of the bare endpoint, and
    the p50/p95 completion -> accounting / analytics lags."""
    if not measured:
        return
    sizes = [size for size, _ in measured]
    throughput = {"mixed load / bare FastAPI+INSERT": [
        requests_per_second(p) / baseline["bare_rps"] for _, p in measured]}
    lags = {
        "accounting p50": [percentile(p["accounting_lag"], 50) for _, p in measured],
        "accounting p95": [percentile(p["accounting_lag"], 95) for _, p in measured],
        "analytics p50": [percentile(p["analytics_lag"], 50) for _, p in measured],
        "analytics p95": [percentile(p["analytics_lag"], 95) for _, p in measured],
    }
    rt = percentile(baseline["kafka_round_trip"], 50)
    svg = svg_chart(
        [("Throughput, ratio to the bare endpoint", sizes, throughput, "ratio"),
         (f"Lag task.completed -> visible (s); raw Kafka round trip p50 {rt * 1000:.1f} ms",
          sizes, lags, "s")])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(svg)


COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd")


def svg_chart(panels: list[tuple[str, list[int], dict[str, list[float]], str]]) -> str:
    width, panel_height, left, right, top = 720, 300, 70, 190, 40
    height = panel_height * len(panels)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    for index, (title, xs, series, unit) in enumerate(panels):
        y0 = index * panel_height
        plot_w, plot_h = width - left - right, panel_height - top - 45
        finite = [v for vs in series.values() for v in vs if not math.isnan(v)] or [1.0]
        y_max = max(finite) * 1.15 or 1.0
        lx = [math.log10(x) for x in xs]
        x_lo, x_hi = min(lx) - 0.2, max(lx) + 0.2

        def px(x: float, lo=x_lo, hi=x_hi, w=plot_w) -> float:
            return left + (math.log10(x) - lo) / (hi - lo) * w

        def py(v: float, top_y=y0 + top, h=plot_h, m=y_max) -> float:
            return top_y + h - v / m * h

        out.append(f'<text x="{left}" y="{y0 + 22}" font-size="14">{title}</text>')
        out.append(f'<line x1="{left}" y1="{y0 + top + plot_h}" x2="{left + plot_w}" '
                   f'y2="{y0 + top + plot_h}" stroke="black"/>')
        out.append(f'<line x1="{left}" y1="{y0 + top}" x2="{left}" '
                   f'y2="{y0 + top + plot_h}" stroke="black"/>')
        for tick in range(5):
            value = y_max * tick / 4
            out.append(f'<text x="{left - 6}" y="{py(value) + 4:.1f}" text-anchor="end">'
                       f'{value:.2f}</text>')
            out.append(f'<line x1="{left}" y1="{py(value):.1f}" x2="{left + plot_w}" '
                       f'y2="{py(value):.1f}" stroke="#ddd"/>')
        for x in xs:
            out.append(f'<text x="{px(x):.1f}" y="{y0 + top + plot_h + 16}" '
                       f'text-anchor="middle">{x:,}</text>')
        out.append(f'<text x="{left + plot_w / 2}" y="{y0 + top + plot_h + 34}" '
                   f'text-anchor="middle">tasks held by the platform (log scale)</text>')
        out.append(f'<text x="16" y="{y0 + top + plot_h / 2}" transform="rotate(-90 16 '
                   f'{y0 + top + plot_h / 2})" text-anchor="middle">{unit}</text>')
        for number, (name, values) in enumerate(series.items()):
            colour = COLOURS[number % len(COLOURS)]
            points = [(px(x), py(v)) for x, v in zip(xs, values, strict=True)
                      if not math.isnan(v)]
            out.append('<polyline fill="none" stroke-width="2" stroke="{}" points="{}"/>'.format(
                colour, " ".join(f"{x:.1f},{y:.1f}" for x, y in points)))
            for x, y in points:
                out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>')
            ly = y0 + top + 10 + number * 18
            out.append(f'<line x1="{left + plot_w + 15}" y1="{ly}" x2="{left + plot_w + 35}" '
                       f'y2="{ly}" stroke="{colour}" stroke-width="2"/>')
            out.append(f'<text x="{left + plot_w + 40}" y="{ly + 4}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> None:
    # Stopped with SIGTERM, still stop the stack (its children run in their own sessions).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rows = run()
    print()
    print(format_table(rows))
    print(f"\nplot: {PLOT}")


if __name__ == "__main__":
    main()
