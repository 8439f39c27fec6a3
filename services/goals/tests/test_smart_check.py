"""The SMART check: each letter failing alone, its sentences, limits, and the override."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from coaching_goals.domain import (
    GoalStateConflict,
    GoalStatus,
    InvalidGoal,
    Kpi,
    OverrideNotAllowed,
    Relevance,
    RelevanceKind,
    SmartCheckFailed,
    SmartContext,
    SmartLimits,
    activate_goal,
    add_months,
    effective_limits,
    smart_check,
)
from coaching_shared.contracts import Direction, GoalSet
from pydantic import ValidationError

START = date(2026, 1, 1)
LIMITS = SmartLimits()
CONTEXT = SmartContext(development_areas=frozenset({"negotiation", "writing"}),
                       assessment_ids=frozenset({"a-1"}))


def failing(goal, limits=LIMITS, today=START, context=CONTEXT) -> dict[str, str]:
    check = smart_check(goal, limits, today, context)
    return {letter.letter: letter.message for letter in check.letters if not letter.passed}


def test_a_good_goal_passes_every_letter(new_goal):
    check = smart_check(new_goal(), LIMITS, START, CONTEXT)
    assert check.passed and check.failures == []
    assert [letter.criterion for letter in check.letters] == [
        "Specific", "Measurable", "Achievable", "Relevant", "Time-bound"]
    assert check.letters[4].message == "Time-bound: due 2026-04-01, 3 months after the start"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"title": "Renewals"},
     "Specific: the title has 1 word(s); name what will change in at least 3"),
    ({"description": "More renewals."},
     "Specific: the description has 2 word(s); say what will be different, and where, in at "
     "least 8"),
])
def test_specific_fails_alone(new_goal, overrides, message):
    assert failing(new_goal(**overrides)) == {"S": message}


@pytest.mark.parametrize(("kpis", "message"), [
    ([], "Measurable: the goal has no KPI; add one with a baseline and a target"),
    ([Kpi(kpi_id="k", name="Renewals", baseline=10)],
     "Measurable: no KPI has a numeric target"),
    ([Kpi(kpi_id="k", name="Renewals", baseline=10, target=20),
      Kpi(kpi_id="j", name="Referrals", baseline=1)],
     "Measurable: KPI 'Referrals' has no numeric target"),
    ([Kpi(kpi_id="k", name="Renewals", baseline=10, target=10)],
     "Measurable: KPI 'Renewals' has its target equal to its baseline (10), so no change can "
     "be measured"),
    ([Kpi(kpi_id="k", name="Defects", baseline=10, target=15, direction=Direction.DOWN)],
     "Measurable: KPI 'Defects' should go down, but its target 15 is above its baseline 10"),
    ([Kpi(kpi_id="k", name="Calls", baseline=10, target=8)],
     "Measurable: KPI 'Calls' should go up, but its target 8 is below its baseline 10"),
])
def test_measurable_fails_alone(new_goal, kpis, message):
    assert failing(new_goal(kpis=kpis)) == {"M": message}


def test_achievable_fails_alone_for_a_steep_change(new_goal):
    goal = new_goal(kpis=[Kpi(kpi_id="k", name="Renewals", baseline=10, target=40)],
                    due_date=START + timedelta(days=14))
    # 300% asked; 14 days allow 50% x 14 / 30.44 = 23%
    assert failing(goal) == {"A": "Achievable: the target of 'Renewals' asks for a 300% "
                                  "change in 2 weeks; at most 23% fits that time"}


def test_achievable_caps_long_goals_at_the_total_limit(new_goal):
    goal = new_goal(kpis=[Kpi(kpi_id="k", name="Revenue", baseline=10, target=35)],
                    due_date=add_months(START, 12))
    # 250% in a year: 50% a month would allow 600%, the total limit allows 200%.
    assert set(failing(goal)) == {"A"}
    assert "at most 200%" in failing(goal)["A"]


def test_achievable_judges_no_relative_change_from_a_zero_baseline(new_goal):
    goal = new_goal(kpis=[Kpi(kpi_id="k", name="Talks given", baseline=0, target=50)],
                    due_date=START + timedelta(days=14))
    assert failing(goal) == {}


@pytest.mark.parametrize(("relevance", "message"), [
    (None, "Relevant: link the goal to a development area, an aspiration or an assessment "
           "result"),
    (Relevance(kind=RelevanceKind.DEVELOPMENT_AREA, ref="chess"),
     "Relevant: 'chess' is not among the client's development areas (negotiation, writing)"),
    (Relevance(kind=RelevanceKind.ASSESSMENT_RESULT, ref="a-9"),
     "Relevant: the client has no assessment result 'a-9'"),
    (Relevance(kind=RelevanceKind.ASPIRATION, ref="promotion"),
     "Relevant: describe the aspiration the goal serves in 3 words or more"),
])
def test_relevant_fails_alone(new_goal, relevance, message):
    assert failing(new_goal(relevant_to=relevance)) == {"R": message}


def test_relevant_passes_for_known_links_and_areas_of_clients_without_assessments(new_goal):
    for relevance in (Relevance(kind=RelevanceKind.ASSESSMENT_RESULT, ref="a-1"),
                      Relevance(kind=RelevanceKind.ASPIRATION, ref="lead a sales team")):
        assert failing(new_goal(relevant_to=relevance)) == {}
    assert failing(new_goal(), context=SmartContext()) == {}


@pytest.mark.parametrize(("dates", "today", "message"), [
    ({"due_date": START + timedelta(days=913)}, START,
     "Time-bound: due date is 30 months away; the program allows at most 12"),
    ({"due_date": START + timedelta(days=60)}, START + timedelta(days=61),
     "Time-bound: the due date 2026-03-02 has already passed"),
    ({"due_date": START - timedelta(days=1)}, START,
     "Time-bound: the due date must come after the start date"),
    ({"due_date": None}, START, "Time-bound: set a start and a due date"),
])
def test_time_bound_fails_alone(new_goal, dates, today, message):
    # From a zero baseline no relative change is judged, so Achievable stays out of it.
    goal = new_goal(kpis=[Kpi(kpi_id="k", name="Talks", baseline=0, target=2)], **dates)
    assert failing(goal, today=today) == {"T": message}


def test_without_a_valid_period_achievable_cannot_be_judged(new_goal):
    assert failing(new_goal(due_date=None)) == {
        "A": "Achievable: cannot be judged without a start and a due date",
        "T": "Time-bound: set a start and a due date"}


def test_too_short_a_goal_fails_time_bound(new_goal):
    goal = new_goal(kpis=[Kpi(kpi_id="k", name="Talks", baseline=0, target=2)],
                    due_date=START + timedelta(days=5))
    assert failing(goal) == {"T": "Time-bound: the goal lasts 5 days; the program asks for at "
                                  "least 14 days"}


def test_a_zero_length_period_fails_time_bound_and_any_change_is_too_steep(new_goal):
    goal = new_goal(due_date=START)
    assert failing(goal) == {
        "A": "Achievable: the target of 'Renewals' asks for a 100% change in 0 days; at most "
             "0% fits that time",
        "T": "Time-bound: the due date must come after the start date"}


def test_limits_are_the_tenants(new_goal):
    long_goal = new_goal(due_date=add_months(START, 18))
    assert set(failing(long_goal)) == {"T"}
    generous = effective_limits(LIMITS, {"max_duration_months": 24, "unknown": 1})
    assert generous.max_duration_months == 24 and generous.min_duration_days == 14
    assert failing(long_goal, limits=generous) == {}
    strict = SmartLimits(min_title_words=6)
    assert set(failing(new_goal(), limits=strict)) == {"S"}
    with pytest.raises(ValidationError):
        SmartLimits(max_duration_months=1, min_duration_days=60)


def test_add_months_keeps_the_day_or_takes_the_months_last():
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2026, 11, 15), 3) == date(2027, 2, 15)


# -- activation and the override -----------------------------------------------------------

def activate(goal, *, override_reason=None, by_coach=False):
    check = smart_check(goal, LIMITS, START, CONTEXT)
    return activate_goal(goal, check, by="coach-1" if by_coach else "c-1", by_coach=by_coach,
                         override_reason=override_reason, coach_id="coach-1",
                         at=goal.created_at, at_risk_margin=15)


def test_a_passing_goal_becomes_active_with_goal_set(new_goal):
    outcome = activate(new_goal(status=GoalStatus.SUGGESTED))
    assert outcome.goal.status is GoalStatus.ACTIVE and outcome.goal.smart_override is None
    [event] = outcome.events
    assert isinstance(event, GoalSet)
    assert event.relevant_to == "development_area:negotiation"
    assert event.coach_id == "coach-1" and event.smart_override_reason is None
    assert [k.kpi_id for k in event.kpis] == ["renewals"]


def test_a_failing_goal_is_refused_without_an_override(new_goal):
    with pytest.raises(SmartCheckFailed) as refused:
        activate(new_goal(status=GoalStatus.DRAFT, title="Renewals"))
    assert [letter.letter for letter in refused.value.check.failures] == ["S"]


def test_only_the_coach_may_override_and_the_reason_is_recorded(new_goal):
    goal = new_goal(status=GoalStatus.DRAFT, title="Renewals")
    with pytest.raises(OverrideNotAllowed):
        activate(goal, override_reason="the client knows what it means")
    outcome = activate(goal, override_reason="agreed wording with the client", by_coach=True)
    assert outcome.goal.status is GoalStatus.ACTIVE
    assert outcome.goal.smart_override.failed_letters == ["S"]
    assert outcome.goal.smart_override.by == "coach-1"
    assert outcome.events[0].smart_override_reason == "agreed wording with the client"


def test_an_override_cannot_activate_a_goal_without_targets_or_dates(new_goal):
    no_target = new_goal(status=GoalStatus.DRAFT,
                         kpis=[Kpi(kpi_id="k", name="Renewals", baseline=10)])
    with pytest.raises(InvalidGoal, match="needs a numeric target"):
        activate(no_target, override_reason="we will agree the target later", by_coach=True)
    no_dates = new_goal(status=GoalStatus.DRAFT, due_date=None)
    with pytest.raises(InvalidGoal, match="start date and a due date"):
        activate(no_dates, override_reason="dates follow the budget", by_coach=True)


def test_only_suggestions_and_drafts_are_activated(new_goal):
    for status in (GoalStatus.ACTIVE, GoalStatus.ACHIEVED, GoalStatus.ABANDONED):
        with pytest.raises(GoalStateConflict):
            activate(new_goal(status=status))
