"""``ates up``: the whole platform on embedded real servers, as separate processes.

Starts PostgreSQL (data under ``./var/postgres``), the Tansu broker, the SMTP sink with
its mail page, applies every service's migrations, seeds demo accounts, then runs each
service (web app + relay + consumers) in its own process. Ctrl-C or SIGTERM stops all
of it, children first, and leaves no process behind.

``ATES_BROKER`` chooses the embedded broker: ``tansu`` (the default: light, memory only,
so every event is gone after a restart) or ``kafka`` (Apache Kafka run natively from its
jars, ``deploy/kafka.py``: needs Java 17 and Maven; its log is kept under
``<ATES_VAR_DIR>/kafka``; ``ATES_KAFKA_NODES=3`` makes it a 3-node cluster).

``ATES_DATABASE_URL`` / ``ATES_KAFKA_BOOTSTRAP`` / ``ATES_SMTP_URL`` use external servers
instead of the embedded ones. Ports and the data folder can be moved with
``ATES_PG_PORT``, ``ATES_KAFKA_PORT``, ``ATES_SMTP_PORT``, ``ATES_MAIL_PORT``,
``ATES_<SERVICE>_PORT`` and ``ATES_VAR_DIR``.

The installation's secrets (``ATES_SECRET_KEY`` and each dashboard's OAuth client secret)
are generated on the first start and kept, readable by the owner only, in
``<ATES_VAR_DIR>/secrets.json``; variables set in the environment win over them.

What the stack chose (service URLs and ports, database, broker, SMTP, mail page) is written
to ``<ATES_VAR_DIR>/ates.env``, which every ``ates`` command reads.

``ates up`` supervises (``Stack.supervise``): a process that dies is restarted with
backoff, every child dies with ``ates up`` (parent-death signal), and a start on ports
that are already served is refused naming the processes that serve them.

``ATES_SPLIT_WORKERS=1`` runs each service's web app and each of its workers (relay,
consumer, scheduler, mailer, stream) as a process of its own, named ``<service>`` and
``<service>-<worker>``, so that one of them can be stopped, killed or restarted alone
(``Stack.kill``, ``Stack.restart``); the end-to-end tests use this.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_urlsafe
from typing import Any

import httpx

from deploy.embedded import (
    EmbeddedPostgres,
    TansuBroker,
    die_with_parent,
    stop_process,
    wait_for_port,
)
from deploy.kafka import ApacheKafka, KafkaUnavailable
from deploy.serve import available_services, service_ports, worker_names
from messaging.kafka import ensure_topics
from platform_kit.migrations import upgrade
from platform_kit.settings import STACK_ENV_FILE, Settings, write_stack_env
from platform_kit.spec import service_spec, service_specs

HOST = "127.0.0.1"
SECRETS_FILE = "secrets.json"
# Passed on to the stack file as they were set for `ates up`.
_PASSED_ON = ("ATES_KAFKA_SESSION_TIMEOUT_MS", "ATES_DATABASE_PREFIX", "ATES_TIMEZONE",
              "ATES_PUBLIC_HOST")
BROKERS = ("tansu", "kafka")
# A process that ran this long before dying restarts after 1 s again; one that keeps dying
# sooner waits twice as long each time, up to MAX_BACKOFF_SECONDS.
STABLE_SECONDS = 60
MAX_BACKOFF_SECONDS = 30


@dataclass
class StackConfig:
    var_dir: Path
    pg_port: int = 5432
    kafka_port: int = 9092
    smtp_port: int = 1025
    mail_port: int = 8025
    service_ports: dict[str, int] = field(default_factory=service_ports)
    # One process per web app and per worker instead of one per service.
    split_workers: bool = False
    # The embedded broker: "tansu" (memory only) or "kafka" (Apache Kafka, kafka_nodes).
    broker: str = "tansu"
    kafka_nodes: int = 1
    # `ates up`: every child (servers included) dies with the stack, and `supervise`
    # restarts what dies.
    supervised: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str]) -> StackConfig:
        ports = {s: int(env.get(f"ATES_{s.upper()}_PORT", p)) for s, p in service_ports().items()}
        broker = env.get("ATES_BROKER", "tansu").strip().lower() or "tansu"
        if broker not in BROKERS:
            raise ValueError(f"ATES_BROKER={broker!r}: choose one of {', '.join(BROKERS)}")
        return cls(
            var_dir=Path(env.get("ATES_VAR_DIR", "var")).resolve(),
            pg_port=int(env.get("ATES_PG_PORT", 5432)),
            kafka_port=int(env.get("ATES_KAFKA_PORT", 9092)),
            smtp_port=int(env.get("ATES_SMTP_PORT", 1025)),
            mail_port=int(env.get("ATES_MAIL_PORT", 8025)),
            service_ports=ports,
            split_workers=env.get("ATES_SPLIT_WORKERS", "").lower() in ("1", "true", "yes"),
            broker=broker,
            kafka_nodes=int(env.get("ATES_KAFKA_NODES", 1)),
        )

    def service_url(self, service: str) -> str:
        return f"http://{HOST}:{self.service_ports[service]}"


class Stack:
    def __init__(self, config: StackConfig, env: dict[str, str]):
        self.config = config
        self.env = dict(env)
        self.postgres: EmbeddedPostgres | None = None
        self.broker: TansuBroker | ApacheKafka | None = None
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        # How each child was started (to start it again) and its own extra environment.
        self.commands: dict[str, list[str]] = {}
        self.child_env: dict[str, dict[str, str]] = {}
        self.logins: list[dict[str, Any]] = []
        self.log_dir = config.var_dir / "logs"
        self.started_at: dict[str, float] = {}

    # -- start ------------------------------------------------------------------------

    @property
    def secrets_file(self) -> Path:
        return self.config.var_dir / SECRETS_FILE

    def start(self) -> None:
        self.config.var_dir.mkdir(parents=True, exist_ok=True)
        self.config.var_dir.chmod(0o755)
        self.log_dir.mkdir(exist_ok=True)
        for name, value in installation_secrets(self.secrets_file).items():
            self.env.setdefault(name, value)
        self._start_servers()
        self._write_stack_env()
        settings = Settings.from_env(self.env)
        ensure_topics(settings)
        services = available_services()
        for service in services:
            say(f"migrating {service} ...")
            spec = service_spec(service)
            upgrade(spec.migrations, spec.database_url(settings))
        self.logins = self._seed(settings)
        for service in services:
            serve = [sys.executable, "-m", "deploy.cli", "serve", service]
            port = ["--port", str(self.config.service_ports[service])]
            if not self.config.split_workers:
                self._spawn(service, serve + port)
                continue
            self._spawn(service, serve + ["--role", "web"] + port)
            for worker in worker_names(service, settings):
                self._spawn(f"{service}-{worker}", serve + ["--role", "workers", "--only", worker])
        for service in services:
            self._wait_web(service)

    def _start_servers(self) -> None:
        cfg = self.config
        if "ATES_DATABASE_URL" not in self.env:
            say("starting PostgreSQL ...")
            self.postgres = EmbeddedPostgres(
                cfg.var_dir / "postgres", port=cfg.pg_port, log_path=self.log_dir / "postgres.log",
                die_with_parent=cfg.supervised,
            ).start()
            self.env["ATES_DATABASE_URL"] = self.postgres.url
        if "ATES_KAFKA_BOOTSTRAP" not in self.env and cfg.broker == "kafka":
            self.broker = ApacheKafka(cfg.var_dir / "kafka", nodes=cfg.kafka_nodes,
                                      port=cfg.kafka_port, die_with_parent=cfg.supervised)
            say(f"starting Apache Kafka ({self.broker.describe()}) ...")
            self.broker.start()
            self.env["ATES_KAFKA_BOOTSTRAP"] = self.broker.bootstrap
            self.env.setdefault("ATES_KAFKA_SESSION_TIMEOUT_MS", "2000")
        elif "ATES_KAFKA_BOOTSTRAP" not in self.env:
            say("starting the Kafka-protocol broker (Tansu) ...")
            self.broker = TansuBroker(
                port=cfg.kafka_port, log_path=self.log_dir / "broker.log",
                die_with_parent=cfg.supervised,
            ).start()
            self.env["ATES_KAFKA_BOOTSTRAP"] = self.broker.bootstrap
            self.env.setdefault("ATES_KAFKA_SESSION_TIMEOUT_MS", "2000")
        if "ATES_SMTP_URL" not in self.env and _mail_sent():
            say("starting the SMTP sink ...")
            self._spawn(
                "mailsink",
                [
                    sys.executable,
                    "-m",
                    "deploy.cli",
                    "mailsink",
                    "--smtp-port",
                    str(cfg.smtp_port),
                    "--http-port",
                    str(cfg.mail_port),
                ],
            )
            self._wait_mailsink()
            self.env["ATES_SMTP_URL"] = f"smtp://{HOST}:{cfg.smtp_port}"
        for service in available_services():
            self.env.setdefault(f"ATES_{service.upper()}_URL", cfg.service_url(service))

    @property
    def stack_env_file(self) -> Path:
        return self.config.var_dir / STACK_ENV_FILE

    def stack_env(self) -> dict[str, str]:
        """What this stack chose, as the variables every ``ates`` command reads."""
        cfg = self.config
        chosen = {f"ATES_{s.upper()}_URL": self.env[f"ATES_{s.upper()}_URL"]
                  for s in available_services()}
        chosen |= {f"ATES_{s.upper()}_PORT": str(p) for s, p in cfg.service_ports.items()}
        chosen |= {name: self.env[name] for name in
                   ("ATES_DATABASE_URL", "ATES_KAFKA_BOOTSTRAP", "ATES_SMTP_URL")
                   if name in self.env}
        if "mailsink" in self.children:
            chosen["ATES_MAIL_URL"] = f"http://{HOST}:{cfg.mail_port}"
        # What else decides where the data and the events are, when it was set.
        chosen |= {name: value for name, value in sorted(self.env.items())
                   if name in _PASSED_ON or name.startswith("ATES_TOPIC_")
                   or (name.endswith("_DATABASE_URL") and name.startswith("ATES_"))}
        return chosen

    def _write_stack_env(self) -> None:
        write_stack_env(self.stack_env_file, self.stack_env(), header=(
            "What `ates up` chose for this stack; every `ates` command reads it.\n"
            "Variables set in the environment win over these. Rewritten by each `ates up`."))

    def _seed(self, settings: Settings) -> list[dict[str, Any]]:
        """Each service's demo data; the logins it made."""
        admin_password = self.env.get("ATES_ADMIN_PASSWORD")
        return [login for spec in service_specs() if spec.seed is not None
                for login in spec.seed(settings, admin_password)]

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.commands[name] = argv
        log = open(self.log_dir / f"{name}.log", "ab")
        # Own session: Ctrl-C reaches only `ates up`, which then stops children in order.
        self.children[name] = subprocess.Popen(
            argv,
            env=self.env | self.child_env.get(name, {}),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent() if self.config.supervised else None,
        )
        self.started_at[name] = time.monotonic()
        log.close()

    # -- one process at a time (faults, rolling restarts) -------------------------------

    def pid(self, name: str) -> int:
        return self.children[name].pid

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` (default: kill -9) to the child ``name`` and reap it; returns its pid."""
        child = self.children[name]
        pid = child.pid
        if sig == signal.SIGKILL:
            child.kill()
            child.wait(10)
        else:
            stop_process(child, sig, timeout=20)
        return pid

    def start_child(self, name: str, env: dict[str, str] | None = None) -> int:
        """Start ``name`` again with the command it was first started with; ``env`` (when
        given) replaces its extra environment from now on. Waits until a web app answers."""
        if self.children[name].poll() is None:
            raise RuntimeError(f"{name} is still running (pid {self.children[name].pid})")
        if env is not None:
            self.child_env[name] = dict(env)
        self._spawn(name, self.commands[name])
        if name in self.config.service_ports:
            self._wait_web(name)
        elif name == "mailsink":
            self._wait_mailsink()
        return self.children[name].pid

    def restart(self, name: str, env: dict[str, str] | None = None,
                sig: int = signal.SIGTERM) -> int:
        """Stop ``name`` (SIGTERM by default, SIGKILL for a crash) and start it again."""
        self.kill(name, sig)
        return self.start_child(name, env)

    def processes_of(self, service: str) -> list[str]:
        """The children that make up ``service`` (its web app first)."""
        return [n for n in self.children if n == service or n.startswith(service + "-")]

    def restart_postgres(self) -> None:
        """Fast shutdown and start again on the same data folder and port."""
        if self.postgres is None:
            raise RuntimeError("PostgreSQL is external")
        self.postgres.restart()

    def pause_broker(self) -> None:
        self._embedded_broker().pause()

    def resume_broker(self) -> None:
        self._embedded_broker().resume()

    def _embedded_broker(self) -> TansuBroker | ApacheKafka:
        if self.broker is None:
            raise RuntimeError("the broker is external")
        return self.broker

    def _wait_web(self, name: str) -> None:
        try:
            wait_http(f"{self.config.service_url(name)}/healthz", 90, self.children[name])
        except (RuntimeError, TimeoutError) as exc:
            raise type(exc)(f"{name}: {exc}\n{self.log_tail(name)}") from exc

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The last lines of a child's log (``<var>/logs/<name>.log``)."""
        try:
            text = (self.log_dir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _wait_mailsink(self) -> None:
        wait_for_port(HOST, self.config.smtp_port, 30, self.children["mailsink"])
        wait_http(f"http://{HOST}:{self.config.mail_port}/healthz", 30, self.children["mailsink"])

    # -- run and stop -----------------------------------------------------------------

    def watch(self, stop: threading.Event) -> str | None:
        """Block until ``stop`` is set; returns the name of a child that died, if any."""
        while not stop.wait(1.0):
            for name, child in self.children.items():
                if child.poll() is not None:
                    return name
        return None

    def supervise(self, stop: threading.Event) -> None:
        """Until ``stop`` is set: restart every process that dies (PostgreSQL, the broker,
        the mail sink, each service), after 1 s, then 2, 4 ... up to 30 s while it keeps
        dying within a minute of its start; each death and restart is said."""
        failures: dict[str, int] = {}
        due: dict[str, float] = {}
        while not stop.wait(0.5):
            for name, code in self._dead():
                if name in due:
                    continue
                ran = time.monotonic() - self.started_at.get(name, 0.0)
                failures[name] = 1 if ran >= STABLE_SECONDS else failures.get(name, 0) + 1
                delay = min(MAX_BACKOFF_SECONDS, 2 ** (failures[name] - 1))
                say(f"{name} exited with code {code}; restarting in {delay} s "
                    f"(see {self.log_dir / (name + '.log')})")
                due[name] = time.monotonic() + delay
            for name, at in list(due.items()):
                if time.monotonic() < at or stop.is_set():
                    continue
                del due[name]
                try:
                    pid = self._revive(name)
                except Exception as exc:  # noqa: BLE001 - said, then tried again later
                    failures[name] += 1
                    delay = min(MAX_BACKOFF_SECONDS, 2 ** (failures[name] - 1))
                    say(f"{name} did not start again ({exc}); retrying in {delay} s")
                    due[name] = time.monotonic() + delay
                    continue
                say(f"{name} restarted (pid {pid})")

    def _dead(self) -> list[tuple[str, int | None]]:
        """The processes of the stack that have exited (reaped), with their exit codes."""
        dead: list[tuple[str, int | None]] = []
        if self.postgres and self.postgres.process and self.postgres.process.poll() is not None:
            dead.append(("postgres", self.postgres.process.returncode))
        broker = self.broker.process if isinstance(self.broker, TansuBroker) else None
        if broker is not None and broker.poll() is not None:
            dead.append(("broker", broker.returncode))
        if isinstance(self.broker, ApacheKafka):
            dead += [(f"kafka-{node}", getattr(self.broker.processes.get(node), "returncode", None))
                     for node in self.broker.ids if not self.broker.running(node)]
        dead += [(name, child.returncode) for name, child in self.children.items()
                 if child.poll() is not None]
        return dead

    def _revive(self, name: str) -> int:
        if name == "postgres" and self.postgres is not None:
            # a start that timed out may have left its server running: stop it first;
            # start() clears postmaster.pid only when the server it names is gone
            self.postgres.stop()
            self.postgres.start()
            self.started_at[name] = time.monotonic()
            return _pid(self.postgres.process)
        if name == "broker" and isinstance(self.broker, TansuBroker):
            self.broker.stop()
            self.broker.start()
            self.started_at[name] = time.monotonic()
            ensure_topics(Settings.from_env(self.env))  # Tansu forgot them
            return _pid(self.broker.process)
        if name.startswith("kafka-") and isinstance(self.broker, ApacheKafka):
            self.started_at[name] = time.monotonic()
            return self.broker.start_node(int(name.removeprefix("kafka-")))
        self._spawn(name, self.commands[name])
        return self.children[name].pid

    def served_ports(self) -> dict[int, str]:
        """The ports this stack is about to listen on, each with what listens there."""
        cfg = self.config
        ports = {p: s for s, p in cfg.service_ports.items() if s in available_services()}
        if "ATES_DATABASE_URL" not in self.env:
            ports[cfg.pg_port] = "PostgreSQL"
        if "ATES_KAFKA_BOOTSTRAP" not in self.env and cfg.broker == "tansu":
            ports[cfg.kafka_port] = "broker"
        if "ATES_SMTP_URL" not in self.env and _mail_sent():
            ports |= {cfg.smtp_port: "SMTP sink", cfg.mail_port: "mail page"}
        return ports

    def ports_taken(self) -> list[str]:
        """``port (what) by pid N: command`` for each port of ``served_ports`` that some
        process already serves."""
        import psutil

        listening: dict[int, set[int | None]] = {}
        try:
            for conn in psutil.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr:
                    listening.setdefault(conn.laddr.port, set()).add(conn.pid)
        except psutil.AccessDenied:
            pass
        taken = []
        for port, what in sorted(self.served_ports().items()):
            if port not in listening and not _answers(port):
                continue
            owners = []
            for pid in sorted(p for p in listening.get(port, ()) if p):
                try:
                    owners.append(f"pid {pid} ({' '.join(psutil.Process(pid).cmdline()[:6])})")
                except psutil.Error:
                    owners.append(f"pid {pid}")
            taken.append(f"{port} ({what}) by {', '.join(owners) or 'a process not shown'}")
        return taken

    def stop(self, timeout: float = 20) -> None:
        # Every child at once (each stops on its own), then the servers they used.
        running = [c for c in reversed(list(self.children.values())) if c.poll() is None]
        for child in running:
            child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in running:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
        if self.broker:
            self.broker.stop()
        if self.postgres:
            self.postgres.stop()

    def summary(self) -> str:
        cfg = self.config
        lines = ["", "aTES is up:"]
        for service in available_services():
            lines.append(f"  {service:<11} {cfg.service_url(service)}   (API docs: /docs)")
        if "mailsink" in self.children:
            lines.append(
                f"  {'mail':<11} http://{HOST}:{cfg.mail_port}   (SMTP on {HOST}:{cfg.smtp_port})"
            )
        lines.append(f"  {'database':<11} {self.env['ATES_DATABASE_URL']}")
        broker = self.env["ATES_KAFKA_BOOTSTRAP"]
        if isinstance(self.broker, ApacheKafka):
            broker += f"   ({self.broker.describe()})"
        elif isinstance(self.broker, TansuBroker):
            broker += "   (Tansu, memory only: events are gone after a restart)"
        lines.append(f"  {'broker':<11} {broker}")
        if self.logins:
            lines += ["", "Logins:"]
            for login in self.logins:
                password = login["password"] or "(unchanged)"
                lines.append(f"  {login['role']:<11} {login['email']:<28} {password}")
        lines += ["", f"Settings of this stack (read by every `ates` command): "
                      f"{self.stack_env_file}",
                  f"Secrets of this installation: {self.secrets_file}",
                  f"Logs in {self.log_dir}. Press Ctrl-C to stop."]
        return "\n".join(lines)


def installation_secrets(path: Path) -> dict[str, str]:
    """The secrets in ``path`` (``ATES_*`` variables), generated there when it is missing."""
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    generated = {"ATES_SECRET_KEY": token_urlsafe(32)}
    generated |= {name: token_urlsafe(32) for spec in service_specs() for name in spec.secrets}
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        json.dump(generated, file, indent=2)
    return generated


def _pid(process: subprocess.Popen[bytes] | None) -> int:
    if process is None:
        raise RuntimeError("the server did not start")
    return process.pid


def _mail_sent() -> bool:
    """Whether some service sends mail (then ``ates up`` runs an SMTP sink)."""
    return any(spec.sends_mail for spec in service_specs())


def _answers(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((HOST, port)) == 0


def wait_http(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: process exited with code {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def say(text: str) -> None:
    print(text, flush=True)


def run_stack() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        config = StackConfig.from_env(dict(os.environ))
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    config.supervised = True
    stack = Stack(config, dict(os.environ))
    taken = stack.ports_taken()
    if taken:
        raise SystemExit(f"ates up: ports already served, by an earlier stack still running? "
                         f"{'; '.join(taken)}. Stop those processes first.")
    try:
        try:
            stack.start()
        except KafkaUnavailable as exc:
            raise SystemExit(str(exc)) from None
        say(stack.summary())
        stack.supervise(stop)
    finally:
        say("stopping ...")
        stack.stop()
        say("stopped.")
