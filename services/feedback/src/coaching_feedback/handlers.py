"""What the feedback service does with each event it consumes.

Besides the goals and enrolment streams it reads its own: a check-in opens when its
`CheckInDue` is consumed, and a settled check-in (`CheckInCompleted`, `CheckInMissed`) feeds
the progress reviews and the at-risk detection. The scheduler's bulk writes so stay lean,
and Kafka's at-least-once delivery guarantees that every published check-in gets opened.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
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
from coaching_shared.mongo import Change
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
    ClientRef,
    FeedbackRepository,
    Replan,
    checkin_key,
    schedule_change,
    timezone_change,
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


def plan_of(preferences: Mapping[str, Any] | None,
            settings: FeedbackSettings) -> tuple[CheckInPlan, str]:
    """The client's stated check-in preferences, else the defaults in their timezone."""
    preferences = preferences or {}
    if preferences.get("plan"):
        return CheckInPlan.model_validate(preferences["plan"]), CLIENT_PLAN
    return settings.default_plan(preferences.get("timezone", "UTC")), DEFAULT_PLAN


def planned_goal(event: GoalSet, plan: CheckInPlan, plan_source: str, planned_at: datetime,
                 coach_id: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new goal's facts and its check-in schedule (what `plan_schedule` writes)."""
    try:
        next_due = first_due(plan, planned_at, event.start_date)
    except NoSlotAvailable:
        log.warning("skip windows leave no slot; planning the goal without them")
        plan = plan.model_copy(update={"skip_windows": ()})
        next_due = first_due(plan, planned_at, event.start_date)
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
    return goal, schedule


def plans_to_move(schedules: Sequence[dict[str, Any]],
                  timezone: str) -> list[tuple[dict[str, Any], CheckInPlan]]:
    """The active schedules on a default plan in another timezone, with that plan moved to
    the client's (enrolment) timezone."""
    moves = []
    for schedule in schedules:
        if schedule["status"] != ACTIVE or schedule.get("plan_source") != DEFAULT_PLAN:
            continue
        plan = CheckInPlan.model_validate(schedule["plan"])
        if plan.timezone != timezone:
            moves.append((schedule, plan.model_copy(update={"timezone": timezone})))
    return moves


def replanned(schedule: dict[str, Any], plan: CheckInPlan, plan_source: str,
              now: datetime) -> Replan:
    """What `FeedbackRepository.replan` writes to put a new plan on an active schedule:
    the next check-in in the new plan from the last one; raises NoSlotAvailable."""
    origin = schedule.get("previous_due_at") or schedule["origin_at"]
    next_due = rescheduled_due(plan, origin, schedule["next_due_at"], now)
    review_at = schedule.get("next_review_at")
    if review_at is not None:  # the same month's review, at its end in the new timezone
        review_at = month_start_after(review_at - timedelta(days=1), plan.timezone)
    return schedule, stored_plan(plan), plan_source, next_due, review_at


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
        updated = await repository.replan(*replanned(schedule, plan, plan_source, clock.now()))
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
        await self.client_enrolled_together([(event, context)])

    async def client_enrolled_together(
            self, events: Sequence[tuple[ClientEnrolled, EventContext]]) -> None:
        """`client_enrolled` for a wave of enrolments (each another client's): timezones in
        one write, all their schedules in one read, the default plans moved to the clients'
        timezones in one write, coaches in one read and one write."""
        await self.repository.remember_timezones([
            timezone_change(event.tenant_id, event.client_id, context.message.id,
                            event.timezone) for event, context in events])
        clients = [(event.tenant_id, event.client_id) for event, _ in events]
        # Read after the roster took the enrolments' coaches (the consumer admitted them
        # first): a schedule planned later re-reads the roster itself (see `goal_set_together`).
        schedules = await self.repository.schedules_of_clients(clients)
        timezones = {client: event.timezone
                     for client, (event, _) in zip(clients, events, strict=True)}
        now = self.clock.now()
        moves = {client: [replanned(schedule, plan, DEFAULT_PLAN, now) for schedule, plan
                          in plans_to_move(schedules[client], timezone)]
                 for client, timezone in timezones.items()}
        moving = [client for client, replans in moves.items() if replans]
        if moving and not await self.repository.replan_each(
                [replan for client in moving for replan in moves[client]]):
            # Some schedule changed meanwhile (a sweep advanced it, a plan was stated): those
            # not moved yet go `client_enrolled`'s way, from a fresh copy.
            fresh = await self.repository.schedules_of_clients(moving)
            for client in moving:
                await self._move_default_plans(fresh[client], timezones[client])
        await self._adopt_coaches([client for client, (event, _) in zip(clients, events,
                                                                         strict=True)
                                   if event.coach is not None], schedules)

    async def _move_default_plans(self, schedules: Sequence[dict[str, Any]],
                                  timezone: str) -> None:
        """Goals planned before the client's timezone was known move to it."""
        for schedule, plan in plans_to_move(schedules, timezone):
            await replan_schedule(self.repository, schedule, plan, self.clock, DEFAULT_PLAN)

    async def coach_assigned(self, event: CoachAssigned, context: EventContext) -> None:
        await self.repository.reassign_coach(event.tenant_id, event.client_id,
                                             event.coach.coach_id)

    async def goal_set(self, event: GoalSet, context: EventContext) -> None:
        """Plan the goal's check-ins from the client's preferences (or the defaults)."""
        await self.goal_set_together([(event, context)])

    async def goal_set_together(self, events: Sequence[tuple[GoalSet, EventContext]]) -> None:
        """`goal_set` for a wave of goals (each another client's): preferences in one read,
        coaches in one read, all schedules in one `apply_each_once`; then, as `goal_set`
        does, the clients whose coach was unknown get it if their enrolment came meanwhile."""
        clients = [(event.tenant_id, event.client_id) for event, _ in events]
        preferences = await self.repository.preferences_of_clients(clients)
        unknown = [client for client, (event, _) in zip(clients, events, strict=True)
                   if not event.coach_id]
        coaches = await self.membership.coaches_of(unknown) if unknown else {}
        planned_at = self.clock.now()
        changes = []
        coachless = []
        for client, (event, context) in zip(clients, events, strict=True):
            plan, plan_source = plan_of(preferences.get(client), self.settings)
            coach_id = event.coach_id or coaches.get(client)
            goal, schedule = planned_goal(event, plan, plan_source, planned_at, coach_id)
            changes.append(schedule_change(event.tenant_id, event.goal_id, context.message.id,
                                           goal, schedule))
            if coach_id is None:
                coachless.append(client)
        await self.repository.plan_schedules(changes)
        # The enrolment may have been handled meanwhile: it fills in the schedules that
        # exist when it runs, this re-read of the roster covers the ones just written.
        await self._adopt_coaches(coachless)

    async def _adopt_coaches(
            self, clients: Sequence[ClientRef],
            schedules: Mapping[ClientRef, Sequence[dict[str, Any]]] | None = None) -> None:
        """Give the clients' coaches to their schedules planned without one: coaches in one
        read, schedules (read now, unless given: read after the coaches were written) in
        one, one write."""
        if not clients:
            return
        coaches = await self.membership.coaches_of(clients)
        if not coaches:
            return
        if schedules is None:
            schedules = await self.repository.schedules_of_clients(list(coaches))
        unassigned: dict[str, list[Any]] = {}
        for client, coach_id in coaches.items():
            for schedule in schedules.get(client, ()):
                if schedule.get("coach_id") is None:
                    unassigned.setdefault(coach_id, []).append(schedule["_id"])
        await self.repository.give_unassigned(unassigned)

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
        await self.checkin_due_together([(event, context)])

    async def checkin_due_together(self,
                                   events: Sequence[tuple[CheckInDue, EventContext]]) -> None:
        """`checkin_due` for a wave (a cohort's Friday): the goals' schedules and previous
        check-ins in one read each, the check-ins opened in one `apply_each_once`."""
        schedules = await self.repository.schedules_of_goals(
            [(event.tenant_id, event.goal_id) for event, _ in events])
        previous = await self.repository.checkins_of_periods(
            [(event.tenant_id, event.goal_id, event.period - 1) for event, _ in events
             if event.period > 1])
        openings = []
        for event, context in events:
            schedule = schedules.get((event.tenant_id, event.goal_id))
            if schedule is None:
                continue  # the goal's data was erased; nothing to open
            before = previous.get((event.tenant_id, event.goal_id, event.period - 1))
            reflection_context = checkin_context(
                event.period, before is not None and before["status"] == MISSED)
            window = CheckInWindow.of(event.due_at, self.settings.on_time, self.settings.grace)
            openings.append(Change(checkin_key(event.tenant_id, event.checkin_id),
                                   context.message.id, {"$setOnInsert": {
                "client_id": event.client_id, "goal_id": event.goal_id, "period": event.period,
                "due_at": event.due_at, "on_time_until": window.on_time_until,
                "respond_by": event.respond_by, "coach_id": schedule.get("coach_id"),
                "status": OPEN if schedule["status"] == ACTIVE else CANCELLED,
                "reflection_context": reflection_context.value,
                "prompt_ids": [p.prompt_id for p in choose_prompts(reflection_context,
                                                                   event.period)],
                "lease_until": NO_LEASE}}))
        await self.repository.open_checkins(openings)

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
