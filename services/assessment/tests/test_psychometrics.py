"""Norm percentiles and reliability against worked examples."""

from __future__ import annotations

import pytest
from coaching_assessment.domain.instruments import parse_instrument
from coaching_assessment.domain.psychometrics import (
    corrected_item_total,
    cronbach_alpha,
    norm_percentile,
    percentile_rank,
    scale_reliability,
)

# 5 respondents x 3 items. Item variances (n-1): 2.5, 1.0, 1.3 -> sum 4.8.
# Totals 5, 7, 9, 13, 13 -> variance 51.2 / 4 = 12.8.
# alpha = 3/2 * (1 - 4.8/12.8) = 1.5 * 0.625 = 0.9375.
WORKED = [[1, 2, 2], [2, 2, 3], [3, 3, 3], [4, 4, 5], [5, 4, 4]]


def test_cronbach_alpha_worked_example():
    assert cronbach_alpha(WORKED) == pytest.approx(0.9375)


def test_corrected_item_total_correlations():
    # item 1 against items 2+3 (4, 5, 6, 9, 8): Sxy 12, Sxx 10, Syy 17.2 -> 12 / sqrt(172)
    first, second, third = corrected_item_total(WORKED)
    assert first == pytest.approx(12 / 172 ** 0.5)
    assert first == pytest.approx(0.91499, abs=1e-5)
    # item 2 against items 1+3 (3, 5, 6, 9, 9): Sxy 10, Sxx 4, Syy 27.2
    assert second == pytest.approx(10 / (4 * 27.2) ** 0.5)
    assert third is not None and 0 < third < 1


def test_alpha_is_undefined_without_variance_or_enough_data():
    assert cronbach_alpha([[3, 3], [3, 3]]) is None
    assert cronbach_alpha([[1, 2, 3]]) is None
    assert cronbach_alpha([[1], [2]]) is None


def test_inconsistent_items_give_a_low_alpha():
    # the second item runs against the first: item variances 2.5 + 2.5, totals all 6
    assert cronbach_alpha([[1, 5], [2, 4], [3, 3], [4, 2], [5, 1]]) is None
    low = cronbach_alpha([[1, 4], [2, 5], [3, 1], [4, 3], [5, 2]])
    assert low is not None and low < 0  # the items disagree more than they agree


def test_percentile_is_mid_rank_in_the_norm_group():
    group = {10.0: 5, 12.0: 10, 15.0: 10, 20.0: 5}  # 30 completions
    assert percentile_rank(group, 15) == pytest.approx(100 * (15 + 5) / 30)  # 66.67
    assert percentile_rank(group, 10) == pytest.approx(100 * 2.5 / 30)  # 8.33
    assert percentile_rank(group, 13) == pytest.approx(50.0)
    assert percentile_rank(group, 25) == 100.0
    assert norm_percentile(group, 15, 30).value == 66.7


def test_no_percentile_below_the_minimum_group():
    group = {10.0: 5, 12.0: 10, 15.0: 14}  # 29 completions
    percentile = norm_percentile(group, 12, 30)
    assert percentile.value is None and percentile.group_size == 29
    assert percentile.reason == ("the norm group has 29 completion(s); percentiles need at "
                                 "least 30")


DEFINITION = parse_instrument("""
instrument_id: pair
version: 1
title: Two scales
response_scales:
  default: {options: [{value: 1, label: a}, {value: 2, label: b}, {value: 3, label: c},
                      {value: 4, label: d}, {value: 5, label: e}]}
scales:
  - {scale_id: focus, label: Focus, scoring: {rule: mean}}
  - {scale_id: single, label: Single, scoring: {rule: sum}}
items:
  - {item_id: f1, text: one, scale: focus, keying: "+"}
  - {item_id: f2, text: two, scale: focus, keying: "+"}
  - {item_id: f3, text: three, scale: focus, keying: "-"}
  - {item_id: s1, text: four, scale: single, keying: "+"}
""")


def test_scale_reliability_uses_keyed_answers_and_flags_low_alpha():
    # f3 is reverse keyed: answers 6 - x reproduce the worked example's third column
    sheets = [{"f1": a, "f2": b, "f3": 6 - c, "s1": 3} for a, b, c in WORKED]
    focus, single = scale_reliability(DEFINITION, sheets, threshold=0.70)
    assert focus.alpha == pytest.approx(0.9375) and not focus.flagged
    assert [item.item_id for item in focus.item_total] == ["f1", "f2", "f3"]
    assert focus.item_total[0].corrected_item_total == pytest.approx(0.915, abs=1e-3)
    assert single.alpha is None and "single-item" in (single.note or "")
    strict = scale_reliability(DEFINITION, sheets, threshold=0.95)
    assert strict[0].flagged


def test_incomplete_sheets_are_left_out():
    sheets = [{"f1": 1, "f2": 2}, {"f1": 3, "f2": 3, "f3": 3}]
    focus = scale_reliability(DEFINITION, sheets, threshold=0.7)[0]
    assert focus.respondents == 1 and focus.alpha is None
    assert focus.note == "1 complete response(s); at least 2 are needed"
