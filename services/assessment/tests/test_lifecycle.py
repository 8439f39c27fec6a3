"""Ids, assignment plans, the completion event and the combined profile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from coaching_assessment.domain.instruments import builtin_instruments
from coaching_assessment.domain.lifecycle import (
    assessment_id_of,
    assignment_status,
    completion_event,
    enrolment_assignment_id,
    instruments_to_assign,
    items_page,
    result_fields,
    with_percentiles,
)
from coaching_assessment.domain.profile import combined_profile
from coaching_assessment.domain.scoring import score_instrument

AT = datetime(2027, 1, 4, 9, 30, tzinfo=UTC)


def riasec_result(answers_by_area: dict[str, int], completed_at: datetime = AT):
    riasec = builtin_instruments()["riasec"]
    answers = {item.item_id: answers_by_area[item.scale] for item in riasec.items}
    return result_fields(riasec, score_instrument(riasec, answers), "asg-1", answers,
                         completed_at)


def test_ids_repeat_for_the_same_cause_only():
    assert enrolment_assignment_id("e-1", "riasec") == enrolment_assignment_id("e-1", "riasec")
    assert enrolment_assignment_id("e-1", "riasec") != enrolment_assignment_id("e-2", "riasec")
    assert enrolment_assignment_id("e-1", "riasec") != enrolment_assignment_id("e-1", "big-five")
    assert assessment_id_of("a-1") == assessment_id_of("a-1") != assessment_id_of("a-2")


def test_plans_skip_instruments_already_open():
    assert instruments_to_assign(["onet-skills", "riasec", "riasec", "big-five"],
                                 {"riasec"}) == ["onet-skills", "big-five"]
    assert [assignment_status(0, False), assignment_status(3, False),
            assignment_status(60, True)] == ["assigned", "in_progress", "completed"]


def test_items_come_in_pages_with_saved_answers():
    riasec = builtin_instruments()["riasec"]
    page = items_page(riasec, 55, 10, {"c06": 4, "r01": 2})
    assert page["total"] == 60 and page["answered"] == 2
    assert [item["item_id"] for item in page["items"]] == ["c06", "c07", "c08", "c09", "c10"]
    assert page["items"][0]["answer"] == 4 and page["items"][1]["answer"] is None


def test_completion_event_carries_scores_and_a_tied_holland_code_openly():
    # realistic 5 -> 40, social and enterprising 4 -> 30 each, the rest lower
    fields = riasec_result({"realistic": 5, "investigative": 2, "artistic": 1, "social": 4,
                            "enterprising": 4, "conventional": 3})
    event = completion_event("acme", "c-1", "as-1", fields)
    assert event.holland_code is None
    assert event.holland_code_alternatives == ["RSE", "RES"]
    assert event.strengths == ["realistic", "social", "enterprising"]
    assert {s.scale_id: s.score for s in event.scores}["conventional"] == 20
    assert event.assignment_id == "asg-1" and event.completed_at == AT
    assert "answers" not in event.model_dump()


def test_percentiles_appear_with_a_large_enough_norm_group():
    fields = riasec_result({area: 3 for area in ("realistic", "investigative", "artistic",
                                                 "social", "enterprising", "conventional")})
    norms = {"realistic": {10.0: 10, 20.0: 10, 30.0: 10}}
    scores = {s["scale_id"]: s for s in with_percentiles(fields, norms, 30)["scores"]}
    assert scores["realistic"]["percentile"] == 50.0  # 20: 10 below, 10 at -> (10 + 5) / 30
    assert scores["social"]["percentile"] is None and scores["social"]["norm_group_size"] == 0


def test_the_profile_combines_the_latest_result_of_each_instrument():
    old = {**riasec_result({"realistic": 1, "investigative": 5, "artistic": 1, "social": 1,
                            "enterprising": 1, "conventional": 1}), "assessment_id": "old"}
    new = {**riasec_result({"realistic": 1, "investigative": 1, "artistic": 5, "social": 1,
                            "enterprising": 1, "conventional": 1}, AT + timedelta(days=90)),
           "assessment_id": "new"}
    big_five = builtin_instruments()["big-five"]
    answers = {item.item_id: 5 if item.scale == "conscientiousness" and item.keying == "+"
               else 3 for item in big_five.items}
    personality = {**result_fields(big_five, score_instrument(big_five, answers), "asg-2",
                                   answers, AT + timedelta(days=1)), "assessment_id": "p"}
    profile = combined_profile("c-1", [new, personality, old])
    assert [i["assessment_id"] for i in profile["instruments"]] == ["p", "new"]
    assert [(s["instrument_id"], s["scale_id"]) for s in profile["strengths"]] == [
        ("big-five", "conscientiousness"), ("riasec", "artistic")]
    assert all(s["reason"] for s in profile["strengths"])
    assert profile["codes"][0]["instrument_id"] == "riasec"
    assert profile["codes"][0]["codes"][0].startswith("A")
