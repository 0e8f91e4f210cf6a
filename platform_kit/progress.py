"""What a long operation reports its progress to: a tqdm bar, or anything alike."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """``total`` is set once the amount of work is known; ``update(n)`` counts ``n`` more
    units done."""

    @property
    def total(self) -> float | None: ...

    @total.setter
    def total(self, value: float | None) -> None: ...

    def update(self, n: int = 1) -> object: ...
