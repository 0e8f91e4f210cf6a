"""The load generator of ``bench.platform``: many users over async httpx, in its own process.

Every function here runs in a child process started by ``bench.platform`` (so the load
does not share an interpreter with the code that watches the servers) and returns plain,
picklable data. Users sign in through the provider exactly as a person would (authorize,
login form, code + PKCE, token), then:

- managers create tasks (``POST /api/tasks``) until the phase has created its share;
- workers list their open tasks and complete them (``POST /api/tasks/{id}/complete``);
  every ``PROBE_EVERY``-th accepted completion is followed until its reward shows in the
  worker's audit log (``GET /api/me/transactions``, accounting) and until analytics has
  projected the completed task with its reward;
- at the end, an admin reshuffles every open task (``POST /api/tasks/reshuffle``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from urllib.parse import urljoin

import httpx
import psycopg
from tqdm import tqdm

from auth_client.pkce import pkce_pair
from auth_client.settings import CLI_CLIENT_ID
from auth_client.token_flow import TokenFlowError, _code_from, hidden_inputs

PROBE_EVERY = 10
PROBE_POLL_SECONDS = 0.05
PROBE_TIMEOUT_SECONDS = 300.0
PAGE = 50
IDLE_SECONDS = 1.0  # a worker with nothing to do looks again a second later
TIMEOUT = httpx.Timeout(120.0)
LIMITS = httpx.Limits(max_connections=400, max_keepalive_connections=400)


@dataclass
class Stats:
    """Latencies per endpoint (seconds), plus what the phase did."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, dict[int, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    accounting_lag: list[float] = field(default_factory=list)
    analytics_lag: list[float] = field(default_factory=list)
    lost_probes: int = 0

    async def call(self, endpoint: str, request) -> httpx.Response:
        """Time ``request()``; a kept-alive connection the server has just closed is
        retried (at most twice) on a fresh one, within the same timing."""
        started = time.perf_counter()
        for attempt in range(3):
            try:
                response = await request()
                break
            except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
                if attempt == 2:
                    raise
        self.latencies[endpoint].append(time.perf_counter() - started)
        self.statuses[endpoint][response.status_code] += 1
        return response

    def as_dict(self) -> dict:
        return {
            "latencies": dict(self.latencies),
            "statuses": {k: dict(v) for k, v in self.statuses.items()},
            "accounting_lag": self.accounting_lag,
            "analytics_lag": self.analytics_lag,
            "lost_probes": self.lost_probes,
        }


# -- signing in ------------------------------------------------------------------------------


async def sign_in(auth_url: str, email: str, password: str, stats: Stats | None = None) -> str:
    """The code + PKCE flow of the public CLI client; returns an access token.

    Each sign-in has its own client: the provider's session cookie is per person.
    """
    redirect_uri = "http://127.0.0.1:9/callback"  # never called: read from Location
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    params = {"response_type": "code", "client_id": CLI_CLIENT_ID, "redirect_uri": redirect_uri,
              "scope": "openid profile email", "state": state,
              "nonce": secrets.token_urlsafe(16), "code_challenge": challenge,
              "code_challenge_method": "S256"}
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=auth_url, timeout=TIMEOUT) as http:
        response = await http.get("/oauth/authorize", params=params)
        signed_in = False
        for _ in range(10):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if location.startswith(redirect_uri):
                    break
                response = await http.get(location)
            elif response.status_code == 200 and not signed_in and "password" in response.text:
                form = hidden_inputs(response.text) | {"email": email, "password": password}
                response = await http.post("/login", data=form)
                signed_in = True
            else:
                raise TokenFlowError(f"{email}: sign-in failed with HTTP {response.status_code}")
        else:
            raise TokenFlowError(f"{email}: too many redirects")
        tokens = await http.post("/oauth/token", data={
            "grant_type": "authorization_code", "code": _code_from(location, state),
            "redirect_uri": redirect_uri, "client_id": CLI_CLIENT_ID,
            "code_verifier": verifier})
    if tokens.status_code != 200:
        raise TokenFlowError(f"{email}: token refused: {tokens.text[:200]}")
    if stats is not None:
        stats.latencies["sign-in (code + PKCE, 4-5 requests)"].append(
            time.perf_counter() - started)
    return tokens.json()["access_token"]


def create_accounts(auth_url: str, admin_email: str, admin_password: str,
                    accounts: list[dict]) -> None:
    """Create ``accounts`` (email, full_name, role, password) through the admin API."""

    async def main() -> None:
        async with httpx.AsyncClient(timeout=TIMEOUT, limits=LIMITS) as http:
            token = await sign_in(auth_url, admin_email, admin_password)
            headers = {"Authorization": f"Bearer {token}"}
            gate = asyncio.Semaphore(8)

            async def create(account: dict) -> None:
                async with gate:
                    response = await http.post(f"{auth_url}/api/accounts", json=account,
                                               headers=headers)
                if response.status_code not in (201, 409):
                    raise RuntimeError(f"account refused: {response.status_code} "
                                       f"{response.text[:200]}")

            await asyncio.gather(*(create(a) for a in accounts))

    asyncio.run(main())


# -- one phase of load ----------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    urls: dict[str, str]
    analytics_database: str
    workers: list[tuple[str, str]]  # (email, password)
    managers: list[tuple[str, str]]
    admin: tuple[str, str]
    creations: int
    completions: int
    label: str


def run_phase(phase: Phase) -> dict:
    """Drive one phase; returns latencies, lags and the phase's wall time."""
    return asyncio.run(_phase(phase))


async def _phase(phase: Phase) -> dict:
    stats = Stats()
    tasks_url, accounting_url = phase.urls["tasks"], phase.urls["accounting"]
    async with httpx.AsyncClient(timeout=TIMEOUT, limits=LIMITS) as http:
        started = time.perf_counter()
        gate = asyncio.Semaphore(16)  # argon2 on 2 cores: a crowd only queues

        async def login(user: tuple[str, str]) -> dict[str, str]:
            async with gate:
                token = await sign_in(phase.urls["auth"], *user, stats=stats)
            return {"Authorization": f"Bearer {token}"}

        worker_headers = await asyncio.gather(*(login(u) for u in phase.workers))
        manager_headers = await asyncio.gather(*(login(u) for u in phase.managers))
        admin_headers = await login(phase.admin)

        bar = tqdm(total=phase.creations + phase.completions, desc=phase.label, unit="req",
                   leave=False, mininterval=1.0)
        analytics = AnalyticsWatch(phase.analytics_database, stats)
        watch = asyncio.create_task(analytics.run())
        state = {"created": 0, "completed": 0, "creators_done": False, "accepted": 0}
        probes: list[asyncio.Task] = []

        async def manager(headers: dict[str, str]) -> None:
            while state["created"] < phase.creations:
                state["created"] += 1
                number = state["created"]
                response = await stats.call("POST /api/tasks", lambda n=number: http.post(
                    f"{tasks_url}/api/tasks", headers=headers,
                    json={"title": f"Feed the parrots {n}", "jira_id": f"POPUG-{n}"}))
                if response.status_code != 201:
                    raise RuntimeError(f"create refused: {response.status_code} "
                                       f"{response.text[:200]}")
                bar.update()

        async def worker(headers: dict[str, str]) -> None:
            while state["completed"] < phase.completions:
                page = await stats.call("GET /api/tasks?assignee=me&status=open", lambda: http.get(
                    f"{tasks_url}/api/tasks", headers=headers,
                    params={"assignee": "me", "status": "open", "limit": PAGE}))
                items = page.json()["items"]
                if not items:
                    if state["creators_done"]:
                        return
                    await asyncio.sleep(IDLE_SECONDS)
                    continue
                for item in items:
                    if state["completed"] >= phase.completions:
                        return
                    state["completed"] += 1
                    response = await stats.call(
                        "POST /api/tasks/{id}/complete", lambda i=item: http.post(
                            f"{tasks_url}/api/tasks/{i['id']}/complete", headers=headers))
                    accepted_at = time.perf_counter()
                    if response.status_code != 200:
                        state["completed"] -= 1  # reassigned or done meanwhile: not ours
                        continue
                    bar.update()
                    state["accepted"] += 1
                    if state["accepted"] % PROBE_EVERY == 0:
                        probes.append(asyncio.create_task(
                            probe(http, accounting_url, headers, item["id"], accepted_at,
                                  stats, analytics)))

        async def creators() -> None:
            await asyncio.gather(*(manager(h) for h in manager_headers))
            state["creators_done"] = True

        load_started = time.perf_counter()
        await asyncio.gather(creators(), *(worker(h) for h in worker_headers))
        load_seconds = time.perf_counter() - load_started
        bar.close()
        reshuffle = await stats.call("POST /api/tasks/reshuffle", lambda: http.post(
            f"{tasks_url}/api/tasks/reshuffle", headers=admin_headers))
        reshuffled_at = time.monotonic()  # system-wide: compared in the parent process
        if reshuffle.status_code != 200:
            raise RuntimeError(f"reshuffle refused: {reshuffle.status_code} {reshuffle.text}")
        await asyncio.gather(*probes)
        analytics.stop()
        await watch
    return stats.as_dict() | {
        "load_seconds": load_seconds,
        "phase_seconds": time.perf_counter() - started,
        "created": state["created"],
        "completed": state["accepted"],
        "reassigned": reshuffle.json()["reassigned"],
        "reshuffled_at": reshuffled_at,
    }


async def probe(http: httpx.AsyncClient, accounting_url: str, headers: dict[str, str],
                task_id: str, accepted_at: float, stats: Stats,
                analytics: AnalyticsWatch) -> None:
    """Wait for the reward of ``task_id`` in the worker's audit log (and in analytics)."""
    seen_in_analytics = analytics.expect(task_id, accepted_at)
    deadline = accepted_at + PROBE_TIMEOUT_SECONDS
    while time.perf_counter() < deadline:
        page = await stats.call("GET /api/me/transactions (lag probe)", lambda: http.get(
            f"{accounting_url}/api/me/transactions", headers=headers, params={"limit": 20}))
        if page.status_code == 200 and any(
            line["task_id"] == task_id and line["type"] == "reward"
            for line in page.json()["items"]
        ):
            stats.accounting_lag.append(time.perf_counter() - accepted_at)
            break
        await asyncio.sleep(PROBE_POLL_SECONDS)
    else:
        stats.lost_probes += 1
    await seen_in_analytics


class AnalyticsWatch:
    """One query every ``PROBE_POLL_SECONDS`` for every task still awaited in analytics.

    Analytics answers aggregates only (day earnings, the most expensive task), which
    concurrent completions change together; whether one task's completion has been
    projected is read from its row in the analytics database.
    """

    QUERY = ("SELECT task_id::text FROM tasks WHERE task_id = ANY(%s::uuid[]) "
             "AND completed_at IS NOT NULL AND reward IS NOT NULL")

    def __init__(self, database_url: str, stats: Stats):
        self.database_url = database_url.replace("postgresql+psycopg://", "postgresql://")
        self.stats = stats
        self.waiting: dict[str, tuple[float, asyncio.Future]] = {}
        self.stopped = False

    def expect(self, task_id: str, accepted_at: float) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.waiting[task_id] = (accepted_at, future)
        return future

    def stop(self) -> None:
        self.stopped = True

    async def run(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.database_url,
                                                         autocommit=True) as conn:
            while not self.stopped or self.waiting:
                if self.waiting:
                    rows = await (await conn.execute(self.QUERY, [list(self.waiting)])).fetchall()
                    now = time.perf_counter()
                    for (task_id,) in rows:
                        accepted_at, future = self.waiting.pop(task_id)
                        self.stats.analytics_lag.append(now - accepted_at)
                        future.set_result(None)
                    for task_id, (accepted_at, future) in list(self.waiting.items()):
                        if now - accepted_at > PROBE_TIMEOUT_SECONDS:
                            del self.waiting[task_id]
                            self.stats.lost_probes += 1
                            future.set_result(None)
                await asyncio.sleep(PROBE_POLL_SECONDS)


# -- the raw baseline: a bare endpoint under the same client ---------------------------------


def run_baseline(url: str, requests: int, clients: int) -> dict:
    """``requests`` POSTs to a bare FastAPI + INSERT endpoint from ``clients`` coroutines."""

    async def main() -> dict:
        stats = Stats()
        remaining = {"n": requests}
        async with httpx.AsyncClient(timeout=TIMEOUT, limits=LIMITS) as http:
            for _ in range(50):  # warm-up
                await http.post(url, json={"title": "warm-up"})

            async def client() -> None:
                while remaining["n"] > 0:
                    remaining["n"] -= 1
                    response = await stats.call("bare", lambda: http.post(url, json={"title": "x"}))
                    if response.status_code != 201:
                        raise RuntimeError(f"bare endpoint: {response.status_code}")

            started = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(clients)))
            seconds = time.perf_counter() - started
        return {"seconds": seconds, "latencies": stats.latencies["bare"]}

    return asyncio.run(main())
