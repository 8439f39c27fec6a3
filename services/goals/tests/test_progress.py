"""Progress maths: KPIs rising and falling, clamping, weights, time elapsed, roll-up."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from coaching_goals.domain import (
    ChildLink,
    Direction,
    GoalStateConflict,
    GoalStatus,
    Kpi,
    Measurement,
    expected_progress,
    goal_progress,
    kpi_progress,
    progress_status,
    record_child_progress,
    record_measurements,
    weighted_progress,
)
from coaching_shared.contracts import GoalAchieved, GoalProgressUpdated

UP, DOWN = Direction.UP, Direction.DOWN


@pytest.mark.parametrize(("baseline", "target", "direction", "value", "expected"), [
    (10, 20, UP, 15, 50.0),
    (10, 20, UP, 12.5, 25.0),
    (10, 20, UP, 20, 100.0),
    (10, 20, UP, 25, 100.0),     # overshoot clamped
    (10, 20, UP, 5, 0.0),        # the wrong way clamped
    (0, 3, UP, 1, 33.33),
    (-10, 10, UP, 0, 50.0),
    (50, 30, DOWN, 40, 50.0),    # falling KPI, e.g. defects
    (50, 30, DOWN, 35, 75.0),
    (50, 30, DOWN, 30, 100.0),
    (50, 30, DOWN, 20, 100.0),   # below the target: clamped
    (50, 30, DOWN, 60, 0.0),     # rose instead of fell
    (10, 20, UP, None, 0.0),     # not measured yet
    (10, None, UP, 15, 0.0),     # no target yet
])
def test_kpi_progress_from_baseline_to_target(baseline, target, direction, value, expected):
    assert kpi_progress(baseline, target, direction, value) == expected


@pytest.mark.parametrize(("direction", "value", "expected"), [
    (UP, 5, 100.0), (UP, 6, 100.0), (UP, 4, 0.0),
    (DOWN, 5, 100.0), (DOWN, 4, 100.0), (DOWN, 6, 0.0),
])
def test_a_kpi_whose_baseline_is_its_target_is_done_once_held(direction, value, expected):
    assert kpi_progress(5, 5, direction, value) == expected


def test_weighted_progress():
    assert weighted_progress([(50, 1), (100, 3)]) == 87.5
    assert weighted_progress([(30, 2), (60, 1)]) == 40.0
    assert weighted_progress([]) == 0.0
    assert weighted_progress([(80, 0)]) == 0.0  # nothing weighs


def test_goal_progress_weighs_kpis_and_rolls_up_children():
    kpis = [Kpi(kpi_id="a", name="a", baseline=0, target=10, progress_percent=50, weight=1)]
    children = [
        ChildLink(goal_id="achieved", weight=1, progress_percent=80,
                  status=GoalStatus.ACHIEVED),  # counts as 100
        ChildLink(goal_id="dropped", weight=5, progress_percent=90,
                  status=GoalStatus.ABANDONED),  # no longer counts
        ChildLink(goal_id="running", weight=2, progress_percent=20, status=GoalStatus.AT_RISK),
    ]
    # (50*1 + 100*1 + 20*2) / 4
    assert goal_progress(kpis, children) == 47.5
    assert goal_progress(kpis) == 50.0
    assert goal_progress([]) == 0.0


@pytest.mark.parametrize(("as_of", "expected"), [
    (date(2025, 12, 1), 0.0),     # before the start
    (date(2026, 1, 1), 0.0),
    (date(2026, 1, 31), 33.33),   # 30 of 90 days
    (date(2026, 2, 15), 50.0),    # 45 of 90 days
    (date(2026, 4, 1), 100.0),
    (date(2026, 6, 1), 100.0),    # after the due date
])
def test_expected_progress_is_the_share_of_time_elapsed(as_of, expected):
    assert expected_progress(date(2026, 1, 1), date(2026, 4, 1), as_of) == expected


def test_expected_progress_of_a_zero_length_period_and_without_dates():
    day = date(2026, 3, 1)
    assert expected_progress(day, day, day - timedelta(days=1)) == 0.0
    assert expected_progress(day, day, day) == 100.0
    assert expected_progress(None, day, day) == 0.0


@pytest.mark.parametrize(("status", "progress", "expected", "result"), [
    (GoalStatus.ACTIVE, 100.0, 50.0, GoalStatus.ACHIEVED),
    (GoalStatus.ACTIVE, 34.99, 50.0, GoalStatus.AT_RISK),   # lags by more than 15
    (GoalStatus.ACTIVE, 35.0, 50.0, GoalStatus.ACTIVE),     # lags by exactly the margin
    (GoalStatus.AT_RISK, 60.0, 50.0, GoalStatus.ACTIVE),    # recovered
    (GoalStatus.ACHIEVED, 10.0, 90.0, GoalStatus.ACHIEVED),  # final
    (GoalStatus.ABANDONED, 100.0, 0.0, GoalStatus.ABANDONED),
    (GoalStatus.DRAFT, 100.0, 0.0, GoalStatus.DRAFT),
])
def test_progress_status(status, progress, expected, result):
    assert progress_status(status, progress, expected, at_risk_margin=15) == result


def reading(value: float, at: datetime, kpi_id: str = "renewals",
            measurement_id: str | None = None) -> Measurement:
    return Measurement(measurement_id=measurement_id or f"m-{value}-{at.isoformat()}",
                       kpi_id=kpi_id, value=value, measured_at=at, source="api")


FEB_15 = datetime(2026, 2, 15, 9, tzinfo=UTC)  # half-way through START..DUE


def test_a_reading_moves_progress_and_raises_progress_updated(new_goal):
    outcome = record_measurements(new_goal(), [reading(15, FEB_15)], at_risk_margin=15,
                                  kept=100)
    goal = outcome.goal
    assert goal.kpis[0].latest_value == 15 and goal.kpis[0].progress_percent == 50.0
    assert (goal.progress_percent, goal.expected_percent) == (50.0, 50.0)
    assert goal.status is GoalStatus.ACTIVE
    [event] = outcome.events
    assert isinstance(event, GoalProgressUpdated)
    assert (event.progress_percent, event.expected_percent, event.status) == (
        50.0, 50.0, "active")
    assert event.measured_at == FEB_15 and event.previous_status == "active"


def test_lagging_progress_puts_the_goal_at_risk(new_goal):
    outcome = record_measurements(new_goal(), [reading(13, FEB_15)], at_risk_margin=15,
                                  kept=100)
    assert outcome.goal.progress_percent == 30.0
    assert outcome.goal.status is GoalStatus.AT_RISK
    assert outcome.events[0].status == "at_risk"


def test_reaching_the_target_achieves_the_goal_once(new_goal):
    outcome = record_measurements(new_goal(), [reading(22, FEB_15)], at_risk_margin=15,
                                  kept=100)
    assert outcome.goal.status is GoalStatus.ACHIEVED
    assert outcome.goal.achieved_at == FEB_15
    assert [type(e) for e in outcome.events] == [GoalProgressUpdated, GoalAchieved]
    assert outcome.events[1].achieved_at == FEB_15
    later = record_measurements(outcome.goal, [reading(25, FEB_15 + timedelta(days=1))],
                                at_risk_margin=15, kept=100)
    assert later.goal.status is GoalStatus.ACHIEVED
    assert [type(e) for e in later.events] == [GoalProgressUpdated]


def test_a_falling_kpi_is_achieved_at_or_below_its_target(new_goal):
    goal = new_goal(kpis=[Kpi(kpi_id="defects", name="Defects", baseline=50, target=30,
                              direction=DOWN)])
    half = record_measurements(goal, [reading(40, FEB_15, "defects")], at_risk_margin=15,
                               kept=100)
    assert half.goal.progress_percent == 50.0
    done = record_measurements(half.goal, [reading(28, FEB_15 + timedelta(hours=1),
                                                   "defects")], at_risk_margin=15, kept=100)
    assert done.goal.status is GoalStatus.ACHIEVED


def test_goal_progress_weighs_its_kpis(new_goal):
    goal = new_goal(kpis=[Kpi(kpi_id="a", name="A", baseline=0, target=10, weight=3),
                          Kpi(kpi_id="b", name="B", baseline=100, target=50,
                              direction=DOWN, weight=1)])
    outcome = record_measurements(goal, [reading(5, FEB_15, "a"), reading(50, FEB_15, "b")],
                                  at_risk_margin=15, kept=100)
    # a: 50% (weight 3), b: 100% (weight 1) -> 62.5%
    assert outcome.goal.progress_percent == 62.5


def test_duplicate_late_and_unknown_readings(new_goal):
    first = record_measurements(new_goal(), [reading(15, FEB_15, measurement_id="m-1")],
                                at_risk_margin=15, kept=100)
    again = record_measurements(first.goal, [reading(15, FEB_15, measurement_id="m-1")],
                                at_risk_margin=15, kept=100)
    assert again.goal == first.goal and again.events == []
    assert again.ignored == ["renewals: already recorded"]
    older = record_measurements(first.goal, [reading(11, FEB_15 - timedelta(days=3))],
                                at_risk_margin=15, kept=100)
    assert older.goal.kpis[0].latest_value == 15  # the newer reading still counts
    assert len(older.goal.measurements) == 2
    unknown = record_measurements(first.goal, [reading(1, FEB_15, kpi_id="nope")],
                                  at_risk_margin=15, kept=100)
    assert unknown.ignored == ["nope: the goal has no such KPI"] and unknown.events == []


def test_only_the_newest_measurements_are_kept(new_goal):
    readings = [reading(10 + n / 10, FEB_15 + timedelta(hours=n)) for n in range(5)]
    outcome = record_measurements(new_goal(), readings, at_risk_margin=15, kept=3)
    assert [m.value for m in outcome.goal.measurements] == [10.2, 10.3, 10.4]
    assert outcome.goal.kpis[0].latest_value == 10.4


def test_goals_not_active_take_no_measurements(new_goal):
    for status in (GoalStatus.DRAFT, GoalStatus.SUGGESTED, GoalStatus.ABANDONED):
        with pytest.raises(GoalStateConflict):
            record_measurements(new_goal(status=status), [reading(15, FEB_15)],
                                at_risk_margin=15, kept=100)


def test_child_progress_rolls_up_into_an_active_parent(new_goal):
    parent = new_goal(goal_id="parent")
    child = new_goal(goal_id="child", parent_goal_id="parent", weight=3,
                     status=GoalStatus.ACHIEVED, progress_percent=100.0)
    outcome = record_child_progress(parent, child, at=FEB_15, at_risk_margin=15)
    # parent KPI not measured (0%, weight 1), achieved child (100%, weight 3)
    assert outcome.goal.progress_percent == 75.0
    assert outcome.goal.children == [ChildLink(goal_id="child", weight=3,
                                               progress_percent=100, status="achieved")]
    assert [type(e) for e in outcome.events] == [GoalProgressUpdated]
    unchanged = record_child_progress(outcome.goal, child, at=FEB_15, at_risk_margin=15)
    assert unchanged.goal == outcome.goal and unchanged.events == []


def test_abandoning_the_only_child_drops_it_from_the_roll_up(new_goal):
    parent = new_goal(goal_id="parent")
    child = new_goal(goal_id="child", parent_goal_id="parent", progress_percent=80.0)
    with_child = record_child_progress(parent, child, at=FEB_15, at_risk_margin=50).goal
    assert with_child.progress_percent == 40.0
    dropped = record_child_progress(
        with_child, child.model_copy(update={"status": GoalStatus.ABANDONED}), at=FEB_15,
        at_risk_margin=50).goal
    assert dropped.progress_percent == 0.0


def test_children_of_a_parent_not_active_yet_are_kept_quietly(new_goal):
    parent = new_goal(goal_id="parent", status=GoalStatus.DRAFT)
    child = new_goal(goal_id="child", parent_goal_id="parent", progress_percent=40.0)
    outcome = record_child_progress(parent, child, at=FEB_15, at_risk_margin=15)
    assert len(outcome.goal.children) == 1 and outcome.events == []
    draft_child = new_goal(goal_id="draft", status=GoalStatus.DRAFT)
    assert record_child_progress(parent, draft_child, at=FEB_15,
                                 at_risk_margin=15).goal.children == []
