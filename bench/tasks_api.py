"""Tasks created per second through the API, next to a bare endpoint doing one insert.

    python -m bench.tasks_api [--seconds 10] [--connections 8] [--rounds 3] [--workers 100]

Starts its own embedded PostgreSQL and broker, migrates the tasks database and puts
``--workers`` workers into its accounts replica (1,000,000 is fine: they are inserted by
one statement). Then, ``--rounds`` times, it serves each of these with uvicorn in a child
process (one process each, as ``ates serve`` runs a web app) and loads it for
``--seconds`` with ``wrk`` (Debian's HTTP load generator: a C event loop over
``--connections`` keep-alive connections, with a Lua script that posts a JSON body):

- the raw baseline: a bare FastAPI app whose ``POST /tasks`` inserts one row into the
  tasks table and answers its id (same database, driver and connection pool);
- the tasks service (``tasks.app.create_app``): ``POST /api/tasks`` with a bearer token
  verified as in production (RS256 against a JWKS, here a local one instead of the
  provider's), the title validated, a random eligible assignee locked, the task stored and
  its three events validated and written to the outbox, in one transaction.

Every response must be a 201 (wrk's count of non-2xx answers is checked). The load
generator's own ceiling is measured too: wrk against a static endpoint that does
nothing, so the figures show it was not the bottleneck. It prints the median requests
per second of each.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import insert, text

from auth_client.settings import AUDIENCE
from auth_client.sign_in import AuthClientConfig
from auth_client.verification import JwksCache, TokenVerifier
from bench.common import Result, command_line, kafka_broker, postgres_server
from deploy.embedded import free_port
from platform_kit.db import make_engine
from platform_kit.migrations import upgrade
from platform_kit.settings import Settings
from tasks.models import Task

ISSUER = "http://127.0.0.1:1"  # never called: the keys are handed to the verifier
WORKERS = 100
START_TIMEOUT_SECONDS = 60.0


def run(seconds: int = 10, connections: int = 8, rounds: int = 3,
        workers: int = WORKERS) -> list[Result]:
    wrk = _wrk()
    with postgres_server() as server, kafka_broker() as broker:
        settings = Settings(database_url=server.url, kafka_bootstrap=broker.bootstrap)
        database_url = settings.database_for("tasks")
        upgrade("tasks.migrations", database_url)
        _seed_workers(database_url, workers)
        key = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"})
        key.ensure_kid()
        token = {"Authorization": f"Bearer {_access_token(key)}"}
        ceiling = _requests_per_second(wrk, _serve_nothing, (), "/nothing", {}, seconds,
                                       connections)
        print(f"load generator ceiling (empty endpoint): {ceiling:,.0f} req/s")
        measured = [
            (
                _requests_per_second(wrk, _serve_bare, (database_url,), "/tasks", {},
                                     seconds, connections),
                _requests_per_second(wrk, _serve_tasks, (settings, key.as_dict(private=False)),
                                     "/api/tasks", token, seconds, connections),
            )
            for _ in range(rounds)
        ]
    for number, (bare, real) in enumerate(measured, 1):
        print(f"round {number}: bare insert {bare:,.0f} req/s, POST /api/tasks {real:,.0f} req/s")
    return [
        Result.median_of(
            "tasks_api",
            f"POST /api/tasks, {workers:,} workers, wrk {connections} conns (req/s)",
            "req/s",
            "bare FastAPI POST + one INSERT (req/s)",
            measured,
        ),
        Result("tasks_api", "wrk against an empty endpoint (req/s)", ceiling, "req/s",
               "bare FastAPI POST + one INSERT (req/s)",
               sorted(bare for bare, _ in measured)[len(measured) // 2]),
    ]


def _seed_workers(database_url: str, workers: int) -> None:
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO accounts (public_id, email, full_name, role, active, version,"
                " role_version) SELECT gen_random_uuid(), 'worker' || n || '@popug.inc',"
                " 'Worker ' || n, 'worker', true, 1, 1 FROM generate_series(1, :n) AS n"
            ), {"n": workers})
            connection.execute(text("ANALYZE accounts, assignee_slots"))
    finally:
        engine.dispose()


def _access_token(key: RSAKey) -> str:
    """An access token as the provider issues them, for a worker, valid for an hour."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": str(uuid.uuid4()), "iat": now,
              "exp": now + 3600, "email": "bench@popug.inc", "name": "Bench", "role": "worker"}
    header = {"alg": "RS256", "kid": key.kid, "typ": "at+jwt"}
    return jwt.encode(header, claims, key)


# -- the servers, each in a child process ---------------------------------------------------


def _serve_bare(port: int, database_url: str) -> None:
    engine = make_engine(database_url)
    assignee = uuid.uuid4()
    app = FastAPI()

    @app.post("/tasks", status_code=201)
    def create_task(body: dict[str, Any]) -> dict[str, str]:
        task_id = uuid.uuid4()
        with engine.begin() as connection:
            connection.execute(insert(Task).values(
                public_id=task_id, title=str(body["title"]), assignee_id=assignee,
                created_at=datetime.now(UTC)))
        return {"id": str(task_id)}

    _run_uvicorn(app, port)


def _serve_nothing(port: int) -> None:
    app = FastAPI()

    @app.post("/nothing", status_code=201)
    def nothing() -> dict[str, str]:
        return {}

    _run_uvicorn(app, port)


def _serve_tasks(port: int, settings: Settings, public_jwk: dict[str, Any]) -> None:
    from tasks.app import create_app

    verifier = TokenVerifier(ISSUER, AUDIENCE, JwksCache(lambda: {"keys": [public_jwk]}))
    auth = AuthClientConfig(issuer=ISSUER, client_id="tasks", client_secret="bench",
                            base_url=f"http://127.0.0.1:{port}", secret_key="bench")
    _run_uvicorn(create_app(settings, auth, {}, verifier), port)


def _run_uvicorn(app: FastAPI, port: int) -> None:
    uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                  access_log=False)).run()


# -- the load ---------------------------------------------------------------------------


def _requests_per_second(wrk: str, serve: Callable[..., None], args: tuple, path: str,
                         headers: dict[str, str], seconds: int, connections: int) -> float:
    port = free_port()
    child = multiprocessing.get_context("spawn").Process(target=serve, args=(port, *args))
    child.start()
    try:
        url = f"http://127.0.0.1:{port}{path}"
        _wait_until_listening(port, child)
        _load(wrk, url, headers, 2, connections)  # warm-up
        return _load(wrk, url, headers, seconds, connections)
    finally:
        child.terminate()
        child.join(timeout=30)


# wrk's script: every request a POST with a JSON body; done() prints what the bench reads.
_WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%(headers)s
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, '{"title": "Feed the parrots ' .. n .. '"}')
end
done = function(summary, latency, requests)
  io.write(string.format("ATES requests=%%d seconds=%%f errors=%%d\\n", summary.requests,
    summary.duration / 1e6, summary.errors.status + summary.errors.connect
    + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def _load(wrk: str, url: str, headers: dict[str, str], seconds: int, connections: int) -> float:
    """Requests per second ``wrk`` got from ``url``; every answer must have been a 2xx."""
    lines = "\n".join(f'wrk.headers["{name}"] = "{value}"' for name, value in headers.items())
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT % {"headers": lines})
    try:
        finished = subprocess.run(
            [wrk, "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "-s", script.name, url],
            capture_output=True, text=True, check=True)
    finally:
        os.unlink(script.name)
    match = re.search(r"ATES requests=(\d+) seconds=([\d.]+) errors=(\d+)", finished.stdout)
    if match is None:
        raise RuntimeError(f"wrk printed no summary: {finished.stdout} {finished.stderr}")
    requests, elapsed, errors = int(match[1]), float(match[2]), int(match[3])
    if errors:
        raise RuntimeError(f"{errors} of {requests} requests to {url} failed")
    return requests / elapsed


def _wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: `make bench` installs it (Debian package wrk)")
    return found


def _wait_until_listening(port: int, child: multiprocessing.process.BaseProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not child.is_alive():
            raise RuntimeError("the server stopped during start-up")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(f"no server on port {port} after {START_TIMEOUT_SECONDS}s")


def main(argv: list[str] | None = None) -> None:
    command_line(run, argv, seconds="seconds of load per measurement",
                 connections="concurrent keep-alive connections",
                 rounds="measurements of each kind", workers="workers in the accounts replica")


if __name__ == "__main__":
    main()
