"""Scoring against hand-computed vectors: keying, rules, RIASEC, Holland codes, skill gaps."""

from __future__ import annotations

import pytest
from coaching_assessment.domain.instruments import builtin_instruments, parse_instrument
from coaching_assessment.domain.scoring import (
    answer_problems,
    keyed_value,
    pick_extremes,
    score_instrument,
    score_scale,
)

SMALL = """
instrument_id: team-climate
version: 1
title: Team climate
response_scales:
  default:
    options: [{value: 1, label: low}, {value: 2, label: "2"}, {value: 3, label: "3"},
              {value: 4, label: "4"}, {value: 5, label: high}]
  seven:
    options: [{value: 1, label: "1"}, {value: 2, label: "2"}, {value: 3, label: "3"},
              {value: 4, label: "4"}, {value: 5, label: "5"}, {value: 6, label: "6"},
              {value: 7, label: "7"}]
scales:
  - {scale_id: trust, label: Trust, scoring: {rule: sum}}
  - {scale_id: voice, label: Voice, scoring: {rule: mean}}
  - {scale_id: pace, label: Pace, scoring: {rule: mean, response_scale: seven}}
items:
  - {item_id: t1, text: People here keep their word., scale: trust, keying: "+"}
  - {item_id: t2, text: I double-check what colleagues tell me., scale: trust, keying: "-"}
  - {item_id: t3, text: I can rely on my team., scale: trust, keying: "+"}
  - {item_id: v1, text: I say so when I disagree., scale: voice, keying: "+"}
  - {item_id: v2, text: I hold back ideas in meetings., scale: voice, keying: "-"}
  - {item_id: p1, text: Work feels rushed., scale: pace, keying: "-", response_scale: seven}
profile:
  strengths: {count: 1, min_share: 0.5}
  development_areas: {method: lowest, count: 1, max_share: 0.5}
"""


@pytest.fixture
def small():
    return parse_instrument(SMALL)


def test_reverse_keying_is_min_plus_max_minus_response(small):
    t2, p1 = small.item("t2"), small.item("p1")
    assert [keyed_value(small, t2, value) for value in (1, 2, 3, 4, 5)] == [5, 4, 3, 2, 1]
    assert keyed_value(small, p1, 3) == 5  # 1 + 7 - 3 on the seven-point scale
    assert keyed_value(small, small.item("t1"), 2) == 2


def test_sum_and_mean_rules(small):
    answers = {"t1": 4, "t2": 2, "t3": 5, "v1": 3, "v2": 5, "p1": 6}
    trust = score_scale(small, "trust", answers)  # 4 + (6-2) + 5 = 13 of 3..15
    assert (trust.raw_score, trust.score, trust.minimum, trust.maximum) == (13, 13, 3, 15)
    assert trust.mean == pytest.approx(13 / 3)
    voice = score_scale(small, "voice", answers)  # (3 + (6-5)) / 2 = 2 of 1..5
    assert (voice.raw_score, voice.mean, voice.score, voice.minimum, voice.maximum) == (
        4, 2, 2, 1, 5)
    pace = score_scale(small, "pace", answers)  # 8 - 6 = 2 of 1..7
    assert (pace.score, pace.minimum, pace.maximum) == (2, 1, 7)


def test_findings_carry_their_reasons(small):
    answers = {"t1": 4, "t2": 2, "t3": 5, "v1": 3, "v2": 5, "p1": 6}
    score = score_instrument(small, answers)
    # shares: trust (13-3)/12 = .83, voice (2-1)/4 = .25, pace (2-1)/6 = .17
    assert [f.scale_id for f in score.strengths] == ["trust"]
    assert score.strengths[0].reason == "13 on a 3-15 scale (83% of its range); among the 1 highest"
    assert [f.scale_id for f in score.development_areas] == ["pace"]
    assert "among the 1 lowest" in score.development_areas[0].reason


def test_riasec_raw_scores_count_from_zero():
    riasec = builtin_instruments()["riasec"]
    answers = answers_for_riasec({"realistic": 40, "investigative": 0, "artistic": 20,
                                  "social": 7, "enterprising": 33, "conventional": 12})
    mixed = [5, 4, 3, 2, 1, 5, 4, 3, 2, 1]  # (4+3+2+1+0) * 2 = 20
    answers.update({f"a{n + 1:02d}": value for n, value in enumerate(mixed)})
    scores = {s.scale_id: s.score for s in score_instrument(riasec, answers).scales}
    assert scores == {"realistic": 40, "investigative": 0, "artistic": 20, "social": 7,
                      "enterprising": 33, "conventional": 12}
    realistic = score_scale(riasec, "realistic", answers)
    assert (realistic.minimum, realistic.maximum) == (0, 40)


def answers_for_riasec(raw: dict[str, int]) -> dict[str, int]:
    """Answers whose area raw scores (sum of response - 1) are the given numbers."""
    riasec = builtin_instruments()["riasec"]
    answers = {}
    for area, target in raw.items():
        left = target
        for item in riasec.scored_items(area):
            step = min(4, left)
            answers[item.item_id] = step + 1
            left -= step
        assert left == 0
    return answers


def holland(raw: dict[str, int]):
    riasec = builtin_instruments()["riasec"]
    return score_instrument(riasec, answers_for_riasec(raw)).codes[0]


AREAS = ("realistic", "investigative", "artistic", "social", "enterprising", "conventional")


def riasec_raw(*scores: int) -> dict[str, int]:
    return dict(zip(AREAS, scores, strict=True))


def test_holland_code_without_ties():
    code = holland(riasec_raw(30, 25, 20, 15, 10, 5))
    assert (code.code, code.codes, code.tied) == ("RIA", ["RIA"], False)
    assert code.ranking[:3] == [("R", 30), ("I", 25), ("A", 20)]


def test_holland_code_reports_a_two_way_tie_at_the_cut():
    code = holland(riasec_raw(30, 25, 20, 20, 10, 5))
    assert code.code is None and code.tied
    assert code.codes == ["RIA", "RIS"]


def test_holland_code_reports_a_two_way_tie_inside_the_code():
    code = holland(riasec_raw(30, 30, 20, 10, 10, 5))
    assert code.codes == ["RIA", "IRA"]


def test_holland_code_reports_a_three_way_tie():
    code = holland(riasec_raw(30, 25, 25, 25, 10, 5))
    assert code.codes == ["RIA", "RIS", "RAI", "RAS", "RSI", "RSA"]
    top = holland(riasec_raw(12, 5, 12, 3, 12, 0))
    assert sorted(top.codes) == sorted(["RAE", "REA", "ARE", "AER", "ERA", "EAR"])


def test_a_tie_below_the_code_does_not_matter():
    code = holland(riasec_raw(30, 25, 20, 10, 10, 10))
    assert code.codes == ["RIA"]


def skill_answers(**pairs: tuple[int, int]) -> dict[str, int]:
    """Every skill proficiency 3 and importance 3, except the (proficiency, importance) given."""
    skills = builtin_instruments()["onet-skills"]
    answers = {}
    for scale in skills.scales:
        proficiency, importance = pairs.get(scale.scale_id, (3, 3))
        answers[f"{scale.scale_id}-proficiency"] = proficiency
        answers[f"{scale.scale_id}-importance"] = importance
    return answers


def test_skill_gaps_drive_development_areas():
    skills = builtin_instruments()["onet-skills"]
    answers = skill_answers(reading_comprehension=(2, 5), negotiation=(1, 5), writing=(3, 4),
                            programming=(5, 1), time_management=(2, 4), persuasion=(4, 5),
                            speaking=(5, 5))
    score = score_instrument(skills, answers)
    assert score.gaps["negotiation"] == 4 and score.gaps["reading_comprehension"] == 3
    assert score.gaps["programming"] == -4 and score.gaps["speaking"] == 0
    # gaps of at least 1 point, largest first: negotiation 4, reading 3, time 2, then 1s
    development = [(f.scale_id, f.value, f.tied_at_cut) for f in score.development_areas]
    assert development == [("negotiation", 4, False), ("reading_comprehension", 3, False),
                           ("time_management", 2, False), ("writing", 1, False),
                           ("persuasion", 1, False)]
    assert score.development_areas[0].reason == (
        "importance 5 exceeds proficiency 1 by 4; among the 5 largest gaps")
    # strengths: proficiency 5 is 100% of the range, 4 is 75% (the minimum share)
    assert [f.scale_id for f in score.strengths] == ["speaking", "programming", "persuasion"]


def test_ties_at_the_cut_off_are_all_reported():
    picked = pick_extremes([("a", 3), ("b", 5), ("c", 4), ("d", 4), ("e", 1)], 2,
                           highest=True)
    assert picked == [("b", 5, False), ("c", 4, True), ("d", 4, True)]
    assert pick_extremes([("a", 3), ("b", 5)], 3, highest=False) == [("a", 3, False),
                                                                      ("b", 5, False)]


def test_answers_are_checked_item_by_item(small):
    problems = answer_problems(small, {"t1": 6, "zz": 3, "p1": 7}, complete=True)
    found = {(p.item_id, p.problem) for p in problems}
    assert found == {("t1", "off_scale"), ("zz", "unknown_item"), ("t2", "missing"),
                     ("t3", "missing"), ("v1", "missing"), ("v2", "missing")}
    assert answer_problems(small, {"p1": 7, "t1": 1}, complete=False) == []


def test_big_five_reverse_scoring_in_the_built_in():
    big_five = builtin_instruments()["big-five"]
    answers = {item.item_id: 5 if item.keying == "+" else 1 for item in big_five.items}
    assert all(s.score == 5 for s in score_instrument(big_five, answers).scales)
    answers = {item.item_id: 4 for item in big_five.items}
    extraversion = score_scale(big_five, "extraversion", answers)  # 5 x 4 + 5 x 2 = 30 / 10
    assert extraversion.score == 3.0 and extraversion.raw_score == 30
