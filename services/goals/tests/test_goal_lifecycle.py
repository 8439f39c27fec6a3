"""Drafting, editing, abandoning goals and linking them to parents."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from coaching_goals.domain import (
    MAX_PARENT_DEPTH,
    CheckInNote,
    GoalDraft,
    GoalEdit,
    GoalStateConflict,
    GoalStatus,
    InvalidGoal,
    KpiDraft,
    abandon_goal,
    check_parent,
    draft_goal,
    edit_goal,
    note_checkin,
)
from coaching_shared.contracts import GoalAbandoned
from pydantic import ValidationError

AT = datetime(2026, 1, 5, 8, tzinfo=UTC)


def test_a_draft_gets_free_kpi_ids():
    draft = GoalDraft(title=" Better renewals ", kpis=[
        KpiDraft(name="A", baseline=0, target=1), KpiDraft(kpi_id="kpi-1", name="B", baseline=0),
        KpiDraft(name="C", baseline=0, target=2)])
    goal = draft_goal(draft, tenant_id="acme", client_id="c-1", goal_id="g-9",
                      coach_id="coach-1", created_by="c-1", at=AT)
    assert [k.kpi_id for k in goal.kpis] == ["kpi-2", "kpi-1", "kpi-3"]
    assert goal.status is GoalStatus.DRAFT and goal.title == "Better renewals"


def test_kpi_ids_must_be_distinct():
    with pytest.raises(ValidationError, match="distinct"):
        GoalDraft(title="t", kpis=[KpiDraft(kpi_id="k", name="A", baseline=0),
                                   KpiDraft(kpi_id="k", name="B", baseline=0)])


def test_editing_a_suggestion_makes_it_the_clients_draft(new_goal):
    goal = new_goal(status=GoalStatus.SUGGESTED)
    edited = edit_goal(goal, GoalEdit(title="Renew every client by March",
                                      due_date=date(2026, 3, 31)), AT).goal
    assert edited.status is GoalStatus.DRAFT
    assert (edited.title, edited.due_date) == ("Renew every client by March", date(2026, 3, 31))
    assert edited.kpis == goal.kpis and edited.description == goal.description
    with pytest.raises(ValidationError):
        GoalEdit(title=None)


def test_active_goals_are_not_edited(new_goal):
    with pytest.raises(GoalStateConflict):
        edit_goal(new_goal(), GoalEdit(title="Another title entirely"), AT)


def test_abandoning_raises_goal_abandoned(new_goal):
    outcome = abandon_goal(new_goal(), "  changed role  ", AT)
    assert outcome.goal.status is GoalStatus.ABANDONED
    assert outcome.goal.abandon_reason == "changed role"
    [event] = outcome.events
    assert isinstance(event, GoalAbandoned) and event.reason == "changed role"
    for status in (GoalStatus.ACHIEVED, GoalStatus.ABANDONED):
        with pytest.raises(GoalStateConflict):
            abandon_goal(new_goal(status=status), None, AT)


def test_parents_must_be_the_clients_open_goals_and_not_too_deep(new_goal):
    check_parent("c-1", new_goal(), ancestors=0)
    with pytest.raises(InvalidGoal, match="no such goal"):
        check_parent("c-1", None, ancestors=0)
    with pytest.raises(InvalidGoal, match="no such goal"):
        check_parent("c-2", new_goal(), ancestors=0)
    with pytest.raises(InvalidGoal, match="abandoned"):
        check_parent("c-1", new_goal(status=GoalStatus.ABANDONED), ancestors=0)
    with pytest.raises(InvalidGoal, match="levels deep"):
        check_parent("c-1", new_goal(), ancestors=MAX_PARENT_DEPTH - 1)


def test_the_latest_checkin_is_kept_not_an_older_redelivery(new_goal):
    def note(period: int) -> CheckInNote:
        return CheckInNote(checkin_id=f"ci-{period}", period=period, confidence=period,
                           completed_at=AT)

    goal = note_checkin(note_checkin(new_goal(), note(2)), note(1))
    assert goal.last_checkin.period == 2
