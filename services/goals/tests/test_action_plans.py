"""Action plans: the ranking of next actions and changes to actions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from coaching_goals.domain import (
    Action,
    ActionChange,
    ActionDraft,
    ActionStatus,
    GoalStateConflict,
    GoalStatus,
    InvalidGoal,
    action_priority,
    add_action,
    change_action,
    rank_next_actions,
)

T0 = datetime(2026, 1, 1, 9, tzinfo=UTC)
TODAY = date(2026, 1, 10)


def action(action_id: str, impact: int, effort: int, *, due: date | None = None,
           status: ActionStatus = ActionStatus.TODO, minutes: int = 0) -> Action:
    return Action(action_id=action_id, title=action_id, impact=impact, effort=effort,
                  due_date=due, status=status, created_at=T0 + timedelta(minutes=minutes))


def ranked(goals, limit: int = 50) -> list[str]:
    return [entry.action_id for entry in rank_next_actions(goals, TODAY, limit)]


@pytest.mark.parametrize(("impact", "effort", "priority"), [
    (5, 1, 25), (5, 5, 5), (1, 1, 5), (1, 5, 1), (3, 3, 9), (4, 2, 16), (2, 1, 10)])
def test_priority_is_impact_times_effort_saved(impact, effort, priority):
    assert action_priority(impact, effort) == priority


def test_high_impact_low_effort_comes_first(new_goal):
    goal = new_goal(actions=[action("chore", 1, 1), action("project", 5, 5),
                             action("quick-win", 5, 1), action("solid", 4, 2),
                             action("middling", 3, 3)])
    # 25, 16, 9, then the 5s: the bigger win (impact 5) before the chore (impact 1).
    assert ranked([goal]) == ["quick-win", "solid", "middling", "project", "chore"]


def test_ties_break_on_impact_then_effort(new_goal):
    # priority 8 both: 4 x (6-4) and 2 x (6-2); priority 12: 4 x 3 and 3 x 4 and 2 x 6 (n/a)
    goal = new_goal(actions=[action("low-impact", 2, 2), action("high-impact", 4, 4),
                             action("b", 3, 2), action("a", 4, 3)])
    assert ranked([goal]) == ["a", "b", "high-impact", "low-impact"]


def test_then_the_due_date_then_work_in_progress_then_age(new_goal):
    goal = new_goal(actions=[
        action("undated", 4, 2),
        action("later", 4, 2, due=date(2026, 3, 1)),
        action("sooner", 4, 2, due=date(2026, 2, 1)),
        action("new-todo", 3, 3, minutes=1),
        action("old-todo", 3, 3, minutes=0),
        action("started", 3, 3, status=ActionStatus.IN_PROGRESS, minutes=5)])
    assert ranked([goal]) == ["sooner", "later", "undated", "started", "old-todo", "new-todo"]


def test_identical_actions_order_by_goal_then_action_id(new_goal):
    first = new_goal(goal_id="g-a", actions=[action("x2", 3, 3), action("x1", 3, 3)])
    second = new_goal(goal_id="g-b", actions=[action("x0", 3, 3)])
    assert ranked([second, first]) == ["x1", "x2", "x0"]


def test_only_open_actions_of_live_goals_count_and_the_limit_holds(new_goal):
    live = new_goal(goal_id="live", actions=[
        action("open", 3, 3), action("done", 5, 1, status=ActionStatus.DONE),
        action("dropped", 5, 1, status=ActionStatus.DROPPED),
        action("overdue", 2, 2, due=TODAY - timedelta(days=1))])
    at_risk = new_goal(goal_id="risky", status=GoalStatus.AT_RISK,
                       actions=[action("rescue", 5, 2)])
    closed = [new_goal(goal_id=status.value, status=status, actions=[action(status, 5, 1)])
              for status in (GoalStatus.DRAFT, GoalStatus.SUGGESTED, GoalStatus.ACHIEVED,
                             GoalStatus.ABANDONED)]
    entries = rank_next_actions([live, at_risk, *closed], TODAY, 10)
    assert [e.action_id for e in entries] == ["rescue", "open", "overdue"]
    assert [e.rank for e in entries] == [1, 2, 3]
    assert [e.overdue for e in entries] == [False, False, True]
    assert entries[0].goal_id == "risky" and entries[0].priority == 20
    assert ranked([live, at_risk], limit=1) == ["rescue"]


def test_adding_and_changing_actions(new_goal):
    goal = add_action(new_goal(), ActionDraft(title=" Call three clients ", impact=4, effort=2),
                      "a-1", T0).goal
    assert goal.actions[0].title == "Call three clients"
    assert goal.actions[0].status is ActionStatus.TODO
    changed = change_action(goal, "a-1", ActionChange(status=ActionStatus.DONE, effort=1),
                            T0).goal
    assert (changed.actions[0].status, changed.actions[0].effort) == (ActionStatus.DONE, 1)
    assert changed.actions[0].impact == 4
    with pytest.raises(InvalidGoal):
        change_action(goal, "a-9", ActionChange(status=ActionStatus.DONE), T0)
    with pytest.raises(InvalidGoal):
        change_action(goal, "a-1", ActionChange(impact=None), T0)
    with pytest.raises(GoalStateConflict):
        add_action(new_goal(status=GoalStatus.ACHIEVED),
                   ActionDraft(title="late", impact=1, effort=1), "a-2", T0)
