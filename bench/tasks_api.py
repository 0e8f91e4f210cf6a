"""Tasks created per second through the API, next to a bare endpoint doing one insert.

    python -m bench.tasks_api [--requests 1000] [--clients 8] [--rounds 3]

Starts its own embedded PostgreSQL and broker, migrates the tasks database and puts 100
workers into its accounts replica. Then, ``--rounds`` times, it serves each of these with
uvicorn in a child process and sends it ``--requests`` requests (after a warm-up) from
``--clients`` threads, each with its own keep-alive httpx client:

- the raw baseline: a bare FastAPI app whose ``POST /tasks`` inserts one row into the
  tasks table and answers its id (same database, driver and connection pool);
- the tasks service (``tasks.app.create_app``): ``POST /api/tasks`` with a bearer token
  verified as in production (RS256 against a JWKS, here a local one instead of the
  provider's), the title validated, a random eligible assignee locked, the task stored and
  its three events validated and written to the outbox, in one transaction.

It prints the median requests per second of each.
"""

from __future__ import annotations

import multiprocessing
import threading
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
from sqlalchemy import insert

from auth.client import AuthClientConfig, JwksCache, TokenVerifier
from auth.config import AUDIENCE
from bench.common import Result, Stopwatch, command_line, kafka_broker, postgres_server
from deploy.embedded import free_port
from messaging.db import make_engine
from messaging.migrations import upgrade
from messaging.settings import Settings
from tasks.models import Account, Task

ISSUER = "http://127.0.0.1:1"  # never called: the keys are handed to the verifier
WARM_UP_REQUESTS = 100
WORKERS = 100
START_TIMEOUT_SECONDS = 60.0


def run(requests: int = 1_000, clients: int = 8, rounds: int = 3) -> list[Result]:
    with postgres_server() as server, kafka_broker() as broker:
        settings = Settings(database_url=server.url, kafka_bootstrap=broker.bootstrap)
        database_url = settings.database_for("tasks")
        upgrade("tasks", database_url)
        _seed_workers(database_url)
        key = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"})
        key.ensure_kid()
        measured = [
            (
                _requests_per_second(_serve_bare, (database_url,), "/tasks", {}, requests,
                                     clients),
                _requests_per_second(
                    _serve_tasks, (settings, key.as_dict(private=False)), "/api/tasks",
                    {"Authorization": f"Bearer {_access_token(key)}"}, requests, clients),
            )
            for _ in range(rounds)
        ]
    for number, (bare, real) in enumerate(measured, 1):
        print(f"round {number}: bare insert {bare:,.0f} req/s, POST /api/tasks {real:,.0f} req/s")
    return [
        Result.median_of(
            "tasks_api",
            f"POST /api/tasks, {requests:,} requests, {clients} clients (req/s)",
            "req/s",
            "bare FastAPI POST + one INSERT (req/s)",
            measured,
        )
    ]


def _seed_workers(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(insert(Account), [
                {"public_id": uuid.uuid4(), "email": f"worker{n}@popug.inc",
                 "full_name": f"Worker {n}", "role": "worker", "active": True, "version": 1,
                 "role_version": 1}
                for n in range(WORKERS)
            ])
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


def _requests_per_second(serve: Callable[..., None], args: tuple, path: str,
                         headers: dict[str, str], requests: int, clients: int) -> float:
    port = free_port()
    child = multiprocessing.get_context("spawn").Process(target=serve, args=(port, *args))
    child.start()
    try:
        url = f"http://127.0.0.1:{port}{path}"
        _wait_until_listening(port, child)
        _send(url, headers, WARM_UP_REQUESTS, clients)
        with Stopwatch() as stopwatch:
            _send(url, headers, requests, clients)
        return requests / stopwatch.seconds
    finally:
        child.terminate()
        child.join(timeout=30)


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


def _send(url: str, headers: dict[str, str], requests: int, clients: int) -> None:
    """``requests`` task creations split over ``clients`` threads; every one must succeed."""
    failures: list[str] = []

    def client(count: int) -> None:
        with httpx.Client(headers=headers, timeout=30.0) as http:
            for number in range(count):
                response = http.post(url, json={"title": f"Feed the parrots {number}"})
                if response.status_code != 201:
                    failures.append(f"{response.status_code} {response.text[:200]}")
                    return

    shares = [requests // clients + (1 if n < requests % clients else 0) for n in range(clients)]
    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"requests failed: {failures[0]}")


def main(argv: list[str] | None = None) -> None:
    command_line(run, argv, requests="measured requests per run",
                 clients="concurrent client threads", rounds="measurements of each kind")


if __name__ == "__main__":
    main()
