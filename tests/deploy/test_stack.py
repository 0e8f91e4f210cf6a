"""`ates up` as a user runs it: everything starts, answers, and Ctrl-C leaves nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pytest

from deploy.embedded import free_ports
from deploy.serve import available_services
from deploy.stack import installation_secrets


@pytest.fixture
def var_dir():
    path = Path(tempfile.mkdtemp(prefix="ates-stack-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def wait_for_line(process, text: str, timeout: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"'{text}' not printed; output was:\n{''.join(lines)}")


def test_ates_up_starts_everything_and_ctrl_c_leaves_no_process(var_dir):
    every_port = free_ports(["PG", "KAFKA", "SMTP", "MAIL", *available_services()])
    ports = {name: every_port[name] for name in ("PG", "KAFKA", "SMTP", "MAIL")}
    service_ports = {s: every_port[s] for s in available_services()}
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ATES_DATABASE_URL", "ATES_KAFKA_BOOTSTRAP", "ATES_SMTP_URL")
    }
    env |= {f"ATES_{k}_PORT": str(v) for k, v in ports.items()}
    env |= {f"ATES_{s.upper()}_PORT": str(p) for s, p in service_ports.items()}
    env |= {"ATES_VAR_DIR": str(var_dir), "ATES_ADMIN_PASSWORD": "correct-horse-battery"}
    process = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = "".join(wait_for_line(process, "Press Ctrl-C to stop", 180))
        descendants = psutil.Process(process.pid).children(recursive=True)
        assert len(descendants) >= 3  # postgres, broker, mail sink at least

        mail_page = f"http://127.0.0.1:{ports['MAIL']}"
        assert httpx.get(f"{mail_page}/api/messages").json() == []
        assert "<html" in httpx.get(mail_page).text.lower()
        for service, port in service_ports.items():
            assert f"http://127.0.0.1:{port}" in output
            assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200, service
        if "auth" in service_ports:
            assert "admin@popug.inc" in output
            assert_secrets_of_this_installation(var_dir, service_ports["auth"], output)

        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
        time.sleep(0.5)
        survivors = [p for p in descendants if p.is_running() and p.status() != "zombie"]
        assert survivors == [], f"left behind: {[p.cmdline() for p in survivors]}"
    finally:
        if process.poll() is None:
            process.kill()


def client_authenticates(auth_port: int, client_id: str, secret: str) -> bool:
    """Whether the provider accepts the client's secret (the grant itself is bogus)."""
    response = httpx.post(f"http://127.0.0.1:{auth_port}/oauth/token",
                          data={"grant_type": "refresh_token", "refresh_token": "bogus"},
                          auth=(client_id, secret))
    return response.json()["error"] != "invalid_client"


def assert_secrets_of_this_installation(var_dir: Path, auth_port: int, output: str) -> None:
    stored = var_dir / "secrets.json"
    assert str(stored) in output
    assert stored.stat().st_mode & 0o077 == 0
    secrets = json.loads(stored.read_text())
    assert not client_authenticates(auth_port, "tasks", "tasks-dev-secret")
    assert client_authenticates(auth_port, "tasks", secrets["ATES_TASKS_CLIENT_SECRET"])
    assert secrets["ATES_SECRET_KEY"] != "ates-dev-secret-key-change-me"


def test_each_installation_generates_its_secrets_once(var_dir):
    first = installation_secrets(var_dir / "secrets.json")
    again = installation_secrets(var_dir / "secrets.json")
    other = installation_secrets(var_dir / "other-secrets.json")

    assert first == again and set(first) == set(other)
    assert all(first[name] != other[name] and len(first[name]) >= 40 for name in first)
    assert (var_dir / "secrets.json").stat().st_mode & 0o777 == 0o600
