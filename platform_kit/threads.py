"""Worker threads of a route's own, beside the shared pool."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, TypeVarTuple

from anyio import CapacityLimiter, to_thread

T = TypeVar("T")
Args = TypeVarTuple("Args")


class ThreadLane:
    """At most ``size`` calls run at once on worker threads; the others wait, without a
    thread, in the order they came (anyio's limiter is first come first served).

    The shared pool (40 threads) time-slices whatever it holds: a burst of 50 sign-ins
    there has every request's Python work share the interpreter lock with every other's,
    and even the first finishes near the end of the burst. A lane a little wider than the
    cores it feeds lets the first comers finish first.
    """

    def __init__(self, size: int):
        self.size = size
        self._limiter: CapacityLimiter | None = None

    def limiter(self) -> CapacityLimiter:
        # made on first use: a limiter belongs to the running event loop's library
        if self._limiter is None:
            self._limiter = CapacityLimiter(self.size)
        return self._limiter

    async def run(self, work: Callable[[*Args], T], *args: *Args) -> T:
        return await to_thread.run_sync(work, *args, limiter=self.limiter())
