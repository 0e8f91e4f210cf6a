"""argon2id password hashes."""

from __future__ import annotations

import threading

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from auth.config import PasswordHashing


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
        self._turns = threading.BoundedSemaphore(cost.at_once)

    def hash(self, password: str) -> str:
        with self._turns:
            return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            with self._turns:
                matches = self._hasher.verify(password_hash or self._decoy_hash, password)
            return matches and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
