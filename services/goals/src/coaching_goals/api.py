"""The goals service's HTTP API.

Personal goal data is visible to the client, their coach and integrations (`authorize_client`);
admins get counts only. Every POST and PATCH takes an optional `Idempotency-Key`: a retried
request with the same key takes effect once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from coaching_shared.auth import CurrentPrincipal, Principal, Role, require
from coaching_shared.commands import REPEATED_COMMAND, IdempotencyKey, command_id
from coaching_shared.events import utc_now
from coaching_shared.mongo import without_internals
from coaching_shared.problems import InvalidField, problem, problem_responses
from coaching_shared.service import ServiceRuntime, authorize_client, runtime_of
from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from coaching_goals.domain import (
    LIVE,
    ActionChange,
    ActionDraft,
    Goal,
    GoalDraft,
    GoalEdit,
    GoalRuleError,
    GoalStateConflict,
    GoalStatus,
    InvalidGoal,
    Measurement,
    NextAction,
    Outcome,
    OverrideNotAllowed,
    SmartCheck,
    SmartCheckFailed,
    SmartContext,
    SmartLimits,
    SmartLimitsChange,
    abandon_goal,
    activate_goal,
    add_action,
    change_action,
    check_parent,
    draft_goal,
    edit_goal,
    effective_limits,
    rank_next_actions,
    record_measurements,
    smart_check,
)
from coaching_goals.handlers import GoalsHandlers
from coaching_goals.repository import GoalsRepository
from coaching_goals.settings import GoalsSettings

router = APIRouter(prefix="/v1")
# The goal fields each SMART letter judges, so a failed check names what to change.
SMART_FIELDS = {"S": "description", "M": "kpis", "A": "kpis", "R": "relevant_to",
                "T": "due_date"}
Runtime = Annotated[ServiceRuntime, Depends(runtime_of)]
GOAL = "/clients/{client_id}/goals/{goal_id}"


class AcceptGoal(BaseModel):
    """Accept a suggestion or draft, optionally with last edits and a coach's override."""

    model_config = ConfigDict(extra="forbid")

    edits: GoalEdit | None = None
    override_reason: str | None = Field(
        default=None, min_length=10, max_length=500,
        description="the coach's reason to activate the goal although the SMART check failed")


class AbandonGoal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500)


class MeasurementInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kpi_id: str = Field(min_length=1, max_length=64)
    value: float = Field(allow_inf_nan=False)
    measured_at: datetime | None = Field(default=None, description="defaults to now")


def _settings(runtime: ServiceRuntime) -> GoalsSettings:
    return runtime.settings  # type: ignore[return-value]  # build_service got GoalsSettings


def _repository(runtime: ServiceRuntime) -> GoalsRepository:
    return GoalsRepository(runtime.db, runtime.relay_document)


def _handlers(runtime: ServiceRuntime) -> GoalsHandlers:
    return GoalsHandlers(_repository(runtime), _settings(runtime), runtime.membership)


def _view(goal: Goal, *, measurements: bool = True) -> dict[str, Any]:
    exclude = {"revision"} if measurements else {"revision", "measurements"}
    return goal.model_dump(mode="json", exclude=exclude)


def _refusal(error: GoalRuleError) -> HTTPException:
    if isinstance(error, OverrideNotAllowed):
        return HTTPException(403, str(error))
    if isinstance(error, GoalStateConflict):
        return HTTPException(409, str(error))
    # The goal rules write "<field>: <why>" when one field is at fault; else the goal is.
    field, _, why = str(error).partition(": ")
    if why and field.replace("_", "").isalnum():
        return InvalidField(field, why)
    return InvalidField("goal", str(error))


def _no_goal(goal_id: str) -> HTTPException:
    return HTTPException(404, f"no goal {goal_id!r} for this client")


async def _change(runtime: ServiceRuntime, principal: Principal, client_id: str, goal_id: str,
                  cause_id: str, decide: Callable[[Goal], Outcome]) -> Goal:
    """Run one goal change for a request, mapping refusals to problem details."""
    try:
        change = await _handlers(runtime).change((principal.tenant_id, client_id, goal_id),
                                                 cause_id, decide)
    except SmartCheckFailed:
        raise  # the accept endpoint answers it with the whole check
    except GoalRuleError as error:
        raise _refusal(error) from error
    if change is None:
        raise _no_goal(goal_id)
    return change.goal


async def _goal_command(runtime: ServiceRuntime, principal: Principal, client_id: str,
                        goal_id: str, idempotency_key: str | None, operation: str,
                        decide: Callable[[Goal, str, datetime], Outcome]) -> dict[str, Any]:
    """The common shape of a command on one goal: authorize, derive the cause, change.

    `decide(goal, cause_id, now)` makes the change; the cause id doubles as the id of
    anything the command creates, so a retry creates nothing twice.
    """
    await authorize_client(principal, client_id, runtime)
    cause = command_id(principal, idempotency_key, f"{operation}|{goal_id}")
    now = utc_now()
    goal = await _change(runtime, principal, client_id, goal_id, cause,
                         lambda goal: decide(goal, cause, now))
    return _view(goal)


async def _limits(runtime: ServiceRuntime, tenant_id: str) -> SmartLimits:
    stored = await _repository(runtime).tenant_smart_limits(tenant_id)
    return effective_limits(_settings(runtime).smart_limits, stored)


async def _smart_context(runtime: ServiceRuntime, tenant_id: str,
                         client_id: str) -> SmartContext:
    results = await _repository(runtime).assessments_of(tenant_id, client_id)
    return SmartContext(
        development_areas=frozenset(a for r in results for a in r.get("development_areas", [])),
        assessment_ids=frozenset(r["assessment_id"] for r in results))


# -- assessment results ------------------------------------------------------------------

@router.get("/clients/{client_id}/assessment-results", tags=["assessment results"],
            responses=problem_responses(404))
async def list_assessment_results(client_id: str, principal: CurrentPrincipal,
                                  runtime: Runtime) -> list[dict[str, Any]]:
    """The completed assessments goal suggestions build on, oldest first."""
    await authorize_client(principal, client_id, runtime)
    results = await _repository(runtime).assessments_of(principal.tenant_id, client_id)
    return [without_internals(result) for result in results]


# -- goals -------------------------------------------------------------------------------

@router.get("/clients/{client_id}/goals", responses=problem_responses(404), tags=["goals"])
async def list_goals(client_id: str, principal: CurrentPrincipal, runtime: Runtime,
                     status: Annotated[list[GoalStatus] | None, Query()] = None,
                     ) -> list[dict[str, Any]]:
    """The client's goals and suggestions, oldest first; filter with `status` (repeatable)."""
    await authorize_client(principal, client_id, runtime)
    goals = await _repository(runtime).goals_of(principal.tenant_id, client_id, status)
    return [_view(goal, measurements=False) for goal in goals]


@router.post("/clients/{client_id}/goals", tags=["goals"], status_code=201,
             responses={**REPEATED_COMMAND, **problem_responses(403, 404, 409)})
async def create_goal(client_id: str, draft: GoalDraft, principal: CurrentPrincipal,
                      runtime: Runtime, response: Response,
                      idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """Write a new goal as a draft; it becomes active when accepted."""
    await authorize_client(principal, client_id, runtime)
    repository = _repository(runtime)
    if draft.parent_goal_id is not None:
        parent = await repository.goal(principal.tenant_id, client_id, draft.parent_goal_id)
        ancestors = await repository.parent_chain_length(principal.tenant_id, client_id,
                                                         draft.parent_goal_id)
        try:
            check_parent(client_id, parent, ancestors)
        except GoalRuleError as error:
            raise _refusal(error) from error
    cause = command_id(principal, idempotency_key, f"create-goal|{client_id}")
    goal = draft_goal(draft, tenant_id=principal.tenant_id, client_id=client_id,
                      goal_id=cause, created_by=principal.subject,
                      coach_id=await runtime.membership.coach_of(principal.tenant_id,
                                                                 client_id),
                      at=utc_now())
    try:
        stored, created = await repository.create_goal(Outcome(goal), cause)
    except GoalRuleError as error:
        raise _refusal(error) from error
    if not created:
        response.status_code = 200  # a retry: the goal it created the first time
    return _view(stored)


@router.get(GOAL, responses=problem_responses(404), tags=["goals"])
async def get_goal(client_id: str, goal_id: str, principal: CurrentPrincipal,
                   runtime: Runtime) -> dict[str, Any]:
    """One goal with its KPIs, action plan and recent measurements."""
    await authorize_client(principal, client_id, runtime)
    goal = await _repository(runtime).goal(principal.tenant_id, client_id, goal_id)
    if goal is None:
        raise _no_goal(goal_id)
    return _view(goal)


@router.patch(GOAL, responses=problem_responses(403, 404, 409), tags=["goals"])
async def edit(client_id: str, goal_id: str, changes: GoalEdit, principal: CurrentPrincipal,
               runtime: Runtime, idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """Edit a suggestion or draft (only the fields sent); an edited suggestion is a draft."""
    return await _goal_command(runtime, principal, client_id, goal_id, idempotency_key, "edit",
                               lambda goal, _, now: edit_goal(goal, changes, now))


@router.get(GOAL + "/smart-check", responses=problem_responses(404), tags=["goals"])
async def check(client_id: str, goal_id: str, principal: CurrentPrincipal,
                runtime: Runtime) -> SmartCheck:
    """The SMART check of the goal as it stands, against the tenant's limits."""
    await authorize_client(principal, client_id, runtime)
    goal = await _repository(runtime).goal(principal.tenant_id, client_id, goal_id)
    if goal is None:
        raise _no_goal(goal_id)
    return smart_check(goal, await _limits(runtime, principal.tenant_id), utc_now().date(),
                       await _smart_context(runtime, principal.tenant_id, client_id))


@router.post(GOAL + "/accept", tags=["goals"], responses=problem_responses(403, 404, 409, 422))
async def accept(client_id: str, goal_id: str, body: AcceptGoal, principal: CurrentPrincipal,
                 runtime: Runtime, idempotency_key: IdempotencyKey = None) -> Any:
    """Make a suggestion or draft the client's active goal (publishes `GoalSet`).

    Only when the SMART check passes, or when the client's coach overrides it with a
    reason, which is recorded and published.
    """
    await authorize_client(principal, client_id, runtime)
    tenant_id = principal.tenant_id
    limits = await _limits(runtime, tenant_id)
    context = await _smart_context(runtime, tenant_id, client_id)
    coach_id = await runtime.membership.coach_of(tenant_id, client_id)
    by_coach = principal.has(Role.COACH) and coach_id == principal.subject
    cause = command_id(principal, idempotency_key, f"accept|{goal_id}")
    now = utc_now()
    margin = _settings(runtime).at_risk_margin_percent

    def decide(goal: Goal) -> Outcome:
        if body.edits is not None:
            goal = edit_goal(goal, body.edits, now).goal
        verdict = smart_check(goal, limits, now.date(), context)
        return activate_goal(goal, verdict, by=principal.subject, by_coach=by_coach,
                             override_reason=body.override_reason, coach_id=coach_id, at=now,
                             at_risk_margin=margin)

    try:
        goal = await _change(runtime, principal, client_id, goal_id, cause, decide)
    except SmartCheckFailed as failed:
        return problem(422, f"the goal does not pass the SMART check: {failed}",
                       title="SMART check failed", type_="urn:coaching:problem:smart-check",
                       smart_check=failed.check.model_dump(mode="json"),
                       errors=[{"field": SMART_FIELDS[letter.letter], "message": letter.message,
                                "type": "smart_check"}
                               for letter in failed.check.failures])
    return _view(goal)


@router.post(GOAL + "/abandon", responses=problem_responses(403, 404, 409), tags=["goals"])
async def abandon(client_id: str, goal_id: str, body: AbandonGoal, principal: CurrentPrincipal,
                  runtime: Runtime, idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """Give up a goal or decline a suggestion (publishes `GoalAbandoned`)."""
    return await _goal_command(runtime, principal, client_id, goal_id, idempotency_key,
                               "abandon", lambda goal, _, now: abandon_goal(goal, body.reason,
                                                                            now))


@router.post(GOAL + "/measurements", responses=problem_responses(403, 404, 409), tags=["progress"])
async def measure(client_id: str, goal_id: str, body: MeasurementInput,
                  principal: CurrentPrincipal, runtime: Runtime,
                  idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """Record a KPI reading; progress, on-track status and roll-up follow."""
    settings = _settings(runtime)

    def decide(goal: Goal, cause: str, now: datetime) -> Outcome:
        if goal.kpi(body.kpi_id) is None:
            raise InvalidGoal(f"kpi_id: the goal has no KPI {body.kpi_id!r}")
        reading = Measurement(measurement_id=f"api:{cause}", kpi_id=body.kpi_id,
                              value=body.value, measured_at=body.measured_at or now,
                              source="api")
        return record_measurements(goal, [reading],
                                   at_risk_margin=settings.at_risk_margin_percent,
                                   kept=settings.measurements_kept_per_goal)

    return await _goal_command(runtime, principal, client_id, goal_id, idempotency_key,
                               "measure", decide)


# -- action plans ------------------------------------------------------------------------

@router.post(GOAL + "/actions", tags=["action plans"], status_code=201,
             responses=problem_responses(403, 404, 409))
async def create_action(client_id: str, goal_id: str, draft: ActionDraft,
                        principal: CurrentPrincipal, runtime: Runtime,
                        idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """Add an activity (impact and effort 1-5) to the goal's action plan."""
    return await _goal_command(runtime, principal, client_id, goal_id, idempotency_key,
                               "add-action", lambda goal, cause, now: add_action(
                                   goal, draft, cause, now))


@router.patch(GOAL + "/actions/{action_id}", tags=["action plans"],
              responses=problem_responses(403, 404, 409))
async def update_action(client_id: str, goal_id: str, action_id: str, changes: ActionChange,
                        principal: CurrentPrincipal, runtime: Runtime,
                        idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """Edit an action or move it along (todo, in_progress, done, dropped)."""
    return await _goal_command(runtime, principal, client_id, goal_id, idempotency_key,
                               f"change-action|{action_id}", lambda goal, _, now: change_action(
                                   goal, action_id, changes, now))


@router.get("/clients/{client_id}/next-actions", tags=["action plans"],
            responses=problem_responses(404))
async def next_actions(client_id: str, principal: CurrentPrincipal, runtime: Runtime,
                       limit: Annotated[int | None, Query(ge=1, le=100)] = None,
                       ) -> list[NextAction]:
    """The client's open actions across active goals, high impact and low effort first.

    Ranked by priority = impact x (6 - effort); ties go to higher impact, then lower
    effort, then the earlier due date, then work in progress, then the older action.
    """
    await authorize_client(principal, client_id, runtime)
    goals = await _repository(runtime).goals_of(principal.tenant_id, client_id, LIVE)
    return rank_next_actions(goals, utc_now().date(),
                             limit or _settings(runtime).next_actions_limit)


# -- program administration ---------------------------------------------------------------

@router.get("/goals/summary", responses=problem_responses(403), tags=["program"])
async def summary(principal: CurrentPrincipal, runtime: Runtime) -> dict[str, Any]:
    """Counts for program admins: goals per status and clients with goals (no content)."""
    require(principal, Role.ADMIN)
    repository = _repository(runtime)
    counts = await repository.status_counts(principal.tenant_id)
    return {"goals_by_status": {status.value: counts.get(status.value, 0)
                                for status in GoalStatus},
            "clients_with_goals": await repository.clients_with_goals(principal.tenant_id)}


def _limits_view(defaults: SmartLimits, tenant_values: dict[str, Any]) -> dict[str, Any]:
    return {"limits": effective_limits(defaults, tenant_values).model_dump(),
            "tenant_values": tenant_values, "defaults": defaults.model_dump()}


@router.get("/smart-limits", tags=["program"])
async def get_smart_limits(principal: CurrentPrincipal, runtime: Runtime) -> dict[str, Any]:
    """The SMART limits of the caller's tenant: in force, set by its admins, and defaults."""
    stored = await _repository(runtime).tenant_smart_limits(principal.tenant_id)
    return _limits_view(_settings(runtime).smart_limits, stored)


@router.put("/smart-limits", responses=problem_responses(403), tags=["program"])
async def put_smart_limits(body: SmartLimitsChange, principal: CurrentPrincipal,
                           runtime: Runtime, idempotency_key: IdempotencyKey = None,
                           ) -> JSONResponse:
    """Set the tenant's SMART limits (admins); fields left out fall back to the defaults."""
    require(principal, Role.ADMIN)
    values = body.model_dump(exclude_none=True)
    defaults = _settings(runtime).smart_limits
    try:
        effective_limits(defaults, values)
    except ValueError as error:
        return problem(422, f"inconsistent limits: {error}", title="Request validation failed")
    cause = command_id(principal, idempotency_key, "smart-limits")
    await _repository(runtime).set_tenant_smart_limits(principal.tenant_id, cause, values,
                                                       principal.subject)
    return JSONResponse(_limits_view(defaults, values))
