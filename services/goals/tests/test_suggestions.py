"""Suggestions from assessments: the template library, levers, robustness to unknown scales."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from coaching_goals.domain import (
    TEMPLATES,
    Direction,
    GoalStatus,
    SmartContext,
    SmartLimits,
    SuggestionRules,
    find_template,
    instrument_family,
    scale_key,
    smart_check,
    suggest_goals,
    suggestion_event,
)

AT = datetime(2026, 3, 2, 15, tzinfo=UTC)
RULES = SuggestionRules(max_goals=3, weeks=12, score_gain_share=0.2)


def score(scale_id: str, value: float, label: str | None = None, minimum: float = 1,
          maximum: float = 5) -> dict[str, Any]:
    return {"scale_id": scale_id, "label": label or scale_id.replace("_", " ").title(),
            "score": value, "minimum": minimum, "maximum": maximum}


def assessment(instrument: str, scores: list[dict], development_areas: list[str],
               strengths: list[str] = (), assessment_id: str = "a-1") -> dict[str, Any]:
    return {"assessment_id": assessment_id, "instrument_id": instrument, "scores": scores,
            "development_areas": development_areas, "strengths": list(strengths)}


def suggest(basis: dict, skip: set[str] = frozenset(), rules: SuggestionRules = RULES):
    return suggest_goals(basis, tenant_id="acme", client_id="c-1", skip_areas=set(skip),
                         rules=rules, at=AT)


@pytest.mark.parametrize(("raw", "key"), [
    ("Active Listening", "active_listening"), ("critical-thinking", "critical_thinking"),
    ("  Time  Management ", "time_management"), ("O*NET:Writing", "o_net_writing")])
def test_scale_keys(raw, key):
    assert scale_key(raw) == key


@pytest.mark.parametrize(("instrument", "family"), [
    ("big-five", "big_five"), ("IPIP-50", "big_five"), ("riasec", "riasec"),
    ("holland-codes", "riasec"), ("skills", "skills"), ("onet-skills-v2", "skills"),
    ("acme-culture-fit", None)])
def test_instrument_families(instrument, family):
    assert instrument_family(instrument) == family


def test_templates_are_found_by_framework_and_letters_by_family():
    assert find_template("skills", "Critical-Thinking").template_id == "onet.critical_thinking"
    assert find_template("big-five", "C").template_id == "big_five.conscientiousness"
    assert find_template("riasec", "C").template_id == "riasec.conventional"
    assert find_template("riasec", "social").template_id == "riasec.social"
    assert find_template("big-five", "Extroversion").template_id == "big_five.extraversion"
    assert find_template("big-five", "intellect").template_id == "big_five.openness"
    assert find_template("acme", "c") is None
    assert find_template("acme", "domain_fluency") is None


def test_the_library_covers_the_frameworks():
    families = {template_id.split(".")[0] for template_id in
                (t.template_id for t in TEMPLATES.values())}
    assert families == {"onet", "big_five", "riasec"}
    assert sum(t.template_id.startswith("onet.") for t in TEMPLATES.values()) == 35
    for factor in ("openness", "conscientiousness", "extraversion", "agreeableness",
                   "neuroticism"):
        assert factor in TEMPLATES
    for area in ("realistic", "investigative", "artistic", "social", "enterprising",
                 "conventional"):
        assert TEMPLATES[area].score_direction is None  # interests are explored, not raised
    for template in TEMPLATES.values():
        assert len(template.actions) >= 3 and template.lever
        assert all(1 <= impact <= 5 and 1 <= effort <= 5 for _, impact, effort in
                   template.actions)


@pytest.mark.parametrize("key", sorted(TEMPLATES))
def test_every_template_drafts_a_goal_that_passes_the_smart_check(key):
    basis = assessment("skills", [score(key, 2.0)], [key])
    [goal] = suggest(basis)
    context = SmartContext(development_areas=frozenset({key}))
    check = smart_check(goal, SmartLimits(), AT.date(), context)
    assert check.passed, [f.message for f in check.failures]


def test_weakest_areas_first_capped_and_skipping_areas_with_open_goals():
    basis = assessment("skills", [score("writing", 2.5), score("speaking", 1.5),
                                  score("negotiation", 2.0), score("monitoring", 3.0)],
                       ["writing", "speaking", "negotiation", "monitoring", "speaking"])
    assert [g.development_area for g in suggest(basis)] == ["speaking", "negotiation",
                                                            "writing"]
    assert [g.development_area for g in suggest(basis, skip={"negotiation"})] == [
        "speaking", "writing", "monitoring"]
    assert suggest(basis, rules=SuggestionRules(max_goals=0)) == []
    assert suggest(assessment("skills", [], [])) == []


def test_an_unknown_scale_gets_the_generic_template_with_its_label():
    basis = assessment("acme-culture", [score("acme_dx", 1.0, label="Customer empathy")],
                       ["acme_dx", "no_score_given"])
    first, second = suggest(basis)
    assert first.template_id == second.template_id == "generic"
    assert first.title == "Strengthen your Customer empathy"
    assert second.title == "Strengthen your no score given"
    assert [k.kpi_id for k in first.kpis] == ["kpi-practice", "kpi-score"]
    assert [k.kpi_id for k in second.kpis] == ["kpi-practice"]  # no score to move


def test_a_suggestion_is_a_complete_draft():
    basis = assessment("skills", [score("negotiation", 2.0), score("writing", 4.8),
                                  score("speaking", 4.2)],
                       ["negotiation"], strengths=["speaking", "writing"])
    [goal] = suggest(basis)
    assert goal.status is GoalStatus.SUGGESTED
    assert goal.start_date == date(2026, 3, 2)
    assert goal.due_date == date(2026, 3, 2) + timedelta(weeks=12)
    assert goal.relevant_to.label() == "development_area:negotiation"
    assert goal.source_assessment_id == "a-1" and goal.template_id == "onet.negotiation"
    # Strengths as levers, strongest first, each with its own action.
    assert goal.levers == ["writing", "speaking"]
    assert goal.actions[-2].title == TEMPLATES["writing"].lever
    assert goal.actions[-1].title == TEMPLATES["speaking"].lever
    score_kpi = goal.kpis[1]
    # 2.0 on 1-5 plus a fifth of the range (0.8)
    assert (score_kpi.baseline, score_kpi.target, score_kpi.direction) == (2.0, 2.8,
                                                                           Direction.UP)


def test_neuroticism_aims_down_and_emotional_stability_up():
    [neuro] = suggest(assessment("big-five", [score("N", 4.5, "Neuroticism")], ["N"]))
    assert neuro.template_id == "big_five.neuroticism"
    assert (neuro.kpis[1].target, neuro.kpis[1].direction) == (3.7, Direction.DOWN)
    [stable] = suggest(assessment("big-five", [score("emotional_stability", 1.5)],
                                  ["emotional_stability"]))
    assert (stable.kpis[1].target, stable.kpis[1].direction) == (2.3, Direction.UP)


def test_a_score_at_the_end_of_its_scale_and_interests_get_no_score_kpi():
    [maxed] = suggest(assessment("skills", [score("writing", 5.0)], ["writing"]))
    assert [k.kpi_id for k in maxed.kpis] == ["kpi-practice"]
    [interest] = suggest(assessment("riasec", [score("R", 1.2, "Realistic")], ["R"],
                                    strengths=["I"]))
    assert interest.template_id == "riasec.realistic"
    assert [k.kpi_id for k in interest.kpis] == ["kpi-practice"]
    assert interest.actions[-1].title == TEMPLATES["investigative"].lever


def test_an_odd_scale_range_does_not_break_the_draft():
    basis = assessment("acme", [score("x", 3, minimum=3, maximum=3)], ["x"], strengths=["y"])
    [goal] = suggest(basis)
    assert goal.template_id == "generic" and [k.kpi_id for k in goal.kpis] == ["kpi-practice"]
    assert "Put your y to work" in goal.actions[-1].title


def test_the_same_assessment_always_drafts_the_same_goals():
    basis = assessment("skills", [score("writing", 2.0)], ["writing"])
    assert suggest(basis) == suggest(basis)
    other = suggest({**basis, "assessment_id": "a-2"})
    assert other[0].goal_id != suggest(basis)[0].goal_id


def test_the_suggestion_event_lists_first_actions_by_rank():
    basis = assessment("skills", [score("time_management", 2.0)], ["time_management"])
    [goal] = suggest(basis)
    event = suggestion_event(goal)
    assert event.development_area == "time_management" and event.source_assessment_id == "a-1"
    assert event.first_actions[0] == "Block two 90-minute focus slots in your calendar each week"
    assert [k.kpi_id for k in event.kpis] == ["kpi-practice", "kpi-score"]
    assert event.due_date == goal.due_date
