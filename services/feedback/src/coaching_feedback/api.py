"""The feedback service's HTTP API.

Access: check-in content, reflections, reviews and feedback are confidential coaching content,
readable by the client and their coach only; a reflection also by the people the client
shared it with. Integrations see schedules (they drive reminders) but no content. Admins get
aggregates only. Callers who may not see a thing get 404, so nobody can probe what exists.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from coaching_shared.auth import CurrentPrincipal, Principal, Role, require
from coaching_shared.commands import IdempotencyKey, command_id
from coaching_shared.contracts import CheckInCompleted, FeedbackGiven, KpiReading
from coaching_shared.events import EventMessage, derived_event_id
from coaching_shared.mongo import without_internals
from coaching_shared.problems import InvalidField, problem_responses
from coaching_shared.service import ServiceRuntime, authorize_client, runtime_of
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from coaching_feedback.clock import Clock
from coaching_feedback.competencies import COMPETENCIES
from coaching_feedback.domain import (
    MIN_ANSWERS_PER_GROUP,
    CheckInPlan,
    CheckInWindow,
    NoSlotAvailable,
    RaterGroup,
    completion_rate,
    month_bounds,
    rater_response_key,
    rater_token_hash,
    round_closes_at,
)
from coaching_feedback.handlers import (
    ON_REQUEST,
    SOURCE,
    ScheduleBusy,
    ScheduleEnded,
    close_feedback_round,
    record_progress_review,
    replan_schedule,
    stored_plan,
)
from coaching_feedback.prompts import PROMPTS, PromptContext, prompts_for
from coaching_feedback.repository import (
    ACTIVE,
    ANSWERED,
    CLOSED,
    COMPLETED,
    MISSED,
    NO_LEASE,
    OPEN,
    FeedbackRepository,
)

router = APIRouter(prefix="/v1")
Runtime = Annotated[ServiceRuntime, Depends(runtime_of)]
LEASE_FIELDS = {"lease_owner", "lease_until", "revision"}


def repository_of(request: Request) -> FeedbackRepository:
    return request.app.state.feedback_repository


def clock_of(request: Request) -> Clock:
    return request.app.state.feedback_clock


Repository = Annotated[FeedbackRepository, Depends(repository_of)]
CurrentClock = Annotated[Clock, Depends(clock_of)]


def present(document: dict[str, Any]) -> dict[str, Any]:
    """A stored document as the API shows it: no delivery or lease bookkeeping."""
    return {k: v for k, v in without_internals(document).items() if k not in LEASE_FIELDS}


def not_found(what: str, identifier: str) -> HTTPException:
    return HTTPException(404, f"no {what} {identifier!r} visible to you")


async def reveal(document: dict[str, Any] | None, what: str, identifier: str,
                 authorize: Callable[[str], Awaitable[object]]) -> dict[str, Any]:
    """The document if `authorize` lets the caller at its client's data; else 404 naming what
    was asked for (not the client), so nothing about the client leaks."""
    if document is not None:
        try:
            await authorize(document["client_id"])
            return document
        except HTTPException as error:
            if error.status_code != 404:
                raise
    raise not_found(what, identifier)


async def authorize_content(principal: Principal, client_id: str,
                            runtime: ServiceRuntime) -> str | None:
    """404 unless the caller is the client or their coach; returns the coach's id."""
    coach_id = await runtime.membership.coach_of(principal.tenant_id, client_id)
    is_client = principal.has(Role.CLIENT) and principal.subject == client_id
    is_coach = principal.has(Role.COACH) and coach_id is not None and principal.subject == coach_id
    if not (is_client or is_coach):
        raise HTTPException(404, f"no client {client_id!r} visible to you")
    return coach_id


def require_self(principal: Principal, client_id: str, action: str) -> None:
    if not (principal.has(Role.CLIENT) and principal.subject == client_id):
        raise HTTPException(403, f"only the client can {action}")


async def require_their_coach(principal: Principal, client_id: str,
                              runtime: ServiceRuntime) -> None:
    await authorize_content(principal, client_id, runtime)
    require(principal, Role.COACH)
    if principal.subject == client_id:
        raise HTTPException(403, "requires the client's coach")


# -- request models ----------------------------------------------------------------------------


class KpiReadingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kpi_id: str = Field(min_length=1, max_length=128)
    value: float = Field(allow_inf_nan=False)
    measured_at: datetime | None = Field(default=None, description="defaults to submission time")


class ReflectionAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt_id: str = Field(description="a prompt of the library, see /v1/reflection-prompts")
    answer: str = Field(min_length=1, max_length=5000)
    shared_with: list[str] = Field(default_factory=list, max_length=20,
                                   description="people (ids) who may read this answer too")

    @field_validator("prompt_id")
    @classmethod
    def _known_prompt(cls, value: str) -> str:
        if value not in PROMPTS:
            raise ValueError(f"unknown reflection prompt {value!r}")
        return value


class CheckInSubmission(BaseModel):
    """What a client reports at a check-in."""

    model_config = ConfigDict(extra="forbid")

    confidence: int = Field(ge=1, le=5, description="1 = not confident ... 5 = very confident")
    kpi_readings: list[KpiReadingIn] = Field(default_factory=list, max_length=50)
    progress_notes: str = Field(default="", max_length=5000)
    blockers: list[str] = Field(default_factory=list, max_length=10)
    wins: list[str] = Field(default_factory=list, max_length=10)
    reflections: list[ReflectionAnswer] = Field(default_factory=list, max_length=10)

    @field_validator("blockers", "wins")
    @classmethod
    def _short_items(cls, values: list[str]) -> list[str]:
        items = [" ".join(value.split()) for value in values]
        if any(not item or len(item) > 200 for item in items):
            raise ValueError("items must have 1 to 200 characters")
        return items


class StandaloneReflection(ReflectionAnswer):
    goal_id: str | None = Field(default=None, max_length=128)


class Sharing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shared_with: list[str] = Field(max_length=20)


class PreferencesUpdate(CheckInPlan):
    apply_to_active_goals: bool = Field(
        default=True, description="also move the schedules of the client's active goals")


class FeedbackText(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=5000)


class ReviewNotes(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notes: str = Field(min_length=1, max_length=5000)


# -- coaches' caseload ---------------------------------------------------------------------------


@router.get("/caseload", responses=problem_responses(403), tags=["caseload"])
async def my_caseload(principal: CurrentPrincipal, runtime: Runtime) -> list[dict[str, Any]]:
    """The clients assigned to the calling coach."""
    require(principal, Role.COACH)
    return await runtime.membership.caseload(principal.tenant_id, principal.subject)


# -- schedules -------------------------------------------------------------------------------


async def replan(repository: FeedbackRepository, schedule: dict[str, Any],
                 plan: CheckInPlan, clock: Clock) -> dict[str, Any]:
    """Change a schedule's plan, answering problems as HTTP errors."""
    try:
        return await replan_schedule(repository, schedule, plan, clock)
    except ScheduleEnded as ended:
        raise HTTPException(409, f"the schedule has ended ({ended})") from ended
    except NoSlotAvailable as error:
        raise InvalidField("skip_windows", str(error)) from error
    except ScheduleBusy as busy:
        raise HTTPException(409, str(busy)) from busy


async def visible_schedule(principal: Principal, goal_id: str, repository: FeedbackRepository,
                           runtime: ServiceRuntime) -> dict[str, Any]:
    return await reveal(await repository.schedule(principal.tenant_id, goal_id),
                        "check-in schedule for goal", goal_id,
                        lambda client_id: authorize_client(principal, client_id, runtime))


@router.get("/clients/{client_id}/schedules", responses=problem_responses(404), tags=["schedules"])
async def client_schedules(client_id: str, principal: CurrentPrincipal, runtime: Runtime,
                           repository: Repository) -> list[dict[str, Any]]:
    """The check-in schedules of the client's goals."""
    await authorize_client(principal, client_id, runtime)
    return [present(s) for s in await repository.schedules_of(principal.tenant_id, client_id)]


@router.get("/goals/{goal_id}/schedule", responses=problem_responses(404), tags=["schedules"])
async def goal_schedule(goal_id: str, principal: CurrentPrincipal, runtime: Runtime,
                        repository: Repository) -> dict[str, Any]:
    """When the goal's check-ins fall due: the plan, the next period and its due time."""
    return present(await visible_schedule(principal, goal_id, repository, runtime))


@router.put("/goals/{goal_id}/schedule", tags=["schedules"],
            responses=problem_responses(403, 404, 409))
async def change_goal_schedule(goal_id: str, plan: CheckInPlan, principal: CurrentPrincipal,
                               runtime: Runtime, repository: Repository,
                               clock: CurrentClock) -> dict[str, Any]:
    """Change the cadence, timezone, weekday, hour or skip windows of a goal's check-ins.

    A check-in already due still comes once; the next one moves to the new plan's first slot
    after now, keeping its period number: nothing is duplicated, nothing dropped.
    """
    schedule = await visible_schedule(principal, goal_id, repository, runtime)
    return present(await replan(repository, schedule, plan, clock))


@router.get("/clients/{client_id}/checkin-preferences", tags=["schedules"],
            responses=problem_responses(404))
async def checkin_preferences(client_id: str, principal: CurrentPrincipal, runtime: Runtime,
                              repository: Repository) -> dict[str, Any]:
    """The plan new goals of the client get (the service's defaults until stated)."""
    await authorize_client(principal, client_id, runtime)
    preferences = await repository.preferences_of(principal.tenant_id, client_id) or {}
    if preferences.get("plan"):
        return preferences["plan"]
    settings = runtime.settings
    return stored_plan(settings.default_plan(preferences.get("timezone", "UTC")))


@router.put("/clients/{client_id}/checkin-preferences", tags=["schedules"],
            responses=problem_responses(403, 404, 409))
async def set_checkin_preferences(client_id: str, update: PreferencesUpdate,
                                  principal: CurrentPrincipal, runtime: Runtime,
                                  repository: Repository, clock: CurrentClock) -> dict[str, Any]:
    """Set the client's check-in plan (e.g. holidays as skip windows) for new goals and,
    unless told otherwise, for the active ones."""
    await authorize_client(principal, client_id, runtime)
    plan = CheckInPlan.model_validate(update.model_dump(exclude={"apply_to_active_goals"}))
    await repository.save_preferences(principal.tenant_id, client_id, stored_plan(plan))
    moved = []
    if update.apply_to_active_goals:
        for schedule in await repository.schedules_of(principal.tenant_id, client_id, ACTIVE):
            moved.append(present(await replan(repository, schedule, plan, clock)))
    return {"plan": stored_plan(plan), "schedules": moved}


# -- check-ins -------------------------------------------------------------------------------


def present_checkin(checkin: dict[str, Any],
                    reflections: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    shown = present(checkin)
    shown["prompts"] = [{"prompt_id": p, "text": PROMPTS[p].text}
                        for p in checkin.get("prompt_ids", []) if p in PROMPTS]
    if reflections is not None:
        shown["reflections"] = [present(r) for r in reflections]
    return shown


async def visible_checkin(principal: Principal, checkin_id: str, repository: FeedbackRepository,
                          runtime: ServiceRuntime) -> dict[str, Any]:
    return await reveal(await repository.checkin(principal.tenant_id, checkin_id), "check-in",
                        checkin_id,
                        lambda client_id: authorize_content(principal, client_id, runtime))


@router.get("/clients/{client_id}/checkins", responses=problem_responses(404), tags=["check-ins"])
async def client_checkins(client_id: str, principal: CurrentPrincipal, runtime: Runtime,
                          repository: Repository,
                          status: Annotated[str | None, Query(
                              pattern="^(open|completed|missed|cancelled)$")] = None,
                          ) -> list[dict[str, Any]]:
    """The client's check-ins, newest first (client and coach only)."""
    await authorize_content(principal, client_id, runtime)
    return [present_checkin(c) for c in
            await repository.checkins_of(principal.tenant_id, client_id, status)]


@router.get("/checkins/{checkin_id}", responses=problem_responses(404), tags=["check-ins"])
async def get_checkin(checkin_id: str, principal: CurrentPrincipal, runtime: Runtime,
                      repository: Repository) -> dict[str, Any]:
    """One check-in with its prompts, submission and reflections (client and coach only)."""
    checkin = await visible_checkin(principal, checkin_id, repository, runtime)
    reflections = await repository.reflections_of(principal.tenant_id, checkin["client_id"],
                                                  checkin_id)
    return present_checkin(checkin, reflections)


def reflection_documents(principal: Principal, cause_id: str, client_id: str,
                         answers: list[ReflectionAnswer], now: datetime,
                         **links: Any) -> list[dict[str, Any]]:
    """Reflection answers to store; their ids derive from the command (retry-safe)."""
    return [{"tenant_id": principal.tenant_id, "client_id": client_id,
             "reflection_id": derived_event_id(cause_id, f"reflection-{index}"),
             "prompt_id": answer.prompt_id, "context": PROMPTS[answer.prompt_id].context.value,
             "answer": answer.answer, "shared_with": sorted(set(answer.shared_with)),
             "created_at": now, **links}
            for index, answer in enumerate(answers)]


@router.post("/checkins/{checkin_id}/submission", tags=["check-ins"], status_code=201,
             responses=problem_responses(403, 404, 409))
async def submit_checkin(checkin_id: str, submission: CheckInSubmission,
                         principal: CurrentPrincipal, runtime: Runtime, repository: Repository,
                         clock: CurrentClock,
                         idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """The client submits a check-in: KPI readings, notes, confidence, blockers, wins and
    reflections. Late submissions count until the grace period ends; then it is missed."""
    checkin = await visible_checkin(principal, checkin_id, repository, runtime)
    require_self(principal, checkin["client_id"], "submit their check-in")
    cause = command_id(principal, idempotency_key, f"submit-checkin:{checkin_id}")
    if cause not in checkin.get("applied_events", []):
        checkin = await _complete(checkin, submission, cause, principal, repository, runtime,
                                  clock.now())
    await repository.store_reflections(reflection_documents(
        principal, cause, checkin["client_id"], submission.reflections,
        checkin.get("completed_at") or clock.now(), checkin_id=checkin_id,
        goal_id=checkin["goal_id"]))
    reflections = await repository.reflections_of(principal.tenant_id, checkin["client_id"],
                                                  checkin_id)
    return present_checkin(checkin, reflections)


async def _complete(checkin: dict[str, Any], submission: CheckInSubmission, cause: str,
                    principal: Principal, repository: FeedbackRepository,
                    runtime: ServiceRuntime, now: datetime) -> dict[str, Any]:
    if checkin["status"] != OPEN:
        raise HTTPException(409, f"the check-in is {checkin['status']}, no longer open")
    window = CheckInWindow(checkin["due_at"], checkin["on_time_until"], checkin["respond_by"])
    if not window.is_open(now):
        raise HTTPException(409, "the grace period for this check-in is over")
    schedule = await repository.schedule(principal.tenant_id, checkin["goal_id"]) or {}
    known_kpis = {kpi["kpi_id"] for kpi in schedule.get("kpis", [])}
    unknown = sorted({r.kpi_id for r in submission.kpi_readings} - known_kpis)
    if unknown:
        raise InvalidField("kpi_readings", f"the goal has no KPI {', '.join(unknown)}")
    readings = [KpiReading(kpi_id=r.kpi_id, value=r.value, measured_at=r.measured_at or now)
                for r in submission.kpi_readings]
    late = window.is_late(now)
    completed = CheckInCompleted(
        tenant_id=principal.tenant_id, client_id=checkin["client_id"], checkin_id=checkin[
            "checkin_id"], goal_id=checkin["goal_id"], period=checkin["period"],
        completed_at=now, confidence=submission.confidence, late=late, kpi_readings=readings,
        coach_id=checkin.get("coach_id"))
    message = EventMessage.wrap(completed, SOURCE,
                                event_id=derived_event_id(cause, "checkin-completed"))
    document = await repository.complete_checkin(principal.tenant_id, checkin["checkin_id"],
                                                 cause, {
        "completed_at": now, "late": late, "submission": {
            "confidence": submission.confidence,
            "kpi_readings": [r.model_dump() for r in readings],
            "progress_notes": submission.progress_notes, "blockers": submission.blockers,
            "wins": submission.wins}}, message)
    if document is None:  # settled meanwhile: missed by the sweep, or another submission
        fresh = await repository.checkin(principal.tenant_id, checkin["checkin_id"]) or checkin
        if cause in fresh.get("applied_events", []):
            return fresh
        raise HTTPException(409, f"the check-in is {fresh['status']}, no longer open")
    await runtime.relay_document(repository.checkins, document)
    return document


# -- reflections -----------------------------------------------------------------------------


@router.get("/reflection-prompts", tags=["reflections"])
async def reflection_prompts(principal: CurrentPrincipal,
                             context: PromptContext | None = None) -> list[dict[str, str]]:
    """The library of reflection prompts, optionally for one context."""
    contexts = [context] if context else list(PromptContext)
    return [{"prompt_id": p.prompt_id, "context": p.context.value, "text": p.text}
            for c in contexts for p in prompts_for(c)]


@router.get("/clients/{client_id}/reflections", tags=["reflections"],
            responses=problem_responses(404))
async def client_reflections(client_id: str, principal: CurrentPrincipal, runtime: Runtime,
                             repository: Repository) -> list[dict[str, Any]]:
    """The client's reflection answers (client and coach only)."""
    await authorize_content(principal, client_id, runtime)
    return [present(r) for r in await repository.reflections_of(principal.tenant_id, client_id)]


@router.post("/clients/{client_id}/reflections", tags=["reflections"], status_code=201,
             responses=problem_responses(403, 404, 409))
async def add_reflection(client_id: str, reflection: StandaloneReflection,
                         principal: CurrentPrincipal, runtime: Runtime, repository: Repository,
                         clock: CurrentClock,
                         idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """A reflection outside a check-in, e.g. on a prompt offered after an achievement."""
    await authorize_content(principal, client_id, runtime)
    require_self(principal, client_id, "write their reflections")
    cause = command_id(principal, idempotency_key, "reflection")
    documents = reflection_documents(principal, cause, client_id, [reflection], clock.now(),
                                     goal_id=reflection.goal_id, checkin_id=None)
    await repository.store_reflections(documents)
    stored = await repository.reflection(principal.tenant_id, documents[0]["reflection_id"])
    return present(stored or documents[0])


async def visible_reflection(principal: Principal, reflection_id: str,
                             repository: FeedbackRepository,
                             runtime: ServiceRuntime) -> dict[str, Any]:
    reflection = await repository.reflection(principal.tenant_id, reflection_id)
    if reflection is not None and principal.subject in reflection.get("shared_with", []):
        return reflection
    return await reveal(reflection, "reflection", reflection_id,
                        lambda client_id: authorize_content(principal, client_id, runtime))


@router.get("/reflections/{reflection_id}", responses=problem_responses(404), tags=["reflections"])
async def get_reflection(reflection_id: str, principal: CurrentPrincipal, runtime: Runtime,
                         repository: Repository) -> dict[str, Any]:
    """A reflection: for the client, their coach, and whom the client shared it with."""
    reflection = await visible_reflection(principal, reflection_id, repository, runtime)
    shown = present(reflection)
    if principal.subject != reflection["client_id"]:
        shown.pop("shared_with", None)  # who else reads it is the client's business
    return shown


@router.put("/reflections/{reflection_id}/sharing", tags=["reflections"],
            responses=problem_responses(403, 404))
async def share_reflection(reflection_id: str, sharing: Sharing, principal: CurrentPrincipal,
                           runtime: Runtime, repository: Repository) -> dict[str, Any]:
    """The client chooses who else may read a reflection (an empty list un-shares it)."""
    reflection = await visible_reflection(principal, reflection_id, repository, runtime)
    require_self(principal, reflection["client_id"], "share their reflections")
    updated = await repository.share_reflection(principal.tenant_id, reflection_id,
                                                sorted(set(sharing.shared_with)))
    if updated is None:
        raise not_found("reflection", reflection_id)
    return present(updated)


# -- reviews and coach feedback ----------------------------------------------------------------


@router.get("/clients/{client_id}/reviews", responses=problem_responses(404), tags=["reviews"])
async def client_reviews(client_id: str, principal: CurrentPrincipal, runtime: Runtime,
                         repository: Repository) -> list[dict[str, Any]]:
    """The client's progress reviews with the coach's notes (client and coach only)."""
    await authorize_content(principal, client_id, runtime)
    return [present(r) for r in await repository.reviews_of(principal.tenant_id, client_id)]


@router.put("/reviews/{review_id}/notes", responses=problem_responses(403, 404), tags=["reviews"])
async def note_review(review_id: str, notes: ReviewNotes, principal: CurrentPrincipal,
                      runtime: Runtime, repository: Repository,
                      clock: CurrentClock) -> dict[str, Any]:
    """The coach's notes on a progress review."""
    review = await reveal(await repository.review(principal.tenant_id, review_id), "review",
                          review_id,
                          lambda client_id: require_their_coach(principal, client_id, runtime))
    updated = await repository.annotate_review(principal.tenant_id, review_id, notes.notes,
                                               clock.now())
    return present(updated or review)


@router.post("/goals/{goal_id}/reviews", tags=["reviews"], status_code=201,
             responses=problem_responses(403, 404, 409))
async def review_goal_now(goal_id: str, principal: CurrentPrincipal, runtime: Runtime,
                          repository: Repository, clock: CurrentClock,
                          idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """The coach asks for a progress review now, over the check-ins settled since the goal's
    last review (ProgressReviewed); 409 when none settled since."""
    schedule = await visible_schedule(principal, goal_id, repository, runtime)
    await require_their_coach(principal, schedule["client_id"], runtime)
    cause = command_id(principal, idempotency_key, f"review:{goal_id}")
    review_id = derived_event_id(cause, "on-request-review")
    existing = await repository.review(principal.tenant_id, review_id)
    if existing is not None:  # a retried request
        return present(existing)
    since = await repository.last_reviewed_period(principal.tenant_id, goal_id)
    settled = await repository.settled_checkins(principal.tenant_id, goal_id, since + 1)
    review = await record_progress_review(repository, runtime.relay_document, schedule,
                                          settled, review_id, cause, ON_REQUEST, clock.now())
    review = review or await repository.review(principal.tenant_id, review_id)
    if review is None:
        raise HTTPException(409, "no check-in was settled since the goal's last review")
    return present(review)


async def _give_feedback(principal: Principal, client_id: str, subject_kind: str,
                         subject_id: str, text: str, idempotency_key: str | None,
                         repository: FeedbackRepository, runtime: ServiceRuntime,
                         clock: Clock) -> dict[str, Any]:
    await require_their_coach(principal, client_id, runtime)
    cause = command_id(principal, idempotency_key, f"feedback:{subject_kind}:{subject_id}")
    feedback_id = derived_event_id(cause, "feedback")
    given_at = clock.now()
    event = FeedbackGiven(tenant_id=principal.tenant_id, client_id=client_id,
                          feedback_id=feedback_id, coach_id=principal.subject,
                          subject_kind=subject_kind, subject_id=subject_id)
    message = EventMessage.wrap(event, SOURCE, event_id=derived_event_id(cause, "given"))
    document = await repository.record_feedback(principal.tenant_id, feedback_id, cause, {
        "client_id": client_id, "coach_id": principal.subject, "subject_kind": subject_kind,
        "subject_id": subject_id, "text": text, "given_at": given_at}, message)
    await runtime.relay_document(repository.feedback, document)
    stored = document or next(f for f in await repository.feedback_of(principal.tenant_id,
                                                                       client_id)
                              if f["feedback_id"] == feedback_id)
    return present(stored)


@router.post("/checkins/{checkin_id}/feedback", tags=["feedback"], status_code=201,
             responses=problem_responses(403, 404, 409))
async def feedback_on_checkin(checkin_id: str, feedback: FeedbackText,
                              principal: CurrentPrincipal, runtime: Runtime,
                              repository: Repository, clock: CurrentClock,
                              idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """The coach's feedback on a check-in (FeedbackGiven; the text stays here)."""
    checkin = await visible_checkin(principal, checkin_id, repository, runtime)
    return await _give_feedback(principal, checkin["client_id"], "check_in", checkin_id,
                                feedback.text, idempotency_key, repository, runtime, clock)


@router.post("/goals/{goal_id}/feedback", tags=["feedback"], status_code=201,
             responses=problem_responses(403, 404, 409))
async def feedback_on_goal(goal_id: str, feedback: FeedbackText, principal: CurrentPrincipal,
                           runtime: Runtime, repository: Repository, clock: CurrentClock,
                           idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """The coach's feedback on a goal (FeedbackGiven; the text stays here)."""
    schedule = await visible_schedule(principal, goal_id, repository, runtime)
    return await _give_feedback(principal, schedule["client_id"], "goal", goal_id,
                                feedback.text, idempotency_key, repository, runtime, clock)


@router.get("/clients/{client_id}/feedback", responses=problem_responses(404), tags=["feedback"])
async def client_feedback(client_id: str, principal: CurrentPrincipal, runtime: Runtime,
                          repository: Repository) -> list[dict[str, Any]]:
    """The coach's feedback to the client (client and coach only)."""
    await authorize_content(principal, client_id, runtime)
    return [present(f) for f in await repository.feedback_of(principal.tenant_id, client_id)]


@router.get("/clients/{client_id}/risk-signals", responses=problem_responses(404), tags=["reviews"])
async def client_risk_signals(client_id: str, principal: CurrentPrincipal, runtime: Runtime,
                              repository: Repository) -> list[dict[str, Any]]:
    """Why the client was flagged at risk, newest first (client and coach only)."""
    await authorize_content(principal, client_id, runtime)
    return [present(r) for r in
            await repository.risk_signals_of(principal.tenant_id, client_id)]


# -- program metrics -------------------------------------------------------------------------


@router.get("/program-metrics", responses=problem_responses(403), tags=["program metrics"])
async def program_metrics(principal: CurrentPrincipal, repository: Repository,
                          clock: CurrentClock) -> dict[str, Any]:
    """Aggregates for program admins: completion rate, engagement, reviews; never content."""
    require(principal, Role.ADMIN)
    counts = await repository.checkin_counts(principal.tenant_id)
    month_start, month_end = month_bounds(clock.now())
    rate = completion_rate(counts[COMPLETED], counts[MISSED])
    return {"checkins": counts, "completion_rate": rate,
            "clients_engaged_this_month": await repository.engaged_clients(
                principal.tenant_id, month_start, month_end),
            "month": month_start.strftime("%Y-%m"),
            "reviews_done": await repository.review_count(principal.tenant_id)}


# -- multi-rater (360) feedback ----------------------------------------------------------------
#
# A client's round names raters and competencies. Each rater gets a link with a random token
# (only its hash is stored) and answers once without an account. Results are frozen when the
# round closes and shown per rater group only where the group has enough answers.

Rating = Annotated[int, Field(ge=1, le=5)]
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
TENANT_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
ROUND_HIDDEN = {"results", "rater_groups"}


class RaterNomination(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    email: str = Field(max_length=254, pattern=EMAIL_PATTERN)
    group: RaterGroup


class RoundRequest(BaseModel):
    """A client's request for multi-rater feedback."""

    model_config = ConfigDict(extra="forbid")

    competencies: list[str] = Field(min_length=1, max_length=15,
                                    description="competency ids, see /v1/competencies")
    raters: list[RaterNomination] = Field(min_length=1, max_length=50)
    closes_at: datetime | None = Field(default=None,
                                       description="defaults to two weeks from now")

    @field_validator("competencies")
    @classmethod
    def _known_competencies(cls, values: list[str]) -> list[str]:
        unknown = sorted(set(values) - set(COMPETENCIES))
        if unknown:
            raise ValueError(f"unknown competencies: {', '.join(unknown)}")
        if len(set(values)) != len(values):
            raise ValueError("competencies must not repeat")
        return values

    @field_validator("raters")
    @classmethod
    def _distinct_raters(cls, values: list[RaterNomination]) -> list[RaterNomination]:
        emails = [rater.email.lower() for rater in values]
        if len(set(emails)) != len(emails):
            raise ValueError("each rater (e-mail) may be nominated once")
        return values


class Ratings(BaseModel):
    """Ratings from 1 (rarely shows this) to 5 (consistently shows this) by competency;
    competencies the rater cannot judge are left out."""

    model_config = ConfigDict(extra="forbid")

    ratings: dict[str, Rating] = Field(min_length=1)
    comment: str = Field(default="", max_length=2000)


def competency_view(competency_id: str) -> dict[str, str]:
    competency = COMPETENCIES[competency_id]
    return {"competency_id": competency_id, "label": competency.label,
            "observed_behaviour": competency.observed_behaviour}


def present_round(feedback_round: dict[str, Any],
                  raters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A round for its client and coach: who was asked about what, never who answered."""
    shown = {k: v for k, v in present(feedback_round).items() if k not in ROUND_HIDDEN}
    shown["competencies"] = [competency_view(c) for c in feedback_round["competencies"]]
    if raters is not None:
        shown["raters"] = [{"rater_id": r["rater_id"], "name": r["name"], "email": r["email"],
                            "group": r["group"]} for r in raters]
    return shown


def check_ratings(ratings: Ratings, feedback_round: dict[str, Any]) -> None:
    unknown = sorted(set(ratings.ratings) - set(feedback_round["competencies"]))
    if unknown:
        raise InvalidField("ratings", f"the round does not ask about {', '.join(unknown)}")


async def visible_round(principal: Principal, round_id: str, repository: FeedbackRepository,
                        runtime: ServiceRuntime) -> dict[str, Any]:
    return await reveal(await repository.feedback_round(principal.tenant_id, round_id),
                        "feedback round", round_id,
                        lambda client_id: authorize_content(principal, client_id, runtime))


async def invite(repository: FeedbackRepository, runtime: ServiceRuntime,
                 feedback_round: dict[str, Any], raters: list[dict[str, Any]],
                 ) -> list[dict[str, Any]]:
    """Fresh links for the raters who have not answered; earlier links of theirs stop working.

    The token is shown here once and kept nowhere but in the link.
    """
    tenant_id, round_id = feedback_round["tenant_id"], feedback_round["round_id"]
    invitations = []
    for rater in raters:
        token = secrets.token_urlsafe(32)
        if await repository.invite_rater(tenant_id, round_id, rater["rater_id"],
                                         rater_token_hash(token), rater):
            invitations.append({
                "rater_id": rater["rater_id"], "name": rater["name"], "email": rater["email"],
                "group": rater["group"], "expires_at": feedback_round["closes_at"],
                "link": f"{runtime.settings.base_url}/v1/tenants/{tenant_id}"
                        f"/rater-invitations/{token}"})
    return invitations


@router.get("/competencies", tags=["360 feedback"])
async def competencies(principal: CurrentPrincipal) -> list[dict[str, str]]:
    """The competencies a 360 round can ask about (O*NET skill ids)."""
    return [competency_view(c) for c in COMPETENCIES]


@router.post("/clients/{client_id}/feedback-rounds", tags=["360 feedback"], status_code=201,
             responses=problem_responses(403, 404, 409))
async def start_feedback_round(client_id: str, request: RoundRequest,
                               principal: CurrentPrincipal, runtime: Runtime,
                               repository: Repository, clock: CurrentClock,
                               idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """The client asks raters for feedback on chosen competencies.

    The answer carries one link per rater, for the client to send (the platform does not
    mail them yet). A retry with the same Idempotency-Key gives the same round and new links
    in place of the earlier ones.
    """
    coach_id = await authorize_content(principal, client_id, runtime)
    require_self(principal, client_id, "ask for 360 feedback")
    now = clock.now()
    try:
        closes_at = round_closes_at(now, request.closes_at,
                                    runtime.settings.multirater_open_days,
                                    runtime.settings.multirater_max_open_days)
    except ValueError as error:
        raise InvalidField("closes_at", str(error)) from error
    cause = command_id(principal, idempotency_key, "feedback-round")
    round_id = derived_event_id(cause, "feedback-round")
    feedback_round = await repository.open_round(principal.tenant_id, round_id, cause, {
        "client_id": client_id, "coach_id": coach_id, "competencies": request.competencies,
        "rater_groups": sorted({r.group.value for r in request.raters}), "status": OPEN,
        "created_at": now, "closes_at": closes_at, "self_rating": None,
        "lease_until": NO_LEASE}) or await repository.feedback_round(principal.tenant_id,
                                                                     round_id)
    if feedback_round is None:
        raise not_found("feedback round", round_id)
    if feedback_round["status"] != OPEN:
        raise HTTPException(409, "the round has closed")
    raters = [{"tenant_id": principal.tenant_id, "client_id": client_id, "round_id": round_id,
               "rater_id": derived_event_id(cause, f"rater-{index}"), "name": rater.name,
               "email": rater.email, "group": rater.group.value}
              for index, rater in enumerate(request.raters)]
    shown = present_round(feedback_round, raters)
    shown["invitations"] = await invite(repository, runtime, feedback_round, raters)
    return shown


@router.get("/clients/{client_id}/feedback-rounds", tags=["360 feedback"],
            responses=problem_responses(404))
async def client_feedback_rounds(client_id: str, principal: CurrentPrincipal, runtime: Runtime,
                                 repository: Repository) -> list[dict[str, Any]]:
    """The client's 360 rounds, newest first (client and coach only)."""
    await authorize_content(principal, client_id, runtime)
    return [present_round(r) for r in await repository.rounds_of(principal.tenant_id,
                                                                  client_id)]


@router.get("/feedback-rounds/{round_id}", responses=problem_responses(404), tags=["360 feedback"])
async def get_feedback_round(round_id: str, principal: CurrentPrincipal, runtime: Runtime,
                             repository: Repository) -> dict[str, Any]:
    """A round with its raters; whether a particular rater answered is never shown."""
    feedback_round = await visible_round(principal, round_id, repository, runtime)
    return present_round(feedback_round,
                         await repository.raters_of(principal.tenant_id, round_id))


@router.post("/feedback-rounds/{round_id}/raters/{rater_id}/invitation", tags=["360 feedback"],
             responses=problem_responses(403, 404, 409))
async def reissue_invitation(round_id: str, rater_id: str, principal: CurrentPrincipal,
                             runtime: Runtime, repository: Repository) -> dict[str, Any]:
    """A new link for a rater who lost theirs (the old one stops working)."""
    feedback_round = await visible_round(principal, round_id, repository, runtime)
    require_self(principal, feedback_round["client_id"], "invite their raters")
    if feedback_round["status"] != OPEN:
        raise HTTPException(409, "the round has closed")
    rater = next((r for r in await repository.raters_of(principal.tenant_id, round_id)
                  if r["rater_id"] == rater_id), None)
    if rater is None:
        raise not_found("rater", rater_id)
    invitations = await invite(repository, runtime, feedback_round, [rater])
    if not invitations:
        raise HTTPException(409, "this rater has answered already")
    return invitations[0]


@router.put("/feedback-rounds/{round_id}/self-rating", tags=["360 feedback"],
            responses=problem_responses(403, 404, 409))
async def rate_self(round_id: str, ratings: Ratings, principal: CurrentPrincipal,
                    runtime: Runtime, repository: Repository,
                    clock: CurrentClock) -> dict[str, Any]:
    """The client rates themself on the round's competencies (while it is open)."""
    feedback_round = await visible_round(principal, round_id, repository, runtime)
    require_self(principal, feedback_round["client_id"], "rate themself")
    check_ratings(ratings, feedback_round)
    updated = await repository.save_self_rating(principal.tenant_id, round_id, {
        "ratings": ratings.ratings, "comment": ratings.comment, "rated_at": clock.now()})
    if updated is None:
        raise HTTPException(409, "the round has closed")
    return present_round(updated)


@router.post("/feedback-rounds/{round_id}/close", tags=["360 feedback"],
             responses=problem_responses(403, 404, 409))
async def close_round(round_id: str, principal: CurrentPrincipal, runtime: Runtime,
                      repository: Repository, clock: CurrentClock) -> dict[str, Any]:
    """The client or their coach closes the round before its deadline; closing a closed
    round changes nothing."""
    feedback_round = await visible_round(principal, round_id, repository, runtime)
    closed_by = "client" if principal.subject == feedback_round["client_id"] else "coach"
    if feedback_round["status"] == OPEN:
        await close_feedback_round(repository, runtime.relay_document, feedback_round,
                                   closed_by, clock.now())
    return present_round(await visible_round(principal, round_id, repository, runtime))


@router.get("/feedback-rounds/{round_id}/results", tags=["360 feedback"],
            responses=problem_responses(404, 409))
async def feedback_round_results(round_id: str, principal: CurrentPrincipal, runtime: Runtime,
                                 repository: Repository) -> dict[str, Any]:
    """The anonymised results next to the self-rating (client and coach, once closed).

    A rater group with fewer than three answers shows nothing, not even how many answered;
    comments appear only with a group that shows, and never with who wrote them. Results
    are not shown while the round is open: watching them change would reveal each answer.
    """
    feedback_round = await visible_round(principal, round_id, repository, runtime)
    if feedback_round["status"] != CLOSED:
        raise HTTPException(409, "results are shown once the round has closed")
    self_rating = (feedback_round.get("self_rating") or {}).get("ratings", {})
    groups = []
    for result in feedback_round["results"]:
        if result["qualifies"]:
            groups.append(result)
        else:
            groups.append({"group": result["group"], "qualifies": False,
                           "note": "not enough answers to show this group anonymously"})
    return {"round_id": round_id, "closed_at": feedback_round["closed_at"],
            "minimum_answers_per_group": MIN_ANSWERS_PER_GROUP,
            "competencies": [{**competency_view(c), "self": self_rating.get(c)}
                             for c in feedback_round["competencies"]],
            "groups": groups}


async def invited_rater(tenant_id: str, token: str, repository: FeedbackRepository,
                        clock: Clock) -> tuple[dict[str, Any], dict[str, Any]]:
    """The rater a link token belongs to and their round: 404 for an unknown token, 409 once
    answered, 410 once the round closed or its deadline passed."""
    rater = await repository.rater_by_token(tenant_id, rater_token_hash(token))
    feedback_round = rater and await repository.feedback_round(tenant_id, rater["round_id"])
    if rater is None or feedback_round is None:
        raise HTTPException(404, "this feedback link is not valid")
    if rater["status"] == ANSWERED:
        raise HTTPException(409, "you have given your feedback already, thank you")
    if feedback_round["status"] != OPEN or clock.now() > feedback_round["closes_at"]:
        raise HTTPException(410, "this feedback round has closed")
    return rater, feedback_round


RaterTenant = Annotated[str, Path(pattern=TENANT_PATTERN)]
RaterToken = Annotated[str, Path(min_length=20, max_length=100)]


@router.get("/tenants/{tenant_id}/rater-invitations/{token}", tags=["360 feedback"],
            responses=problem_responses(404, 409, 410))
async def rater_invitation(tenant_id: RaterTenant, token: RaterToken, repository: Repository,
                           clock: CurrentClock) -> dict[str, Any]:
    """What a rater is asked (no account: the link's token is the authorisation)."""
    rater, feedback_round = await invited_rater(tenant_id, token, repository, clock)
    return {"rater_name": rater["name"], "group": rater["group"],
            "closes_at": feedback_round["closes_at"],
            "scale": "1 = rarely shows this ... 5 = consistently shows this; leave out what "
                     "you cannot judge",
            "competencies": [competency_view(c) for c in feedback_round["competencies"]]}


@router.post("/tenants/{tenant_id}/rater-invitations/{token}/response", tags=["360 feedback"],
             responses=problem_responses(404, 409, 410),
             status_code=201)
async def rater_response(tenant_id: RaterTenant, token: RaterToken, ratings: Ratings,
                         repository: Repository, clock: CurrentClock) -> dict[str, str]:
    """A rater's ratings and comment, once per link; shown only pooled with their group."""
    rater, feedback_round = await invited_rater(tenant_id, token, repository, clock)
    check_ratings(ratings, feedback_round)
    stored = await repository.record_response({
        "_id": rater_response_key(token), "tenant_id": tenant_id,
        "client_id": feedback_round["client_id"], "round_id": feedback_round["round_id"],
        "group": rater["group"], "ratings": ratings.ratings, "comment": ratings.comment})
    # Also after a crash between the two writes: the stored answer marks the rater answered.
    await repository.mark_answered(tenant_id, rater["round_id"], rater["rater_id"])
    if not stored:
        raise HTTPException(409, "you have given your feedback already, thank you")
    return {"status": "received"}
