"""Progress reviews, at-risk signals, program metrics and the reflection prompt library."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from coaching_feedback.domain import (
    CheckInOutcome,
    RiskReason,
    completion_rate,
    elapsed_share,
    kpi_progress,
    local_month_before,
    month_bounds,
    month_start_after,
    newly_at_risk,
    review_due,
    review_progress,
    risk_reasons,
    trend,
)
from coaching_feedback.prompts import (
    PROMPTS,
    PromptContext,
    checkin_context,
    choose_prompts,
    prompts_for,
)
from coaching_shared.contracts import Direction, KpiSpec

START = datetime(2026, 1, 5, 9, tzinfo=UTC)
CALLS = KpiSpec(kpi_id="calls", name="Sales calls", baseline=10, target=30,
                direction=Direction.UP)
DEFECTS = KpiSpec(kpi_id="defects", name="Defects", baseline=20, target=5,
                  direction=Direction.DOWN)


def done(period: int, confidence: int, blockers: tuple[str, ...] = (),
         **kpis: float) -> CheckInOutcome:
    return CheckInOutcome(period=period, due_at=START + timedelta(weeks=period - 1),
                          completed=True, confidence=confidence, kpi_values=kpis,
                          blockers=blockers)


def missed(period: int) -> CheckInOutcome:
    return CheckInOutcome(period=period, due_at=START + timedelta(weeks=period - 1),
                          completed=False)


def test_review_computes_adherence_trends_and_recurring_blockers():
    review = review_progress([
        done(1, 2, ("Too many meetings",), calls=10),
        missed(2),
        done(3, 3, ("too many  meetings", "travel"), calls=14),
        done(4, 4, ("Travel",), calls=18),
    ])
    assert review.adherence == 0.75
    assert (review.completed, review.due) == (3, 4)
    assert review.confidence_trend == 1.0
    assert review.kpi_trends == {"calls": 4.0}
    assert review.recurring_blockers == ["too many meetings", "travel"]
    assert review.period_start == START and review.period_end == START + timedelta(weeks=3)


def test_review_of_only_missed_check_ins_has_no_trends():
    review = review_progress([missed(1), missed(2)])
    assert review.adherence == 0 and review.confidence_trend is None and review.kpi_trends == {}


def test_review_needs_check_ins():
    with pytest.raises(ValueError):
        review_progress([])


def test_trend_is_the_least_squares_slope():
    assert trend([1]) is None
    assert trend([1, 2, 3]) == 1.0
    assert trend([5, 3, 1]) == -2.0
    assert trend([2, 2, 2]) == 0.0


def test_a_review_is_due_every_n_check_ins():
    assert [p for p in range(1, 13) if review_due(p, 4)] == [4, 8, 12]
    assert not review_due(4, 0)


def test_two_missed_check_ins_in_a_row_put_a_client_at_risk():
    reasons = risk_reasons([done(1, 4), missed(2), missed(3)], [], date(2026, 1, 1),
                           date(2026, 12, 31))
    assert reasons == [RiskReason.MISSED_TWICE]
    assert risk_reasons([missed(1), done(2, 4), missed(3)], [], date(2026, 1, 1),
                        date(2026, 12, 31)) == []


def test_a_confidence_drop_of_two_points_puts_a_client_at_risk():
    year = (date(2026, 1, 1), date(2026, 12, 31))
    assert risk_reasons([done(1, 5), done(2, 4), done(3, 3)], [], *year) == [
        RiskReason.CONFIDENCE_DROP]
    assert risk_reasons([done(1, 4), done(2, 3)], [], *year) == []


def test_a_kpi_behind_its_schedule_or_below_baseline_is_off_track():
    # Half of the goal's time has passed by the check-in on 2 July.
    start, due = date(2026, 1, 1), date(2026, 12, 31)
    july = CheckInOutcome(period=26, due_at=datetime(2026, 7, 2, tzinfo=UTC), completed=True,
                          confidence=4, kpi_values={"calls": 12})
    assert risk_reasons([july], [CALLS], start, due) == [RiskReason.KPI_OFF_TRACK]
    on_track = CheckInOutcome(period=26, due_at=datetime(2026, 7, 2, tzinfo=UTC),
                              completed=True, confidence=4, kpi_values={"calls": 18})
    assert risk_reasons([on_track], [CALLS], start, due) == []
    # Early on, a reading worse than the baseline is already a signal.
    worse = CheckInOutcome(period=1, due_at=datetime(2026, 1, 8, tzinfo=UTC), completed=True,
                           confidence=4, kpi_values={"defects": 25})
    assert risk_reasons([worse], [DEFECTS], start, due) == [RiskReason.KPI_OFF_TRACK]


def test_kpi_progress_follows_the_direction_of_the_kpi():
    assert kpi_progress(CALLS, 20) == 0.5
    assert kpi_progress(DEFECTS, 12.5) == 0.5
    assert kpi_progress(DEFECTS, 25) < 0
    assert kpi_progress(CALLS, 50) == 1.0


def test_elapsed_share_of_the_goal_time():
    assert elapsed_share(date(2026, 1, 1), date(2026, 1, 11),
                         datetime(2026, 1, 6, tzinfo=UTC)) == 0.5
    assert elapsed_share(date(2026, 1, 1), date(2026, 1, 11),
                         datetime(2027, 1, 1, tzinfo=UTC)) == 1.0
    assert elapsed_share(date(2026, 1, 1), date(2026, 1, 1),
                         datetime(2025, 1, 1, tzinfo=UTC)) == 1.0


def test_program_metrics_maths():
    assert completion_rate(3, 1) == 0.75
    assert completion_rate(0, 0) is None
    assert month_bounds(datetime(2026, 2, 14, 13, tzinfo=UTC)) == (
        datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    assert month_bounds(datetime(2026, 12, 31, tzinfo=UTC))[1] == datetime(2027, 1, 1,
                                                                           tzinfo=UTC)


def test_every_context_has_prompts_and_ids_are_unique():
    for context in PromptContext:
        assert len(prompts_for(context)) >= 3
    assert len(PROMPTS) == sum(len(prompts_for(c)) for c in PromptContext)


def test_prompts_are_chosen_by_context_and_rotate():
    first = choose_prompts(PromptContext.REGULAR, 2)
    second = choose_prompts(PromptContext.REGULAR, 3)
    assert len(first) == 2 and all(p.context is PromptContext.REGULAR for p in first)
    assert first != second
    assert choose_prompts(PromptContext.REGULAR, 2) == first  # deterministic


def test_the_check_in_context_follows_the_journey():
    assert checkin_context(1, previous_missed=False) is PromptContext.FIRST_CHECKIN
    assert checkin_context(5, previous_missed=True) is PromptContext.AFTER_MISSED
    assert checkin_context(5, previous_missed=False) is PromptContext.REGULAR


def test_a_client_is_flagged_on_becoming_at_risk_not_while_the_same_reasons_stand():
    assert newly_at_risk([], ["missed_twice"]) == ["missed_twice"]
    assert newly_at_risk(["missed_twice"], ["missed_twice"]) == []
    assert newly_at_risk(["missed_twice"], ["missed_twice", "kpi_off_track"]) == [
        "kpi_off_track"]
    # A reason going away is no news for the coach; it coming back after recovery is.
    assert newly_at_risk(["missed_twice", "kpi_off_track"], ["kpi_off_track"]) == []
    assert newly_at_risk([], []) == []


def test_monthly_reviews_fall_due_at_the_local_month_end():
    june = datetime(2026, 6, 3, 12, tzinfo=UTC)
    # Midnight of 1 July in Berlin is 22:00 UTC the day before (summer time).
    assert month_start_after(june, "Europe/Berlin") == datetime(2026, 6, 30, 22, tzinfo=UTC)
    assert month_start_after(june, "America/New_York") == datetime(2026, 7, 1, 4, tzinfo=UTC)
    # Just after a boundary counts for the new month; December rolls over the year.
    assert month_start_after(datetime(2026, 6, 30, 22, 1, tzinfo=UTC), "Europe/Berlin") == \
        datetime(2026, 7, 31, 22, tzinfo=UTC)
    assert month_start_after(datetime(2026, 12, 15, tzinfo=UTC), "UTC") == \
        datetime(2027, 1, 1, tzinfo=UTC)


def test_a_monthly_review_covers_the_local_month_across_a_daylight_saving_change():
    # March 2026 in Berlin starts in winter time (UTC+1) and ends in summer time (UTC+2).
    label, start = local_month_before(datetime(2026, 3, 31, 22, tzinfo=UTC), "Europe/Berlin")
    assert label == "2026-03" and start == datetime(2026, 2, 28, 23, tzinfo=UTC)
    label, start = local_month_before(datetime(2027, 1, 1, tzinfo=UTC), "UTC")
    assert label == "2026-12" and start == datetime(2026, 12, 1, tzinfo=UTC)
