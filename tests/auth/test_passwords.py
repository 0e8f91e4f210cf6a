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


class GatedHasher:
    """Stands in for argon2: records the order of the hashes and holds the first one until
    the test lets it go."""

    def __init__(self):
        self.order: list[str] = []
        self.first_started = threading.Event()
        self.let_go = threading.Event()

    def hash(self, password: str) -> str:
        self.order.append(password)
        if len(self.order) == 1:
            self.first_started.set()
            self.let_go.wait(10)
        return "hash:" + password


def _wait_until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.001)


def test_waiting_hashes_are_computed_in_the_order_they_were_asked_for():
    passwords = Passwords(PasswordHashing(time_cost=1, memory_cost_kib=8, parallelism=1,
                                         at_once=1))
    gated = passwords._hasher = GatedHasher()
    first = threading.Thread(target=passwords.hash, args=("first",))
    first.start()
    assert gated.first_started.wait(10)
    waiters = []
    for n in range(8):
        waiter = threading.Thread(target=passwords.hash, args=(f"password {n}",))
        waiter.start()
        waiters.append(waiter)
        _wait_until(lambda n=n: passwords.turns.waiting == n + 1)
    gated.let_go.set()
    for thread in [first, *waiters]:
        thread.join(10)
    assert gated.order == ["first", *(f"password {n}" for n in range(8))]
    assert passwords.turns.waiting == 0


def test_an_unknown_account_costs_a_real_check_and_never_matches():
    passwords = Passwords(FAST_PASSWORD_HASHING)
    assert not passwords.verify(None, "decoy password that never matches")
    counting = passwords._hasher = CountingHasher(seconds=0)
    assert not passwords.verify(None, "wrong horse")
    assert counting.most == 1  # the decoy hash was checked, as long as a real one takes


# OWASP's password storage cheat sheet: argon2id with one of these (memory in KiB, passes),
# one lane; "these configuration settings provide an equal level of defense".
OWASP_ARGON2ID = [(47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5)]


def test_default_cost_is_no_weaker_than_owasps_recommendation():
    cost = PasswordHashing()
    assert cost.parallelism >= 1
    assert any(cost.memory_cost_kib >= memory and cost.time_cost >= passes
               for memory, passes in OWASP_ARGON2ID)
    hashed = Passwords(cost).hash("a long enough password")
    assert hashed.startswith(f"$argon2id$v=19$m={cost.memory_cost_kib},t={cost.time_cost},p=1$")


def test_a_hash_stored_with_another_of_owasps_settings_still_verifies():
    older = Passwords(PasswordHashing(time_cost=2, memory_cost_kib=19456))
    stored = older.hash("a long enough password")

    passwords = Passwords(PasswordHashing())

    assert passwords.verify(stored, "a long enough password")
    assert not passwords.verify(stored, "another password")
