"""argon2id password hashes, computed at most one per core at a time, first come first
served."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from auth.config import PasswordHashing


class Turns:
    """At most ``size`` holders at once; the others get their turn in the order they asked.

    A burst of sign-ins on a few cores then finishes in arrival order, each hash at full
    speed, instead of every hash time-sliced with all the others and all of them late.
    ``threading.Semaphore`` does not promise an order; here a finished holder hands its
    turn straight to the longest waiter, so a newcomer cannot slip in between.
    """

    def __init__(self, size: int):
        self._lock = threading.Lock()
        self._free = size
        self._queue: deque[threading.Event] = deque()

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @contextmanager
    def turn(self) -> Iterator[None]:
        self._wait_for_turn()
        try:
            yield
        finally:
            self._pass_on()

    def _wait_for_turn(self) -> None:
        with self._lock:
            if self._free:
                self._free -= 1
                return
            called = threading.Event()
            self._queue.append(called)
        called.wait()

    def _pass_on(self) -> None:
        with self._lock:
            if self._queue:
                self._queue.popleft().set()
            else:
                self._free += 1


class Passwords:
    def __init__(self, cost: PasswordHashing):
        self._hasher = PasswordHasher(
            time_cost=cost.time_cost,
            memory_cost=cost.memory_cost_kib,
            parallelism=cost.parallelism,
            type=Type.ID,
        )
        # Verifying against this when the account is unknown takes as long as a real
        # check, so response times do not reveal which emails have accounts.
        self._decoy_hash = self._hasher.hash("decoy password that never matches")
        self.turns = Turns(cost.at_once)

    def hash(self, password: str) -> str:
        with self.turns.turn():
            return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            with self.turns.turn():
                matches = self._hasher.verify(password_hash or self._decoy_hash, password)
            return matches and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
