"""Pure helpers of the benchmark: rates over a measured window, ratios, the printed table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Window:
    """The part of a run that is measured: `events` processed in `seconds`."""

    events: int
    seconds: float
    complete: bool = True
    warmed: bool = True

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def steady_window(samples: Sequence[tuple[float, int]], total: int, warmup: int) -> Window:
    """The window from the first sample at or past `warmup` events to the first at `total`.

    `samples` are (monotonic time, events processed so far), in time order. Start-up, group
    join and the first `warmup` events are left out; if `total` was never reached (the run
    hit its time cap), the window ends at the last sample and is marked incomplete. A run
    too slow to get past the warm-up is measured from its first progress (`warmed` False).
    """
    start = next((sample for sample in samples if sample[1] >= warmup), None)
    warmed = start is not None
    if start is None:
        start = next((sample for sample in samples if sample[1] > 0), None)
    if start is None:
        return Window(0, 0.0, complete=False, warmed=False)
    end = next((sample for sample in samples if sample[1] >= total), samples[-1])
    return Window(end[1] - start[1], end[0] - start[0], complete=end[1] >= total,
                  warmed=warmed)


def ratio(value: float, reference: float | None) -> float | None:
    """value / reference, or None where there is no reference to compare with."""
    if not reference:
        return None
    return value / reference


@dataclass
class Result:
    """One row of the table."""

    scenario: str
    events: int
    seconds: float
    rate: float
    complete: bool = True
    warmed: bool = True
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # The row this one's "x raw" compares with, when not the raw pipeline (the scheduler).
    reference: str | None = None
    vs_raw_pipeline: float | None = None
    vs_baseline: float | None = None

    @classmethod
    def of(cls, scenario: str, window: Window, note: str = "", reference: str | None = None,
           **extra: Any) -> Result:
        return cls(scenario, window.events, round(window.seconds, 3), round(window.rate, 1),
                   window.complete, window.warmed, note, extra, reference)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


RAW_PIPELINE = "raw pipeline"
BASELINE = "FastStream by the book"
RAW_CLAIM_AND_PRODUCE = "raw claim-and-produce"
SCHEDULER = "feedback scheduler"


LATENCY_KEYS = ("p50_ms", "p95_ms", "p99_ms", "max_ms")


def is_latency(result: Result) -> bool:
    """Latency rows carry percentiles; they are not throughput and get no ratios."""
    return "p99_ms" in result.extra


def add_ratios(results: Sequence[Result]) -> None:
    """Set each row's ratio to its raw reference and to the by-the-book baseline (same run).

    A row with a `reference` of its own (the scheduler against the raw claim-and-produce) is
    compared with that row only: the consuming baseline does different work.
    """
    rates = {result.scenario: result.rate for result in results}
    for result in results:
        if is_latency(result):
            continue
        reference = result.reference or RAW_PIPELINE
        result.vs_raw_pipeline = _rounded(ratio(result.rate, rates.get(reference)))
        result.vs_baseline = (None if result.reference
                              else _rounded(ratio(result.rate, rates.get(BASELINE))))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def format_table(results: Sequence[Result]) -> str:
    """Fixed-width tables (also valid markdown): throughput, then latency if measured."""
    throughput = [result for result in results if not is_latency(result)]
    latency = [result for result in results if is_latency(result)]
    header = ("scenario", "events", "seconds", "events/s", "x raw", "x baseline")
    rows = [header, tuple("-" * len(name) for name in header)]
    for result in throughput:
        rows.append((
            result.scenario + ("" if result.complete else " (capped)")
            + ("" if result.warmed else " (no warm-up)"),
            f"{result.events:,}", f"{result.seconds:.2f}", f"{result.rate:,.0f}",
            _format_ratio(result.vs_raw_pipeline), _format_ratio(result.vs_baseline)))
    text = _aligned(rows)
    if latency:
        header = ("latency", "offered/s", "samples", "missing", "p50 ms", "p95 ms", "p99 ms",
                  "max ms")
        rows = [header, tuple("-" * len(name) for name in header)]
        for result in latency:
            rows.append((result.scenario, f"{result.extra.get('offered_per_s', 0):g}",
                         f"{result.extra.get('samples', 0):,}",
                         f"{result.extra.get('missing', 0):,}",
                         *(_format_ms(result.extra.get(key)) for key in LATENCY_KEYS)))
        text += "\n\n" + _aligned(rows)
    return text


def _format_ms(value: float | None) -> str:
    return "" if value is None else f"{value:,.1f}"


def _aligned(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0]),
                 *(cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _format_ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"
