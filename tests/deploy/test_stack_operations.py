"""Operator commands against a stack `ates up` started on ports of its own: they find it
through the stack file it writes, say which stack they act on, and act on that one."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from deploy.embedded import free_port, free_ports
from deploy.serve import available_services
from platform_kit.settings import read_stack_env
from tests.deploy.test_stack import wait_for_line

ADMIN_PASSWORD = "correct-horse-battery"


def operator_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """An environment that names no server at all: only the stack file can."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATES_")}
    return env | {"ATES_VAR_DIR": str(var_dir)} | extra


def ates(*args: str, env: dict[str, str], input: str | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], env=env, input=input,
                          capture_output=True, text=True, timeout=timeout)


class RunningStack:
    def __init__(self, var_dir: Path):
        self.var_dir = var_dir
        every_port = free_ports(["PG", "KAFKA", "SMTP", "MAIL", *available_services()])
        self.ports = {name: every_port[name] for name in ("PG", "KAFKA", "SMTP", "MAIL")}
        self.service_ports = {s: every_port[s] for s in available_services()}
        env = operator_env(var_dir, ATES_ADMIN_PASSWORD=ADMIN_PASSWORD)
        env |= {f"ATES_{k}_PORT": str(v) for k, v in self.ports.items()}
        env |= {f"ATES_{s.upper()}_PORT": str(p) for s, p in self.service_ports.items()}
        self.env = env
        self.process = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "up"], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        self.output = "".join(wait_for_line(self.process, "Press Ctrl-C to stop", 180))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture(scope="module")
def stack():
    var_dir = Path(tempfile.mkdtemp(prefix="ates-ops-"))
    var_dir.chmod(0o755)
    running = RunningStack(var_dir)
    try:
        yield running
    finally:
        running.stop()
        shutil.rmtree(var_dir, ignore_errors=True)


def test_ates_up_writes_what_it_chose_to_the_stack_file(stack):
    chosen = read_stack_env(stack.var_dir / "ates.env")

    assert str(stack.var_dir / "ates.env") in stack.output
    assert chosen["ATES_AUTH_URL"] == f"http://127.0.0.1:{stack.service_ports['auth']}"
    assert chosen["ATES_DATABASE_URL"].endswith(f"127.0.0.1:{stack.ports['PG']}/postgres")
    assert chosen["ATES_KAFKA_BOOTSTRAP"] == f"127.0.0.1:{stack.ports['KAFKA']}"
    assert chosen["ATES_SMTP_URL"] == f"smtp://127.0.0.1:{stack.ports['SMTP']}"
    assert chosen["ATES_MAIL_URL"] == f"http://127.0.0.1:{stack.ports['MAIL']}"
    assert "ATES_SECRET_KEY" not in chosen  # secrets stay in secrets.json only


def test_the_environment_wins_over_the_stack_file(stack):
    elsewhere = f"http://127.0.0.1:{free_port()}"
    env = operator_env(stack.var_dir, ATES_AUTH_URL=elsewhere)

    done = ates("token", "--email", "admin@popug.inc", "--password", ADMIN_PASSWORD, env=env)

    assert done.returncode == 1
    assert "from the environment instead: ATES_AUTH_URL" in done.stderr
    assert elsewhere in done.stderr and "Traceback" not in done.stderr


DESTRUCTIVE = [
    ("analytics", "rebuild"),
    ("consumers", "reset", "accounting"),
    ("prune",),
    ("dlq", "redrive", "tasks-lifecycle"),
    ("accounting", "close-day"),
]


@pytest.mark.parametrize("args", DESTRUCTIVE, ids=" ".join)
def test_destructive_work_without_a_terminal_and_without_yes_is_refused_in_one_line(
    stack, args
):
    done = ates(*args, env=operator_env(stack.var_dir), input="y\n")

    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == ""
    banner, refusal = done.stderr.strip().splitlines()
    assert banner.startswith("ates: acting on the stack of")
    assert refusal.startswith("Error: refusing to ") and refusal.endswith("pass --yes")


def test_on_a_terminal_destructive_work_says_what_it_will_do_and_asks(stack):
    import pty

    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "analytics", "rebuild"],
            env=operator_env(stack.var_dir), stdin=terminal, stdout=terminal, stderr=terminal)
        os.close(terminal)
        seen = b""
        while b"Continue?" not in seen:
            chunk = os.read(controller, 4096)
            assert chunk, seen
            seen += chunk
        os.write(controller, b"n\n")
        assert process.wait(60) == 1
        try:
            while chunk := os.read(controller, 4096):
                seen += chunk
        except OSError:  # the terminal closed with the process
            pass
    finally:
        os.close(controller)
    text = seen.decode(errors="replace")
    assert "Empty the analytics dashboard" in text and "nothing done" in text


def databases(stack) -> set[str]:
    import psycopg

    url = f"postgresql://postgres@127.0.0.1:{stack.ports['PG']}/postgres"
    with psycopg.connect(url) as connection:
        return {name for (name,) in connection.execute("SELECT datname FROM pg_database")}


def test_migrating_an_unknown_service_is_one_line_and_creates_nothing(stack):
    before = databases(stack)

    done = ates("migrate", "bogus", env=operator_env(stack.var_dir))

    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1] == (
        "Error: unknown service 'bogus'; the services are " + ", ".join(available_services()))
    assert "Traceback" not in done.stderr
    assert databases(stack) == before and "ates_bogus" not in before


def test_set_password_from_stdin_lets_the_admin_sign_in_with_it_and_not_the_old_one(stack):
    env = operator_env(stack.var_dir)

    refused = ates("auth", "set-password", "admin@popug.inc", env=env, input="x\n")
    weak = ates("auth", "set-password", "admin@popug.inc", "--password-stdin", env=env,
                input="short\n")
    nobody = ates("auth", "set-password", "nobody@popug.inc", "--password-stdin", env=env,
                  input="a long enough new password\n")
    done = ates("auth", "set-password", "admin@popug.inc", "--password-stdin", env=env,
                input="a long enough new password\n")
    new = ates("token", "--email", "admin@popug.inc", "--password",
               "a long enough new password", env=env)
    old = ates("token", "--email", "admin@popug.inc", "--password", ADMIN_PASSWORD, env=env)
    ates("auth", "set-password", "admin@popug.inc", "--password-stdin", env=env,
         input=ADMIN_PASSWORD + "\n")

    assert refused.returncode == 1 and "--password-stdin" in refused.stderr
    assert weak.returncode == 1 and "nothing changed" in weak.stderr
    assert nobody.returncode == 1 and "no account nobody@popug.inc" in nobody.stderr
    assert done.returncode == 0 and done.stdout == "admin@popug.inc: password set\n"
    assert new.returncode == 0, new.stderr
    assert old.returncode == 1
    for result in (refused, weak, nobody, done, new, old):
        assert "Traceback" not in result.stderr


def test_progress_is_shown_on_stderr_when_asked_and_never_on_stdout(stack):
    env = operator_env(stack.var_dir)

    pruned = ates("prune", "--yes", "--progress", "--outbox-older-than", "0s", env=env)
    quiet = ates("prune", "--yes", "--outbox-older-than", "0s", env=env)
    reset = ates("consumers", "reset", "analytics", "--yes", "--progress", env=env)

    assert pruned.returncode == 0, pruned.stderr
    assert "outbox" in pruned.stderr and "rows/s" in pruned.stderr  # count and rate
    assert "rows/s" not in pruned.stdout and "rows/s" not in quiet.stderr
    assert pruned.stdout.splitlines()[0].startswith("auth: outbox ")
    if reset.returncode == 0:  # a running analytics may hold its group: then one line
        assert "partitions/s" in reset.stderr and "<" in reset.stderr  # rate, time left
    else:
        assert "stop" in reset.stderr.strip().splitlines()[-1]


# Last: it closes the day, which the refusal above must find open.
def test_token_close_day_and_dlq_list_act_on_the_stack_of_the_stack_file(stack):
    env = operator_env(stack.var_dir)
    auth = f"http://127.0.0.1:{stack.service_ports['auth']}"

    token = ates("token", "--email", "admin@popug.inc", "--password", ADMIN_PASSWORD, env=env)
    closed = ates("accounting", "close-day", "--yes", env=env)
    listed = ates("dlq", "list", "tasks-lifecycle", env=env)

    for done in (token, closed, listed):
        assert done.returncode == 0, done.stderr
        assert f"acting on the stack of {stack.var_dir / 'ates.env'}" in done.stderr
        assert auth in done.stderr and f"127.0.0.1:{stack.ports['PG']}" in done.stderr
        assert "Traceback" not in done.stderr
    assert token.stdout.count(".") == 2  # a JWT
    assert "closed, " in closed.stdout
    assert "no dead letters" in listed.stderr
