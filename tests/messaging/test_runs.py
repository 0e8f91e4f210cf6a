"""Runs of one handler: as few as possible, never reordering two events of one key."""

from __future__ import annotations

import itertools
import random

from messaging.consumer import Delivery, runs_in_key_order


class Message:
    """The part of a Kafka message the grouping reads: its key."""

    def __init__(self, key: bytes | None, label: str):
        self._key, self.label = key, label

    def key(self) -> bytes | None:
        return self._key


def added(_session, _event):
    pass


def assigned(_session, _event):
    pass


def completed(_session, _event):
    pass


def delivery(key: str | None, handler, label: str = "") -> Delivery:
    return Delivery(Message(key.encode() if key else None, label or f"{handler.__name__}:{key}"),
                    handler=handler)


def labels(runs) -> list[list[str]]:
    return [[d.message.label for d in run] for run in runs]


def test_alternating_types_of_different_keys_become_one_run_per_type():
    batch = [delivery(f"t{n}", handler) for n in range(3) for handler in (added, assigned)]
    assert labels(runs_in_key_order(batch)) == [
        ["added:t0", "added:t1", "added:t2"],
        ["assigned:t0", "assigned:t1", "assigned:t2"],
    ]


def test_a_key_that_goes_back_to_an_earlier_type_waits_for_a_later_run():
    batch = [delivery("a", added), delivery("a", assigned), delivery("a", added, "added:a2"),
             delivery("b", added)]
    assert labels(runs_in_key_order(batch)) == [
        ["added:a", "added:b"], ["assigned:a"], ["added:a2"],
    ]


def test_an_event_joins_a_later_run_of_its_type_when_its_key_allows():
    batch = [delivery("a", assigned), delivery("b", added), delivery("a", added)]
    assert labels(runs_in_key_order(batch)) == [["assigned:a"], ["added:b", "added:a"]]


def test_same_type_events_of_one_key_stay_in_their_order_in_one_run():
    batch = [delivery("a", added, f"a{n}") for n in range(4)]
    assert labels(runs_in_key_order(batch)) == [["a0", "a1", "a2", "a3"]]


def test_events_without_a_key_keep_their_order_among_themselves():
    batch = [delivery(None, added, "1"), delivery(None, assigned, "2"),
             delivery(None, added, "3")]
    assert labels(runs_in_key_order(batch)) == [["1"], ["2"], ["3"]]


def test_random_batches_keep_every_keys_order_and_lose_nothing():
    rng = random.Random(7)
    for _ in range(200):
        batch = [delivery(rng.choice("abcd"), rng.choice((added, assigned, completed)),
                          str(n)) for n in range(rng.randint(0, 30))]
        runs = runs_in_key_order(batch)
        flat = [d for run in runs for d in run]
        assert sorted(d.message.label for d in flat) == sorted(d.message.label for d in batch)
        assert all(len({d.handler for d in run}) == 1 for run in runs)
        for key, group in itertools.groupby(sorted(batch, key=lambda d: d.message.key()),
                                            key=lambda d: d.message.key()):
            expected = [d.message.label for d in batch if d.message.key() == key]
            assert [d.message.label for d in flat if d.message.key() == key] == expected
            del group
        consecutive = len([k for k, _ in itertools.groupby(batch, key=lambda d: d.handler)])
        assert len(runs) <= consecutive
