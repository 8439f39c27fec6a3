"""The latency scenarios' arithmetic and pacing: nearest-rank percentiles, the offered load."""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.scenarios.latency import at_rate, latency_summary, percentile, planned_count


def test_nearest_rank_picks_a_measured_value():
    values = [15, 20, 35, 40, 50]
    assert percentile(values, 5) == 15
    assert percentile(values, 30) == 20
    assert percentile(values, 40) == 20
    assert percentile(values, 50) == 35
    assert percentile(values, 100) == 50


def test_percentiles_do_not_depend_on_the_order_of_samples():
    values = list(range(1, 101))
    shuffled = values[::-1]
    assert percentile(shuffled, 50) == 50
    assert percentile(shuffled, 95) == 95
    assert percentile(shuffled, 99) == 99
    assert percentile([7.5], 99) == 7.5


def test_no_samples_no_percentile_and_nonsense_refused():
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1.0], 0)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary_is_in_milliseconds():
    seconds = [0.001 * n for n in range(1, 201)]  # 1 ms .. 200 ms
    assert latency_summary(seconds) == {"p50_ms": 100.0, "p95_ms": 190.0, "p99_ms": 198.0,
                                        "max_ms": 200.0, "samples": 200}
    assert latency_summary([]) == {"p50_ms": None, "p95_ms": None, "p99_ms": None,
                                   "max_ms": None, "samples": 0}


def test_planned_count_is_rate_times_duration():
    assert planned_count(20, 15) == 300
    assert planned_count(2, 60) == 120
    assert planned_count(0.1, 1) == 1
    with pytest.raises(ValueError):
        planned_count(0, 10)


def test_sends_are_paced_open_loop():
    """A slow action does not hold back the next start (no coordinated omission)."""
    starts: list[float] = []

    async def slow(index: int) -> None:
        starts.append(time.monotonic())
        await asyncio.sleep(0.2)

    span = asyncio.run(at_rate(5, 50.0, slow))
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert len(starts) == 5
    assert all(gap < 0.1 for gap in gaps)
    assert 0.09 <= span < 0.2
