"""What the feedback service does with each event it consumes.

Besides the goals and enrolment streams it reads its own: a check-in opens when its
`CheckInDue` is consumed, and a settled check-in (`CheckInCompleted`, `CheckInMissed`) feeds
the progress reviews and the at-risk detection. The scheduler's bulk writes so stay lean,
and Kafka's at-least-once delivery guarantees that every published check-in gets opened.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any

from coaching_shared.contracts import (
    CheckInCompleted,
    CheckInDue,
    CheckInMissed,
    ClientAtRisk,
    ClientEnrolled,
    CoachAssigned,
    GoalAbandoned,
    GoalAchieved,
    GoalSet,
    KpiSpec,
    MultiRaterFeedbackCompleted,
    ProgressReviewed,
)
from coaching_shared.events import EventMessage, derived_event_id
from coaching_shared.membership import Membership
from coaching_shared.messaging import EventContext
from coaching_shared.service import ServiceRuntime
from pymongo.asynchronous.collection import AsyncCollection

from coaching_feedback.clock import Clock
from coaching_feedback.domain import (
    CheckInOutcome,
    CheckInPlan,
    CheckInWindow,
    GroupResult,
    NoSlotAvailable,
    RaterAnswer,
    RaterGroup,
    first_due,
    local_month_before,
    month_start_after,
    newly_at_risk,
    plan_origin,
    qualifying_groups,
    rescheduled_due,
    review_due,
    review_progress,
    risk_reasons,
    summarise_ratings,
)
from coaching_feedback.prompts import checkin_context, choose_prompts
from coaching_feedback.repository import (
    ACTIVE,
    CANCELLED,
    COMPLETED,
    MISSED,
    NO_LEASE,
    OPEN,
    FeedbackRepository,
)
from coaching_feedback.settings import FeedbackSettings

SOURCE = "/coaching/feedback"
# What started a progress review.
EVERY_N_CHECKINS = "every_n_checkins"
MONTHLY = "monthly"
ON_REQUEST = "on_request"
DEFAULT_PLAN = "default"
CLIENT_PLAN = "client"
REPLAN_ATTEMPTS = 5
# Check-ins looked back on for at-risk signals (two misses in a row, a confidence drop).
RISK_LOOKBACK = 4

log = logging.getLogger(__name__)


def outcome_of(checkin: dict[str, Any]) -> CheckInOutcome:
    """The numbers of a settled check-in document, for reviews and risk detection."""
    submission = checkin.get("submission") or {}
    return CheckInOutcome(
        period=checkin["period"], due_at=checkin["due_at"],
        completed=checkin["status"] == COMPLETED, confidence=submission.get("confidence"),
        kpi_values={r["kpi_id"]: r["value"] for r in submission.get("kpi_readings", [])},
        blockers=tuple(submission.get("blockers", [])))


def stored_plan(plan: CheckInPlan) -> dict[str, Any]:
    return plan.model_dump(mode="json")


class ScheduleEnded(Exception):
    """The goal's check-ins have ended; its plan can no longer change."""


class ScheduleBusy(Exception):
    """The schedule kept changing under a plan change; the caller may retry."""


async def replan_schedule(repository: FeedbackRepository, schedule: dict[str, Any],
                          plan: CheckInPlan, clock: Clock,
                          plan_source: str = CLIENT_PLAN) -> dict[str, Any]:
    """Put a new plan on an active schedule without firing or dropping a check-in.

    Raises ScheduleEnded, NoSlotAvailable (skip windows cover everything) or ScheduleBusy.
    """
    for _ in range(REPLAN_ATTEMPTS):
        if schedule["status"] != ACTIVE:
            raise ScheduleEnded(schedule.get("ended_reason") or "ended")
        origin = schedule.get("previous_due_at") or schedule["origin_at"]
        next_due = rescheduled_due(plan, origin, schedule["next_due_at"], clock.now())
        review_at = schedule.get("next_review_at")
        if review_at is not None:  # the same month's review, at its end in the new timezone
            review_at = month_start_after(review_at - timedelta(days=1), plan.timezone)
        updated = await repository.replan(schedule, stored_plan(plan), plan_source, next_due,
                                          review_at)
        if updated is not None:
            return updated
        # The sweep advanced it or someone else changed it meanwhile: plan from the fresh copy.
        fresh = await repository.schedule(schedule["tenant_id"], schedule["goal_id"])
        if fresh is None:
            raise ScheduleEnded("erased")
        schedule = fresh
    raise ScheduleBusy("the schedule keeps changing; retry")


Relay = Callable[[AsyncCollection, dict[str, Any] | None], Awaitable[None]]


def round_results(feedback_round: dict[str, Any],
                  responses: list[dict[str, Any]]) -> list[GroupResult]:
    """The anonymised results of a round from its stored answers."""
    answers = [RaterAnswer(group=RaterGroup(r["group"]), ratings=dict(r["ratings"]),
                           comment=r.get("comment", "")) for r in responses]
    return summarise_ratings(answers, feedback_round["competencies"],
                             [RaterGroup(g) for g in feedback_round["rater_groups"]])


async def close_feedback_round(repository: FeedbackRepository, relay: Relay,
                               feedback_round: dict[str, Any], closed_by: str,
                               closed_at: datetime) -> dict[str, Any] | None:
    """Close a 360 round: freeze its anonymised results, drop the individual answers, and
    publish MultiRaterFeedbackCompleted once, however often or by whom it is closed.

    Returns the closed round, or None if it was closed (or erased) already.
    """
    tenant_id, round_id = feedback_round["tenant_id"], feedback_round["round_id"]
    results = round_results(feedback_round, await repository.responses_of(tenant_id, round_id))
    completed = MultiRaterFeedbackCompleted(
        tenant_id=tenant_id, client_id=feedback_round["client_id"], round_id=round_id,
        competencies=feedback_round["competencies"],
        qualifying_groups=qualifying_groups(results), closed_at=closed_at,
        closed_by=closed_by, coach_id=feedback_round.get("coach_id"))
    # Every closer derives the same cause and event id: only the first close takes effect.
    message = EventMessage.wrap(completed, SOURCE,
                                event_id=derived_event_id(round_id, "multirater-completed"))
    document = await repository.close_round(
        tenant_id, round_id, derived_event_id(round_id, "close-round"),
        {"closed_at": closed_at, "closed_by": closed_by,
         "results": [vars(result) for result in results]}, message)
    if document is not None:
        await relay(repository.rounds, document)
        await repository.forget_responses(tenant_id, round_id)
    return document


async def record_progress_review(repository: FeedbackRepository, relay: Relay,
                                 schedule: dict[str, Any], settled: list[dict[str, Any]],
                                 review_id: str, cause_id: str, trigger: str,
                                 reviewed_at: datetime) -> dict[str, Any] | None:
    """Compute a progress review over settled check-ins and publish ProgressReviewed, once
    per review id; None when there is nothing to review (or it was recorded already)."""
    if not settled:
        return None
    review = review_progress([outcome_of(c) for c in settled])
    tenant_id, client_id = schedule["tenant_id"], schedule["client_id"]
    reviewed = ProgressReviewed(
        tenant_id=tenant_id, client_id=client_id, review_id=review_id,
        goal_id=schedule["goal_id"], period_start=review.period_start,
        period_end=review.period_end, adherence=review.adherence,
        confidence_trend=review.confidence_trend, checkins_due=review.due,
        checkins_completed=review.completed, kpi_trends=review.kpi_trends,
        coach_id=schedule.get("coach_id"), trigger=trigger)
    message = EventMessage.wrap(reviewed, SOURCE,
                                event_id=derived_event_id(review_id, "progress-reviewed"))
    document = await repository.record_review(tenant_id, review_id, cause_id, {
        "client_id": client_id, "goal_id": schedule["goal_id"],
        "coach_id": schedule.get("coach_id"), "trigger": trigger,
        "from_period": settled[0]["period"], "to_period": settled[-1]["period"],
        "period_start": review.period_start, "period_end": review.period_end,
        "adherence": review.adherence, "checkins_due": review.due,
        "checkins_completed": review.completed, "confidence_trend": review.confidence_trend,
        "kpi_trends": review.kpi_trends, "recurring_blockers": review.recurring_blockers,
        "coach_notes": None, "reviewed_at": reviewed_at}, message)
    await relay(repository.reviews, document)
    return document


async def review_month(repository: FeedbackRepository, relay: Relay, schedule: dict[str, Any],
                       month_end: datetime, reviewed_at: datetime) -> dict[str, Any] | None:
    """The monthly review of a goal: the check-ins that fell due in the client's local month
    ending at `month_end` and are settled (those still in their grace period wait for the
    next review). The same month always gets the same review id."""
    timezone = CheckInPlan.model_validate(schedule["plan"]).timezone
    label, month_start = local_month_before(month_end, timezone)
    settled = await repository.settled_checkins_due_between(
        schedule["tenant_id"], schedule["goal_id"], month_start, month_end)
    review_id = derived_event_id(f"{schedule['tenant_id']}|{schedule['goal_id']}|{label}",
                                 "monthly-review")
    return await record_progress_review(repository, relay, schedule, settled, review_id,
                                        review_id, MONTHLY, reviewed_at)


class FeedbackHandlers:
    def __init__(self, repository: FeedbackRepository, membership: Membership,
                 settings: FeedbackSettings, clock: Clock, runtime: ServiceRuntime) -> None:
        self.repository = repository
        self.membership = membership
        self.settings = settings
        self.clock = clock
        self.runtime = runtime

    async def client_enrolled(self, event: ClientEnrolled, context: EventContext) -> None:
        """Keep the client's timezone; goals planned before it (and the coach) were known
        move to it."""
        await self.repository.remember_timezone(event.tenant_id, event.client_id,
                                                context.message.id, event.timezone)
        for schedule in await self.repository.schedules_of(event.tenant_id, event.client_id,
                                                           ACTIVE):
            plan = CheckInPlan.model_validate(schedule["plan"])
            if schedule.get("plan_source") == DEFAULT_PLAN and plan.timezone != event.timezone:
                await replan_schedule(self.repository, schedule,
                                      plan.model_copy(update={"timezone": event.timezone}),
                                      self.clock, DEFAULT_PLAN)
        if event.coach is not None:
            await self.adopt_coach(event.tenant_id, event.client_id)

    async def coach_assigned(self, event: CoachAssigned, context: EventContext) -> None:
        await self.repository.reassign_coach(event.tenant_id, event.client_id,
                                             event.coach.coach_id)

    async def goal_set(self, event: GoalSet, context: EventContext) -> None:
        """Plan the goal's check-ins from the client's preferences (or the defaults)."""
        plan, plan_source = await self.client_plan(event.tenant_id, event.client_id)
        planned_at = self.clock.now()
        try:
            next_due = first_due(plan, planned_at, event.start_date)
        except NoSlotAvailable:
            log.warning("skip windows leave no slot; planning the goal without them")
            plan = plan.model_copy(update={"skip_windows": ()})
            next_due = first_due(plan, planned_at, event.start_date)
        coach_id = event.coach_id or await self.membership.coach_of(event.tenant_id,
                                                                    event.client_id)
        goal = {"client_id": event.client_id, "coach_id": coach_id, "title": event.title,
                "goal_start": event.start_date.isoformat(),
                "goal_due": event.due_date.isoformat(),
                "kpis": [kpi.model_dump(mode="json") for kpi in event.kpis]}
        schedule = {"status": ACTIVE, "plan": stored_plan(plan), "plan_source": plan_source,
                    "planned_at": planned_at,
                    "origin_at": plan_origin(plan, planned_at, event.start_date),
                    "previous_due_at": None, "next_period": 1, "next_due_at": next_due,
                    "next_review_at": month_start_after(planned_at, plan.timezone),
                    "lease_until": NO_LEASE, "revision": 0}
        await self.repository.plan_schedule(event.tenant_id, event.goal_id, context.message.id,
                                            goal, schedule)
        if coach_id is None:
            # The enrolment may have been handled meanwhile: it fills in schedules that exist
            # when it runs, this re-read covers the one just written.
            await self.adopt_coach(event.tenant_id, event.client_id)

    async def adopt_coach(self, tenant_id: str, client_id: str) -> None:
        """Give the client's coach to the schedules planned without one."""
        coach_id = await self.membership.coach_of(tenant_id, client_id)
        if coach_id is not None:
            await self.repository.reassign_coach(tenant_id, client_id, coach_id,
                                                 only_unassigned=True)

    async def client_plan(self, tenant_id: str, client_id: str) -> tuple[CheckInPlan, str]:
        """The client's stated check-in preferences, else the defaults in their timezone."""
        preferences = await self.repository.preferences_of(tenant_id, client_id) or {}
        if preferences.get("plan"):
            return CheckInPlan.model_validate(preferences["plan"]), CLIENT_PLAN
        return self.settings.default_plan(preferences.get("timezone", "UTC")), DEFAULT_PLAN

    async def goal_achieved(self, event: GoalAchieved, context: EventContext) -> None:
        await self._end_goal(event.tenant_id, event.goal_id, "achieved", event.achieved_at)

    async def goal_abandoned(self, event: GoalAbandoned, context: EventContext) -> None:
        await self._end_goal(event.tenant_id, event.goal_id, "abandoned", event.abandoned_at)

    async def _end_goal(self, tenant_id: str, goal_id: str, reason: str,
                        ended_at: datetime) -> None:
        """No more check-ins for the goal: the schedule ends and open ones are withdrawn."""
        await self.repository.end_schedule(tenant_id, goal_id, reason, ended_at)
        await self.repository.cancel_open_checkins(tenant_id, goal_id)

    async def checkin_due(self, event: CheckInDue, context: EventContext) -> None:
        """Open the check-in the scheduler announced, with its reflection prompts."""
        schedule = await self.repository.schedule(event.tenant_id, event.goal_id)
        if schedule is None:
            return  # the goal's data was erased; nothing to open
        previous = await self.repository.checkin_of_period(event.tenant_id, event.goal_id,
                                                           event.period - 1)
        reflection_context = checkin_context(
            event.period, previous is not None and previous["status"] == MISSED)
        window = CheckInWindow.of(event.due_at, self.settings.on_time, self.settings.grace)
        await self.repository.open_checkin(event.tenant_id, event.checkin_id,
                                           context.message.id, {
            "client_id": event.client_id, "goal_id": event.goal_id, "period": event.period,
            "due_at": event.due_at, "on_time_until": window.on_time_until,
            "respond_by": event.respond_by, "coach_id": schedule.get("coach_id"),
            "status": OPEN if schedule["status"] == ACTIVE else CANCELLED,
            "reflection_context": reflection_context.value,
            "prompt_ids": [p.prompt_id for p in choose_prompts(reflection_context,
                                                               event.period)],
            "lease_until": NO_LEASE})

    async def checkin_settled(self, event: CheckInCompleted | CheckInMissed,
                              context: EventContext) -> None:
        """A completed or missed check-in: look for risk signals; review every N check-ins."""
        schedule = await self.repository.schedule(event.tenant_id, event.goal_id)
        if schedule is None:
            return
        kpis = [KpiSpec.model_validate(kpi) for kpi in schedule.get("kpis", [])]
        recent = await self.repository.settled_checkins(
            event.tenant_id, event.goal_id, from_period=max(1, event.period - RISK_LOOKBACK),
            to_period=event.period)
        # An older check-in settled late (or redelivered) says nothing about the standing now.
        if event.period >= schedule.get("risk_period", 0):
            reasons = [r.value for r in risk_reasons(
                [outcome_of(c) for c in recent], kpis,
                date.fromisoformat(schedule["goal_start"]),
                date.fromisoformat(schedule["goal_due"]))]
            if newly_at_risk(schedule.get("risk_reasons", []), reasons):
                await self._flag_risk(event, context, schedule, reasons)
            # After the signal: a crash in between re-flags on redelivery (with the same ids).
            await self.repository.record_standing_risk(event.tenant_id, event.goal_id,
                                                       event.period, reasons)
        every = self.settings.review_every_checkins
        if review_due(event.period, every):
            await self._review(event, context, schedule, event.period - every + 1)

    async def _flag_risk(self, event: CheckInCompleted | CheckInMissed, context: EventContext,
                         schedule: dict[str, Any], reasons: list[str]) -> None:
        detected_at = self.clock.now()
        at_risk = ClientAtRisk(tenant_id=event.tenant_id, client_id=event.client_id,
                               coach_id=schedule.get("coach_id"), goal_id=event.goal_id,
                               reasons=reasons, detected_at=detected_at)
        message = EventMessage.wrap(at_risk, SOURCE,
                                    event_id=derived_event_id(context.message.id, "at-risk"))
        document = await self.repository.flag_risk(
            event.tenant_id, derived_event_id(context.message.id, "risk-signal"),
            context.message.id,
            {"client_id": event.client_id, "goal_id": event.goal_id, "reasons": reasons,
             "detected_at": detected_at, "period": event.period,
             "coach_id": schedule.get("coach_id")}, message)
        await self.runtime.relay_document(self.repository.risk_signals, document)

    async def _review(self, event: CheckInCompleted | CheckInMissed, context: EventContext,
                      schedule: dict[str, Any], from_period: int) -> None:
        settled = await self.repository.settled_checkins(event.tenant_id, event.goal_id,
                                                         from_period, event.period)
        review_id = derived_event_id(f"{event.tenant_id}|{event.goal_id}|{event.period}",
                                     "progress-review")
        await record_progress_review(self.repository, self.runtime.relay_document, schedule,
                                     settled, review_id, context.message.id,
                                     EVERY_N_CHECKINS, self.clock.now())
