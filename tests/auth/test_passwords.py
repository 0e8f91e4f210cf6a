"""argon2id hashing: checks are right, and no more of them run at once than allowed."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from auth.config import FAST_PASSWORD_HASHING, PasswordHashing
from auth.passwords import Passwords


def test_a_password_matches_its_own_hash_only():
    passwords = Passwords(FAST_PASSWORD_HASHING)
    stored = passwords.hash("correct horse")
    assert passwords.verify(stored, "correct horse")
    assert not passwords.verify(stored, "wrong horse")
    assert not passwords.verify(None, "correct horse")  # unknown account
    assert not passwords.verify("not a hash", "correct horse")


class CountingHasher:
    """Stands in for argon2 to see how many checks run together."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.running = self.most = 0
        self.lock = threading.Lock()

    def _work(self) -> None:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1

    def verify(self, password_hash: str, password: str) -> bool:
        self._work()
        return password_hash == "hash:" + password

    def hash(self, password: str) -> str:
        self._work()
        return "hash:" + password


@pytest.mark.parametrize("at_once", [1, 2, 3])
def test_no_more_hashes_are_computed_at_once_than_allowed(at_once):
    passwords = Passwords(PasswordHashing(time_cost=1, memory_cost_kib=8, parallelism=1,
                                         at_once=at_once))
    counting = passwords._hasher = CountingHasher(seconds=0.02)
    with ThreadPoolExecutor(max_workers=12) as pool:
        checks = [pool.submit(passwords.verify, "hash:pw", "pw") for _ in range(12)]
        hashes = [pool.submit(passwords.hash, "pw") for _ in range(6)]
        assert all(check.result() for check in checks)
        assert [h.result() for h in hashes] == ["hash:pw"] * 6
    assert counting.most == at_once



def test_default_cost_is_no_weaker_than_owasps_recommendation():
    # OWASP's password storage cheat sheet: argon2id with at least 19 MiB, 2 passes, 1 lane.
    cost = PasswordHashing()
    assert cost.memory_cost_kib >= 19456 and cost.time_cost >= 2 and cost.parallelism >= 1
    hashed = Passwords(cost).hash("a long enough password")
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
