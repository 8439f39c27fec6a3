"""The anonymity and aggregation rules of multi-rater (360) feedback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from coaching_feedback.competencies import COMPETENCIES
from coaching_feedback.domain import (
    ALL_RATERS,
    RaterAnswer,
    RaterGroup,
    competency_averages,
    group_result,
    qualifying_groups,
    rater_response_key,
    rater_token_hash,
    round_closes_at,
    summarise_ratings,
)

COMPETENCY_IDS = ["active_listening", "coordination"]
PEER, REPORT, MANAGER = RaterGroup.PEER, RaterGroup.DIRECT_REPORT, RaterGroup.MANAGER


def answer(group: RaterGroup, comment: str = "", **ratings: int) -> RaterAnswer:
    return RaterAnswer(group=group, ratings=ratings, comment=comment)


def test_a_group_with_two_answers_shows_nothing_not_even_its_count():
    result = group_result("peer", [answer(PEER, "Kind", active_listening=5),
                                   answer(PEER, active_listening=1)], COMPETENCY_IDS)
    assert result.qualifies is False
    assert result.answers is None and result.averages == {} and result.comments == []


def test_a_group_with_three_answers_shows_averages_and_sorted_comments():
    result = group_result("peer", [
        answer(PEER, "Zealous  in meetings", active_listening=4, coordination=2),
        answer(PEER, "", active_listening=5, coordination=3),
        answer(PEER, "Asks good questions", active_listening=3, coordination=5)],
        COMPETENCY_IDS)
    assert result.qualifies and result.answers == 3
    assert result.averages == {"active_listening": 4.0, "coordination": 3.33}
    assert result.comments == ["Asks good questions", "Zealous in meetings"]


def test_a_competency_rated_by_fewer_than_three_in_a_group_is_withheld():
    averages = competency_averages([answer(PEER, active_listening=4, coordination=2),
                                    answer(PEER, active_listening=5),
                                    answer(PEER, active_listening=3)], COMPETENCY_IDS)
    assert averages == {"active_listening": 4.0, "coordination": None}


def test_all_raters_pools_only_the_groups_that_qualify():
    answers = [answer(PEER, active_listening=4), answer(PEER, active_listening=4),
               answer(PEER, active_listening=4),
               # A lone manager pooled in would be worked out by subtraction.
               answer(MANAGER, "Only me", active_listening=1)]
    results = summarise_ratings(answers, COMPETENCY_IDS, [MANAGER, PEER, REPORT])
    by_group = {r.group: r for r in results}
    assert [r.group for r in results] == ["manager", "peer", "direct_report", ALL_RATERS]
    assert by_group[ALL_RATERS].averages["active_listening"] == 4.0
    assert by_group[ALL_RATERS].answers == 3 and by_group[ALL_RATERS].comments == []
    assert not by_group["manager"].qualifies and not by_group["direct_report"].qualifies
    assert qualifying_groups(results) == 1


def test_no_qualifying_group_means_no_pooled_results_either():
    results = summarise_ratings([answer(PEER, active_listening=3)] * 2 +
                                [answer(REPORT, active_listening=2)] * 2,
                                COMPETENCY_IDS, [PEER, REPORT])
    assert not any(r.qualifies for r in results)
    assert qualifying_groups(results) == 0


def test_tokens_are_stored_as_hashes_that_do_not_link_a_rater_to_their_answer():
    token = "s3cret-token-value-for-a-rater"
    assert token not in rater_token_hash(token)
    assert rater_token_hash(token) != rater_response_key(token)
    assert rater_token_hash(token) == rater_token_hash(token)
    assert rater_token_hash(token) != rater_token_hash(token + "x")


def test_round_deadline_defaults_and_limits():
    now = datetime(2026, 6, 3, 12, tzinfo=UTC)
    assert round_closes_at(now, None, 14, 90) == now + timedelta(days=14)
    assert round_closes_at(now, now + timedelta(days=3), 14, 90) == now + timedelta(days=3)
    for bad in (now - timedelta(minutes=1), now + timedelta(days=91),
                datetime(2026, 7, 1, 12)):
        with pytest.raises(ValueError):
            round_closes_at(now, bad, 14, 90)


def test_competencies_are_skills_the_assessment_service_scores():
    assert "active_listening" in COMPETENCIES
    assert all(c.label and c.observed_behaviour.endswith(".") for c in COMPETENCIES.values())
