"""What the goals service does with each event it consumes, and the goal changes the API
shares with them (every change rolls up into the parent goal the same way)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from coaching_shared.contracts import AssessmentCompleted, CheckInCompleted
from coaching_shared.events import BadEvent, derived_event_id
from coaching_shared.membership import Membership
from coaching_shared.messaging import EventContext

from coaching_goals.domain import (
    EDITABLE,
    CheckInNote,
    Goal,
    GoalStatus,
    Measurement,
    Outcome,
    assessment_basis,
    note_checkin,
    record_child_progress,
    record_measurements,
    suggest_goals,
    suggestion_event,
)
from coaching_goals.repository import GoalChange, GoalsRepository
from coaching_goals.settings import GoalsSettings

log = logging.getLogger(__name__)


class GoalsHandlers:
    def __init__(self, repository: GoalsRepository, settings: GoalsSettings,
                 membership: Membership) -> None:
        self.repository = repository
        self.settings = settings
        self.membership = membership

    async def change(self, goal: tuple[str, str, str], cause_id: str,
                     decide: Callable[[Goal], Outcome]) -> GoalChange | None:
        """Change one goal (tenant, client, goal id) once per cause, then its parents."""
        tenant_id, client_id, goal_id = goal
        change = await self.repository.change_goal(tenant_id, client_id, goal_id, cause_id,
                                                   decide)
        if change is not None:
            # Also after a duplicate: the first attempt may have stopped before the roll-up.
            await self.roll_up(change.goal, cause_id)
        return change

    async def roll_up(self, child: Goal, cause_id: str) -> None:
        """Carry a goal's progress and status into its parent (and the parent's parent)."""
        if child.parent_goal_id is None:
            return
        margin = self.settings.at_risk_margin_percent
        parent_cause = derived_event_id(cause_id, f"roll-up|{child.goal_id}")
        await self.change(
            (child.tenant_id, child.client_id, child.parent_goal_id), parent_cause,
            lambda parent: record_child_progress(parent, child, at=child.updated_at,
                                                 at_risk_margin=margin))

    async def assessment_completed(self, event: AssessmentCompleted,
                                   context: EventContext) -> None:
        """Keep the result, then draft goals for its development areas (once per area)."""
        await self.assessments_completed([(event, context)])

    async def assessments_completed(
            self, completed: Sequence[tuple[AssessmentCompleted, EventContext]]) -> None:
        """The same for many clients' completed assessments: one write of each kind."""
        await self.repository.store_assessments([
            (event.tenant_id, event.client_id, context.message.id, assessment_basis(event))
            for event, context in completed])
        # One indexed read per client (by `_id` prefix), all in flight together.
        skips = await asyncio.gather(*(self.repository.open_development_areas(
            event.tenant_id, event.client_id, except_assessment=event.assessment_id)
            for event, _ in completed))
        coaches = await self.membership.coaches_of(
            [(event.tenant_id, event.client_id) for event, _ in completed])
        rules = self.settings.suggestion_rules()
        created = []
        for (event, _), skip in zip(completed, skips, strict=True):
            coach_id = coaches.get((event.tenant_id, event.client_id))
            for goal in suggest_goals(assessment_basis(event), tenant_id=event.tenant_id,
                                      client_id=event.client_id, skip_areas=skip, rules=rules,
                                      at=event.completed_at):
                goal = goal.model_copy(update={"coach_id": coach_id})
                # The cause is the suggestion itself, not the delivery: the same assessment
                # published twice (even under two event ids) drafts each goal once.
                created.append((Outcome(goal, [suggestion_event(goal)]),
                                derived_event_id(goal.goal_id, "suggested")))
        await self.repository.create_goals(created)

    async def checkin_completed(self, event: CheckInCompleted, context: EventContext) -> None:
        """Take the check-in's KPI readings into the goal's progress."""
        readings = [Measurement(
            measurement_id=f"checkin:{event.checkin_id}:{reading.kpi_id}:"
                           f"{reading.measured_at.isoformat()}",
            kpi_id=reading.kpi_id, value=reading.value, measured_at=reading.measured_at,
            source="checkin", reference=event.checkin_id) for reading in event.kpi_readings]
        note = CheckInNote(checkin_id=event.checkin_id, period=event.period,
                           confidence=event.confidence, completed_at=event.completed_at)
        ignored: list[str] = []

        def decide(goal: Goal) -> Outcome:
            if goal.status in EDITABLE:
                raise BadEvent(f"goal {goal.goal_id} is {goal.status.value}, not active: "
                               "check-ins apply to active goals")
            if goal.status is GoalStatus.ABANDONED:
                ignored.append("the goal is abandoned")
                return Outcome(note_checkin(goal, note))
            outcome = record_measurements(
                goal, readings, at_risk_margin=self.settings.at_risk_margin_percent,
                kept=self.settings.measurements_kept_per_goal)
            ignored[:] = outcome.ignored
            return Outcome(note_checkin(outcome.goal, note), outcome.events)

        change = await self.change((event.tenant_id, event.client_id, event.goal_id),
                                   context.message.id, decide)
        if change is None:
            raise BadEvent(f"client {event.client_id!r} has no goal {event.goal_id!r}")
        if ignored:
            log.warning("check-in %s: readings without effect: %s", event.checkin_id,
                        "; ".join(ignored))
