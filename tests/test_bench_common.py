"""Helpers the benchmarks share."""

from __future__ import annotations

import pytest

from bench.common import rate


def test_a_rate_is_events_per_second():
    assert rate(3000, 1.5) == 2000


def test_a_run_too_small_to_time_is_refused_with_a_clear_message():
    with pytest.raises(SystemExit, match="100 events arrived at once, too few to time"):
        rate(100, 0.0)
