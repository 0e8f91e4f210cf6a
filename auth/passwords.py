"""argon2id password hashes."""

from __future__ import annotations

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

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._decoy_hash, password) and bool(
                password_hash
            )
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
