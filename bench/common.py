"""Shared pieces of the benchmarks: throwaway real servers, the results table and the
command line."""

from __future__ import annotations

import argparse
import inspect
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
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

    @classmethod
    def median_of(cls, bench: str, name: str, unit: str, baseline_name: str,
                  rounds: list[tuple[float, float]], scale: float = 1.0) -> Result:
        """The median of each over ``rounds`` of (baseline, value) figures, times ``scale``."""
        return cls(bench, name, scale * statistics.median(value for _, value in rounds), unit,
                   baseline_name, scale * statistics.median(baseline for baseline, _ in rounds))


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


def rate(count: int, seconds: float) -> float:
    """``count`` per second; a clear error when the clock could not tell a duration (all of
    a tiny run arrived at once)."""
    if seconds <= 0:
        raise SystemExit(f"{count:,} events arrived at once, too few to time: use more")
    return count / seconds


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


def command_line(run: Callable[..., list[Result]], argv: list[str] | None = None,
                 **helps: str) -> None:
    """``python -m bench.<name>``: one ``--<parameter> N`` option a parameter of ``run``
    (described by ``helps``, its default ``run``'s own), then the table of what it measured.
    """
    module = sys.modules[run.__module__]
    parser = argparse.ArgumentParser(
        prog=f"python -m {module.__spec__.name}",
        description=module.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for name, parameter in inspect.signature(run).parameters.items():
        parser.add_argument(f"--{name}", type=int, default=parameter.default,
                            help=helps.get(name))
    print(format_table(run(**vars(parser.parse_args(argv)))))
