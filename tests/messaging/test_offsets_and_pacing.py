"""Small pieces of the runtime: the offsets a batch moves to, and paced readings."""

from __future__ import annotations

from dataclasses import dataclass

from messaging.consumer import next_offsets
from platform_kit import metrics


@dataclass
class Message:
    topic_name: str
    number: int
    at: int

    def topic(self) -> str:
        return self.topic_name

    def partition(self) -> int:
        return self.number

    def offset(self) -> int:
        return self.at


def test_each_partition_moves_past_its_last_message_whatever_the_order():
    batch = [Message("a", 0, 7), Message("a", 1, 3), Message("a", 0, 5), Message("b", 0, 0)]
    assert next_offsets(batch) == {("a", 0): 8, ("a", 1): 4, ("b", 0): 1}
    assert next_offsets([]) == {}


def test_a_paced_reading_is_due_at_once_then_once_per_interval(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(metrics.time, "monotonic", lambda: now[0])
    every = metrics.Every(5.0)
    assert every.due()
    assert not every.due()
    now[0] = 104.9
    assert not every.due()
    now[0] = 105.0
    assert every.due()
    assert not every.due()
