"""Apache Kafka, run natively: the jars pinned in ``deploy/kafka/pom.xml``, resolved from
Maven Central by the machine's Maven (into its local repository, ``~/.m2``), started in
KRaft mode by the machine's Java.

``ApacheKafka(data_dir, nodes=1)`` is the development broker; ``nodes=3`` is the test
cluster: every node is broker and controller at once, topics get replication factor 3
and ``min.insync.replicas`` 2, so one node may die without losing a write that was
acknowledged. Each node keeps its log under ``data_dir/node-<id>``: events survive a
restart. ``stop()`` shuts every node down (SIGTERM, then SIGKILL after a grace period)
and leaves no process behind; a node left running by a killed owner is found by its
pid file and stopped on the next start.

Nothing here is a stand-in: ``kill(node)`` is a real ``kill -9`` of a broker's JVM, and
``active_controller()`` reads the quorum state that KRaft itself writes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from deploy.embedded import die_with_parent, free_ports

KAFKA_DIR = Path(__file__).resolve().with_name("kafka")
POM = KAFKA_DIR / "pom.xml"
SERVER_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
JVM_OPTIONS = [
    "-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
    "-Djava.awt.headless=true",
]


# How long nodes may take to register: three JVMs starting at once on a busy two-core
# machine have taken over two minutes.
READY_SECONDS = 300


class KafkaUnavailable(RuntimeError):
    """Apache Kafka cannot run here; the message says what is missing, in one line."""


def kafka_version() -> str:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    return match.group(1) if match else "?"


def _require(tool: str, what: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise KafkaUnavailable(f"Apache Kafka needs {what}: `{tool}` is not on PATH")
    return path


def java_binary() -> str:
    java = _require("java", "Java 17 or newer")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KafkaUnavailable(
            f"Apache Kafka needs Java 17 or newer: {java} fails ({exc})") from None
    match = re.search(r'version "(\d+)', out.stderr + out.stdout)
    if match is None or int(match.group(1)) < 17:
        found = match.group(1) if match else "unknown"
        raise KafkaUnavailable(f"Apache Kafka needs Java 17 or newer: {java} is version {found}")
    return java


def classpath(cache_dir: Path) -> str:
    """The jars of the pinned Kafka, as a Java classpath. Maven resolves them once (into
    its local repository); the list is kept in ``cache_dir``, keyed by the pom's content,
    and a later start whose jars are all still there runs no Maven at all."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:16]
    cache = Path(cache_dir) / f"kafka-classpath-{digest}.txt"
    if cache.exists():
        jars = cache.read_text().strip()
        if jars and all(Path(jar).exists() for jar in jars.split(os.pathsep)):
            return jars
    mvn = _require("mvn", "Maven to fetch its jars from Maven Central")
    cache.parent.mkdir(parents=True, exist_ok=True)
    output = cache.with_suffix(".tmp")
    goal = ["dependency:build-classpath", f"-Dmdep.outputFile={output}"]
    # Offline first: a machine that resolved these jars once downloads nothing again.
    for mode in (["-o"], []):
        done = subprocess.run([mvn, "-q", "-B", *mode, "-f", str(POM), *goal],
                              capture_output=True, text=True)
        if done.returncode == 0:
            break
    else:
        lines = [ln for ln in (done.stdout + done.stderr).splitlines() if "ERROR" in ln]
        detail = lines[0].strip() if lines else f"mvn exited with {done.returncode}"
        raise KafkaUnavailable(f"Maven could not fetch Apache Kafka {kafka_version()}: {detail}")
    output.replace(cache)
    return cache.read_text().strip()


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.change.name = state.change.logger
logger.change.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
"""


class ApacheKafka:
    """``nodes`` KRaft nodes (broker + controller each) on loopback TCP."""

    def __init__(
        self,
        data_dir: Path,
        nodes: int = 1,
        port: int | None = None,
        host: str = "127.0.0.1",
        cache_dir: Path | None = None,
        die_with_parent: bool = False,
    ):
        if nodes < 1:
            raise ValueError("nodes must be at least 1")
        self.data_dir = Path(data_dir).resolve()
        self.nodes = nodes
        self.host = host
        self.cache_dir = Path(cache_dir) if cache_dir else self.data_dir
        # Node ids 1..n. The first broker port is ``port`` when given (the dev broker's
        # 9092); every other port is drawn free once and kept for this object's life, so
        # a node restarted alone comes back where the others expect it.
        drawn = free_ports([("broker", node) for node in self.ids]
                           + [("controller", node) for node in self.ids], host)
        self.broker_ports = {node: drawn[("broker", node)] for node in self.ids}
        if port:
            self.broker_ports[1] = port
        self.controller_ports = {node: drawn[("controller", node)] for node in self.ids}
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        # Each node stops (cleanly, SIGTERM) when the process that started it dies.
        self.die_with_parent = die_with_parent
        self._classpath: str | None = None
        self._java: str | None = None

    # -- what clients see -------------------------------------------------------------

    @property
    def ids(self) -> list[int]:
        return list(range(1, self.nodes + 1))

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.host}:{self.broker_ports[n]}" for n in self.ids)

    @property
    def port(self) -> int:
        return self.broker_ports[1]

    @property
    def replication_factor(self) -> int:
        return min(3, self.nodes)

    @property
    def min_insync_replicas(self) -> int:
        return min(2, self.nodes)

    def describe(self) -> str:
        return (f"Apache Kafka {kafka_version()}, {self.nodes} KRaft node"
                f"{'s' if self.nodes > 1 else ''} at {self.bootstrap}, data in {self.data_dir}")

    # -- files ------------------------------------------------------------------------

    def node_dir(self, node: int) -> Path:
        return self.data_dir / f"node-{node}"

    def log_path(self, node: int) -> Path:
        return self.data_dir / f"node-{node}.log"

    def _properties_path(self, node: int) -> Path:
        return self.data_dir / f"node-{node}.properties"

    def _pid_path(self, node: int) -> Path:
        return self.data_dir / f"node-{node}.pid"

    def cluster_id(self) -> str:
        path = self.data_dir / "cluster.id"
        if not path.exists():
            raw = "-"
            while raw.startswith("-"):  # as Kafka's own ids: a leading "-" reads as an option
                raw = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            path.write_text(raw + "\n")
        return path.read_text().strip()

    def _properties(self, node: int) -> str:
        voters = ",".join(f"{i}@{self.host}:{self.controller_ports[i]}" for i in self.ids)
        settings = {
            "process.roles": "broker,controller",
            "node.id": node,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{self.host}:{self.broker_ports[node]},"
                         f"CONTROLLER://{self.host}:{self.controller_ports[node]}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.broker_ports[node]}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.node_dir(node)),
            "num.partitions": 3,
            "default.replication.factor": self.replication_factor,
            "min.insync.replicas": self.min_insync_replicas,
            "offsets.topic.replication.factor": self.replication_factor,
            "offsets.topic.num.partitions": 12,
            "transaction.state.log.replication.factor": self.replication_factor,
            "transaction.state.log.min.isr": self.min_insync_replicas,
            "transaction.state.log.num.partitions": 12,
            "share.coordinator.state.topic.replication.factor": self.replication_factor,
            "share.coordinator.state.topic.min.isr": self.min_insync_replicas,
            "unclean.leader.election.enable": "false",
            # Keep every event: analytics is rebuilt by replaying the topics from the start.
            "log.retention.ms": -1,
            # The platform's consumers use short sessions on a local broker (2 s).
            "group.min.session.timeout.ms": 1000,
            "group.initial.rebalance.delay.ms": 0,
            # A node that stops heartbeating is fenced within 3 s: its partitions get new
            # leaders and it leaves their in-sync replicas, so acks=all writes go on.
            "broker.heartbeat.interval.ms": 500,
            "broker.session.timeout.ms": 3000,
            "replica.lag.time.max.ms": 10000,
            # Many small topics (one set per test): small preallocated index files.
            "log.index.size.max.bytes": 1048576,
            "num.network.threads": 2,
            "num.io.threads": 4,
            "num.replica.fetchers": 1,
            "background.threads": 4,
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    # -- start and stop ---------------------------------------------------------------

    def _prepare(self) -> None:
        self._java = self._java or java_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._classpath = self._classpath or classpath(self.cache_dir)
        (self.data_dir / "log4j2.properties").write_text(LOG4J2)
        self._stop_stale()
        for node in self.ids:
            self._properties_path(node).write_text(self._properties(node))
        cluster = self.cluster_id()
        unformatted = [n for n in self.ids if not (self.node_dir(n) / "meta.properties").exists()]
        with ThreadPoolExecutor(max(1, len(unformatted))) as pool:
            for done in pool.map(lambda n: self._format(n, cluster), unformatted):
                if done.returncode != 0:
                    detail = (done.stderr or done.stdout).strip().splitlines()
                    raise KafkaUnavailable(
                        "kafka-storage format failed: " + (detail[-1] if detail else "?"))

    def _format(self, node: int, cluster: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._jvm(STORAGE_TOOL, "format", "-t", cluster, "-c",
                      str(self._properties_path(node)), "--ignore-formatted"),
            capture_output=True, text=True, timeout=120,
        )

    def _jvm(self, main: str, *args: str) -> list[str]:
        """The command line running the class ``main`` of the Kafka jars."""
        if self._java is None or self._classpath is None:
            raise RuntimeError("Java and the Kafka jars are not found yet")
        return [self._java, *self._java_options(), "-cp", self._classpath, main, *args]

    def _java_options(self) -> list[str]:
        return [*JVM_OPTIONS, f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={self.data_dir}"]

    def _stop_stale(self) -> None:
        """Nodes of this data folder still running (their owner was killed): stop them."""
        stale = []
        for node in self.ids:
            pid_file = self._pid_path(node)
            if not pid_file.exists():
                continue
            try:
                pid = int(pid_file.read_text().strip())
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                if str(self._properties_path(node)) in cmdline:
                    os.kill(pid, signal.SIGTERM)
                    stale.append(pid)
            except (ValueError, OSError):
                pass
            pid_file.unlink(missing_ok=True)
        deadline = time.monotonic() + 30
        while stale and time.monotonic() < deadline:
            stale = [pid for pid in stale if Path(f"/proc/{pid}").exists()]
            time.sleep(0.2)
        for pid in stale:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _check_ports(self, nodes: list[int]) -> None:
        for node in nodes:
            for port in (self.broker_ports[node], self.controller_ports[node]):
                if not _port_free(self.host, port):
                    raise KafkaUnavailable(
                        f"port {port} on {self.host} is in use: Apache Kafka cannot listen "
                        "there (set ATES_KAFKA_PORT or stop what holds it)")

    def start(self, timeout: float = READY_SECONDS) -> ApacheKafka:
        self._prepare()
        self._check_ports(self.ids)
        try:
            for node in self.ids:
                self._launch(node)
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, node: int) -> None:
        log = open(self.log_path(node), "ab")
        self.processes[node] = subprocess.Popen(
            self._jvm(SERVER_MAIN, str(self._properties_path(node))),
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM) if self.die_with_parent else None,
        )
        log.close()
        self._pid_path(node).write_text(f"{self.processes[node].pid}\n")

    def wait_ready(self, timeout: float = READY_SECONDS, nodes: list[int] | None = None) -> None:
        """Until every running node (or ``nodes``) is registered and serves metadata."""
        from confluent_kafka.admin import AdminClient

        wanted = set(nodes or [n for n in self.ids if self.running(n)])
        deadline = time.monotonic() + timeout
        # the client takes a logger object too, beyond what its type stubs say
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "log_level": 0,
                                  "logger": _quiet_logger()}
        admin = AdminClient(config)
        seen: set[int] = set()
        while time.monotonic() < deadline:
            for node in wanted:
                process = self.processes.get(node)
                if process is not None and process.poll() is not None:
                    raise RuntimeError(
                        f"Kafka node {node} exited with code {process.returncode}: "
                        f"{_last_error(self.log_path(node))}")
            try:
                seen = set(admin.list_topics(timeout=2).brokers)
                if wanted <= seen:
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.3)
        raise TimeoutError(f"Kafka nodes {sorted(wanted - seen)} not ready after {timeout}s; "
                           f"see {self.data_dir}")

    def running(self, node: int) -> bool:
        process = self.processes.get(node)
        return process is not None and process.poll() is None

    def pid(self, node: int) -> int:
        return self.processes[node].pid

    def kill(self, node: int, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` (default: kill -9) to one node and reap it; returns its pid."""
        process = self.processes[node]
        pid = process.pid
        if sig == signal.SIGKILL:
            process.kill()
            process.wait(30)
        else:
            _stop(process, sig, timeout=60)
        self._pid_path(node).unlink(missing_ok=True)
        return pid

    def start_node(self, node: int, timeout: float = READY_SECONDS) -> int:
        """Start one stopped node again on its ports and data; waits until registered."""
        if self.running(node):
            raise RuntimeError(f"Kafka node {node} is still running (pid {self.pid(node)})")
        self._check_ports([node])
        self._launch(node)
        self.wait_ready(timeout, nodes=[node])
        return self.pid(node)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM to every node at once (each shuts down cleanly), SIGKILL after
        ``timeout``: no process is left behind."""
        running = [p for p in self.processes.values() if p.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        for node in list(self.processes):
            self._pid_path(node).unlink(missing_ok=True)
        self.processes.clear()

    def pause(self) -> None:
        """SIGSTOP every node: the cluster stops answering, as a frozen host would."""
        for process in self.processes.values():
            process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGCONT)

    def __enter__(self) -> ApacheKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the cluster, seen from inside --------------------------------------------------

    def active_controller(self) -> int | None:
        """The node leading the KRaft quorum, as the quorum-state files of the running
        nodes record it (the newest epoch wins)."""
        best: tuple[int, int] | None = None
        for node in self.ids:
            if not self.running(node):
                continue
            path = self.node_dir(node) / "__cluster_metadata-0" / "quorum-state"
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            leader, epoch = state.get("leaderId", -1), state.get("leaderEpoch", -1)
            if leader > 0 and (best is None or epoch > best[1]):
                best = (leader, epoch)
        return best[0] if best else None

    def leaders(self, topics: list[str]) -> dict[tuple[str, int], int]:
        """``(topic, partition) -> leader node`` from the cluster's metadata."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        metadata = admin.list_topics(timeout=10)
        return {(t, p): meta.leader for t in topics if t in metadata.topics
                for p, meta in metadata.topics[t].partitions.items()}


def _stop(process: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _last_error(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return f"no log at {log}"
    errors = [ln for ln in lines if " ERROR " in ln or "Exception" in ln]
    return (errors or lines or ["(empty log)"])[-1].strip()


def _quiet_logger() -> logging.Logger:
    logger = logging.getLogger("deploy.kafka.admin")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger
