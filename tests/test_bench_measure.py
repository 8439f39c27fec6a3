"""The benchmark's arithmetic: which part of a run is measured, and the ratios it reports."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coaching_shared.mongo import BULK_WRITE_LIMIT, chunks

from bench.measure import (
    BASELINE,
    RAW_CLAIM_AND_PRODUCE,
    RAW_PIPELINE,
    SCHEDULER,
    Result,
    Window,
    add_ratios,
    format_table,
    steady_window,
)


def test_the_window_leaves_out_the_warm_up_and_ends_when_all_is_done():
    samples = [(0.0, 0), (1.0, 0), (2.0, 40), (3.0, 140), (4.0, 240), (5.0, 300), (6.0, 300)]
    window = steady_window(samples, total=300, warmup=100)
    assert (window.events, window.seconds, window.complete, window.warmed) == (160, 2.0,
                                                                                True, True)
    assert window.rate == 80


def test_a_capped_run_is_measured_to_its_last_sample_and_marked():
    window = steady_window([(0.0, 0), (1.0, 150), (3.0, 250)], total=1000, warmup=100)
    assert (window.events, window.seconds, window.complete) == (100, 2.0, False)


def test_a_run_that_never_passes_the_warm_up_is_measured_from_its_first_progress():
    window = steady_window([(0.0, 0), (2.0, 5), (6.0, 25)], total=1000, warmup=100)
    assert (window.events, window.seconds, window.warmed) == (20, 4.0, False)
    assert steady_window([(0.0, 0), (9.0, 0)], total=10, warmup=1).rate == 0


def test_ratios_are_to_the_raw_pipeline_and_the_baseline_of_the_same_run():
    results = [Result.of(RAW_PIPELINE, Window(1000, 1.0)), Result.of(BASELINE, Window(100, 1.0)),
               Result.of("goals service", Window(250, 1.0))]
    add_ratios(results)
    assert [(r.vs_raw_pipeline, r.vs_baseline) for r in results] == [
        (1.0, 10.0), (0.1, 1.0), (0.25, 2.5)]
    table = format_table(results)
    assert "| goals service" in table and "0.25" in table and "2.50" in table


def test_without_a_reference_there_is_no_ratio():
    results = [Result.of("aiokafka produce", Window(10, 1.0))]
    add_ratios(results)
    assert results[0].vs_raw_pipeline is None and results[0].vs_baseline is None


def test_the_scheduler_is_compared_with_the_raw_claim_and_produce_only():
    results = [Result.of(RAW_PIPELINE, Window(1000, 1.0)), Result.of(BASELINE, Window(100, 1.0)),
               Result.of(RAW_CLAIM_AND_PRODUCE, Window(400, 1.0)),
               Result.of(SCHEDULER, Window(300, 1.0), reference=RAW_CLAIM_AND_PRODUCE)]
    add_ratios(results)
    assert (results[3].vs_raw_pipeline, results[3].vs_baseline) == (0.75, None)


def test_bulk_writes_are_cut_below_the_size_ferretdb_stops_answering():
    parts = chunks(list(range(250)))
    assert [len(part) for part in parts] == [BULK_WRITE_LIMIT, BULK_WRITE_LIMIT, 52]
    assert [item for part in parts for item in part] == list(range(250))
    assert BULK_WRITE_LIMIT < 100
