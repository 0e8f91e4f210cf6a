"""The capacity plan is computed from its stated inputs and the page shows the result."""

from __future__ import annotations

import dataclasses

import pytest

from bench import capacity
from bench.capacity import Measured, Workload, plan


def test_docs_capacity_shows_the_current_calculation():
    assert capacity.main(["--check"]) == 0


def test_a_stale_page_is_noticed(tmp_path, monkeypatch):
    real, stale = capacity.DOC, tmp_path / "capacity.md"
    stale.write_text(real.read_text().replace("2,700,000", "2,600,000"))
    monkeypatch.setattr(capacity, "DOC", stale)
    assert capacity.main(["--check"]) == 1
    assert capacity.main(["--write"]) == 0
    assert stale.read_text() == real.read_text()


def test_daily_volumes_grow_linearly_with_users():
    small, large = plan(1_000), plan(1_000_000)
    for field in ("tasks_per_day", "requests_per_s_peak", "ledger_gb_per_year",
                  "outbox_gb_per_day", "close_seconds"):
        assert abs(getattr(large, field) / getattr(small, field) - 1000) < 1, field


def test_events_per_day_follow_the_events_of_each_business_fact():
    work = Workload(worker_share=1, tasks_per_worker=1, reshuffles=0, paid_share=1)
    # per task: 5 on creation, 3 on completion; per payout 2; one billing_cycle.closed
    assert plan(10, work).events_per_day == 10 * 8 + 10 * 2 + 1
    # a close stores its payouts' events as one deferred outbox row, rendered when published
    outbox_bytes = plan(10, work).outbox_gb_per_day * 1e9
    assert outbox_bytes == pytest.approx((10 * 8 + 1) * Measured().outbox_bytes_per_event)


def test_consumers_never_exceed_partitions_and_follow_the_measured_rate():
    for users in capacity.USERS:
        planned = plan(users)
        assert planned.partitions >= max(planned.accounting_consumers,
                                         planned.analytics_consumers)
    slow = dataclasses.replace(Measured(), analytics_events_per_s=100)
    assert plan(1_000_000, rates=slow).analytics_consumers > plan(1_000_000).analytics_consumers
    assert plan(1_000_000, rates=slow).analytics_read_replica
