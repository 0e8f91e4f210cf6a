"""Shared pieces of the benchmarks: throwaway real servers and the results table."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from deploy.embedded import EmbeddedPostgres, TansuBroker, free_port


@dataclass(frozen=True)
class Result:
    """One figure, beside the raw baseline measured in the same run."""

    bench: str
    name: str
    value: float
    unit: str
    baseline_name: str
    baseline: float

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")


@contextmanager
def postgres_server() -> Iterator[EmbeddedPostgres]:
    base = Path(tempfile.mkdtemp(prefix="ates-bench-pg-"))
    base.chmod(0o755)
    server = EmbeddedPostgres(base / "data", port=free_port())
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def kafka_broker() -> Iterator[TansuBroker]:
    broker = TansuBroker(port=free_port())
    try:
        yield broker.start()
    finally:
        broker.stop()


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.started


def format_table(results: list[Result]) -> str:
    header = (
        f"{'bench':<10} {'measure':<44} {'value':>12} {'unit':<10} "
        f"{'raw baseline':<40} {'baseline':>12} {'ratio':>7}"
    )
    rows = [header, "-" * len(header)]
    for r in results:
        rows.append(
            f"{r.bench:<10} {r.name:<44} {r.value:>12,.1f} {r.unit:<10} "
            f"{r.baseline_name:<40} {r.baseline:>12,.1f} {r.ratio:>7.2f}"
        )
    return "\n".join(rows)
