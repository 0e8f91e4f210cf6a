"""`ates up` looks after itself: what dies is restarted, a second copy on the same ports
is refused naming the processes, and nothing outlives it, however it dies."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from deploy.embedded import free_port
from platform_kit.db import make_engine
from platform_kit.service_app import create_service_app
from tests.deploy.test_stack import wait_for_line
from tests.deploy.test_stack_operations import RunningStack


@pytest.fixture
def stack():
    var_dir = Path(tempfile.mkdtemp(prefix="ates-supervised-"))
    var_dir.chmod(0o755)
    running = RunningStack(var_dir)
    try:
        yield running
    finally:
        running.stop()
        shutil.rmtree(var_dir, ignore_errors=True)


def child(stack: RunningStack, matches) -> psutil.Process:
    [found] = [p for p in psutil.Process(stack.process.pid).children() if matches(p)]
    return found


def is_service(service: str):
    return lambda p: p.cmdline()[3:5] == ["serve", service]


def gone(processes: list[psutil.Process], timeout: float = 60) -> list[psutil.Process]:
    """Those of ``processes`` still running (zombies count as gone) after waiting."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def test_the_stack_restarts_what_dies_refuses_a_second_copy_and_leaves_no_orphan(stack):
    auth = f"http://127.0.0.1:{stack.service_ports['auth']}"

    second = subprocess.run([sys.executable, "-m", "deploy.cli", "up"], env=stack.env,
                            capture_output=True, text=True, timeout=120)
    assert second.returncode != 0
    [refusal] = second.stderr.strip().splitlines()
    assert refusal.startswith("ates up: ports already served")
    assert f"{stack.service_ports['auth']} (auth) by pid " in refusal
    assert f"{stack.ports['PG']} (PostgreSQL) by pid " in refusal

    tasks = child(stack, is_service("tasks"))
    tasks.kill()
    wait_for_line(stack.process, "tasks restarted", 120)
    assert child(stack, is_service("tasks")).pid != tasks.pid

    postgres = child(stack, lambda p: p.name() == "postgres")
    pid_file = stack.var_dir / "postgres" / "postmaster.pid"
    postgres.kill()
    lines = wait_for_line(stack.process, "postgres restarted", 180)
    assert any("postgres exited with code -9" in line for line in lines)
    assert pid_file.read_text().split()[0] != str(postgres.pid)
    deadline = time.monotonic() + 120
    while httpx.get(f"{auth}/readyz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "auth never ready again"
        time.sleep(0.5)

    everything = psutil.Process(stack.process.pid).children(recursive=True)
    stack.process.kill()  # kill -9: no chance to stop anything itself
    stack.process.wait(10)
    left = gone(everything)
    assert left == [], f"left behind: {[p.cmdline() for p in left]}"


def test_requests_answer_503_with_retry_after_while_the_database_is_down():
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none",
                         pool_size=1)
    app = create_service_app("probe", {})

    @app.get("/probe")
    def probe() -> dict:
        with engine.connect() as connection:
            return {"one": connection.execute(text("SELECT 1")).scalar()}

    try:
        response = TestClient(app).get("/probe")
    finally:
        engine.dispose()
    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    assert set(response.json()) == {"detail"}
