"""Norms and reliability: percentiles against a tenant's norm group, Cronbach's alpha and
corrected item-total correlations. Pure functions over numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from coaching_assessment.domain.instruments import InstrumentDefinition
from coaching_assessment.domain.scoring import Answers, keyed_value


@dataclass(frozen=True)
class Percentile:
    """A score's percentile rank in the norm group, or why there is none."""

    value: float | None
    group_size: int
    reason: str | None = None


def percentile_rank(distribution: Mapping[float, int], score: float) -> float:
    """Mid-rank percentile: the share of the group below the score plus half the share at it,
    in percent. `distribution` maps each score to how many completions had it."""
    total = sum(distribution.values())
    if total == 0:
        raise ValueError("empty norm group")
    below = sum(count for value, count in distribution.items() if value < score)
    at = sum(count for value, count in distribution.items() if value == score)
    return 100.0 * (below + at / 2) / total


def norm_percentile(distribution: Mapping[float, int], score: float, minimum_group: int,
                    ) -> Percentile:
    """The percentile once the norm group has `minimum_group` completions; below that the
    percentile is absent and the reason says how many there are."""
    size = sum(distribution.values())
    if size < minimum_group:
        return Percentile(None, size, f"the norm group has {size} completion(s); percentiles "
                                      f"need at least {minimum_group}")
    return Percentile(round(percentile_rank(distribution, score), 1), size)


def _variance(values: Sequence[float]) -> float:
    """Sample variance (n - 1)."""
    mean = sum(values) / len(values)
    return sum((value - mean) ** 2 for value in values) / (len(values) - 1)


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson's r, or None when either variable does not vary."""
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mean_x) ** 2 for x in xs)
    syy = sum((y - mean_y) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def cronbach_alpha(responses: Sequence[Sequence[float]]) -> float | None:
    """Cronbach's alpha of a respondents x items matrix (keyed values):
    k/(k-1) * (1 - sum of item variances / variance of the totals).
    None with fewer than two items or respondents, or when the totals do not vary."""
    if len(responses) < 2 or len(responses[0]) < 2:
        return None
    items = len(responses[0])
    columns = list(zip(*responses, strict=True))
    totals = [sum(row) for row in responses]
    total_variance = _variance(totals)
    if total_variance == 0:
        return None
    item_variance = sum(_variance(column) for column in columns)
    return items / (items - 1) * (1 - item_variance / total_variance)


def corrected_item_total(responses: Sequence[Sequence[float]]) -> list[float | None]:
    """Per item: correlation with the sum of the *other* items of the scale."""
    columns = list(zip(*responses, strict=True))
    totals = [sum(row) for row in responses]
    return [pearson(column, [total - value for total, value in zip(totals, column,
                                                                   strict=True)])
            for column in columns]


@dataclass(frozen=True)
class ItemQuality:
    item_id: str
    keying: str
    corrected_item_total: float | None


@dataclass(frozen=True)
class ScaleReliability:
    """How consistently a scale's items measure one thing in this tenant's responses."""

    scale_id: str
    label: str
    respondents: int
    items: int
    alpha: float | None
    flagged: bool
    note: str | None = None
    item_total: list[ItemQuality] = field(default_factory=list)


def scale_reliability(definition: InstrumentDefinition, answer_sheets: Sequence[Answers],
                      threshold: float) -> list[ScaleReliability]:
    """Alpha and corrected item-total correlations per scale over complete answer sheets;
    scales whose alpha is below `threshold` are flagged."""
    report = []
    for scale in definition.scales:
        items = definition.scored_items(scale.scale_id)
        rows = [[float(keyed_value(definition, item, sheet[item.item_id])) for item in items]
                for sheet in answer_sheets if all(item.item_id in sheet for item in items)]
        alpha = cronbach_alpha(rows)
        note = None
        if len(items) < 2:
            note = "a single-item scale has no internal consistency to estimate"
        elif len(rows) < 2:
            note = f"{len(rows)} complete response(s); at least 2 are needed"
        elif alpha is None:
            note = "the scale totals do not vary across respondents"
        correlations = corrected_item_total(rows) if len(rows) >= 2 and len(items) >= 2 else [
            None] * len(items)
        report.append(ScaleReliability(
            scale.scale_id, scale.label, len(rows), len(items),
            None if alpha is None else round(alpha, 4),
            alpha is not None and alpha < threshold, note,
            [ItemQuality(item.item_id, item.keying, None if r is None else round(r, 4))
             for item, r in zip(items, correlations, strict=True)]))
    return report
