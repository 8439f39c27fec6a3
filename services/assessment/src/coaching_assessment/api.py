"""The assessment service's HTTP API: instruments, assignments, answers, results, profile."""

from __future__ import annotations

from typing import Annotated, Any

from coaching_shared.auth import CurrentPrincipal, Principal, Role, require
from coaching_shared.commands import REPEATED_COMMAND, IdempotencyKey, command_id
from coaching_shared.events import EventMessage, derived_event_id, utc_now
from coaching_shared.mongo import without_internals
from coaching_shared.problems import problem, problem_responses
from coaching_shared.service import ServiceRuntime, authorize_client, runtime_of
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from coaching_assessment.domain.instruments import InstrumentDefinition, builtin_instruments
from coaching_assessment.domain.lifecycle import (
    assessment_id_of,
    assignment_status,
    completion_event,
    items_page,
    requested_assignment_id,
    result_fields,
    with_percentiles,
)
from coaching_assessment.domain.profile import combined_profile
from coaching_assessment.domain.psychometrics import scale_reliability
from coaching_assessment.domain.scoring import AnswerProblem, answer_problems, score_instrument
from coaching_assessment.handlers import SOURCE, assign_instrument, open_instruments
from coaching_assessment.repository import RESULTS, AssessmentRepository, InstrumentNotFound
from coaching_assessment.settings import AssessmentSettings

router = APIRouter(prefix="/v1")
Runtime = Annotated[ServiceRuntime, Depends(runtime_of)]


def repository_of(request: Request) -> AssessmentRepository:
    """FastAPI dependency: the service's repository (one per app: it caches definitions)."""
    return request.app.state.repository


def settings_of(request: Request) -> AssessmentSettings:
    return request.app.state.settings


Repository = Annotated[AssessmentRepository, Depends(repository_of)]
Settings = Annotated[AssessmentSettings, Depends(settings_of)]
HIDDEN_RESULT_FIELDS = ("answers", "submission_cause")


class AnswerSheet(BaseModel):
    """Answers by item id, for the instrument version the client was shown."""

    instrument_version: int = Field(ge=1, description="the version the answers were given for")
    answers: dict[str, int] = Field(default_factory=dict, max_length=500)


class AssignmentRequest(BaseModel):
    instrument_id: str = Field(min_length=1, max_length=80)
    instrument_version: int | None = Field(default=None, ge=1,
                                           description="defaults to the latest version")


class EnrolmentPlan(BaseModel):
    instruments: list[str] = Field(max_length=20, description="instrument ids, in order")


# -- instruments ---------------------------------------------------------------------------


async def _definition(repository: AssessmentRepository, tenant_id: str, instrument_id: str,
                      version: int | None = None) -> InstrumentDefinition:
    try:
        return await repository.definition(tenant_id, instrument_id, version)
    except InstrumentNotFound as error:
        raise HTTPException(404, str(error)) from error


def _summary(definition: InstrumentDefinition, source: str) -> dict[str, Any]:
    return {"instrument_id": definition.instrument_id, "version": definition.version,
            "title": definition.title, "description": definition.description,
            "attribution": definition.attribution, "source": source,
            "scales": [scale.scale_id for scale in definition.scales],
            "item_count": len(definition.items)}


@router.get("/instruments", tags=["instruments"])
async def list_instruments(principal: CurrentPrincipal,
                           repository: Repository) -> list[dict[str, Any]]:
    """The built-in instruments and every version of the tenant's own."""
    own = [_summary(InstrumentDefinition.model_validate(stored["definition"]), "tenant")
           for stored in await repository.tenant_instruments(principal.tenant_id)]
    return [*(_summary(d, "built-in") for d in builtin_instruments().values()), *own]


@router.get("/instruments/{instrument_id}/versions/{version}", tags=["instruments"],
            responses=problem_responses(404))
async def get_instrument(instrument_id: str, version: int, principal: CurrentPrincipal,
                         repository: Repository) -> dict[str, Any]:
    """One instrument version's full definition."""
    definition = await _definition(repository, principal.tenant_id, instrument_id, version)
    return definition.model_dump()


@router.post("/instruments", tags=["instruments"], status_code=201,
             responses={**REPEATED_COMMAND, **problem_responses(403, 409)})
async def publish_instrument(definition: InstrumentDefinition, principal: CurrentPrincipal,
                             repository: Repository, response: Response) -> dict[str, Any]:
    """Publish a tenant instrument version (admins). Versions are immutable: publishing the
    same version again is accepted only with the identical definition."""
    require(principal, Role.ADMIN)
    if definition.instrument_id in builtin_instruments():
        raise HTTPException(409, f"{definition.instrument_id!r} is a built-in instrument id")
    versions = await repository.tenant_versions(principal.tenant_id, definition.instrument_id)
    if definition.version not in versions and versions and definition.version < versions[-1]:
        raise HTTPException(409, f"version {definition.version} is older than the latest, "
                                 f"{versions[-1]}; publish a higher version")
    created, stored = await repository.publish_instrument(principal.tenant_id, definition,
                                                          principal.subject)
    if not created:
        if stored["definition"] != definition.model_dump():
            raise HTTPException(409, f"{definition.instrument_id} version {definition.version} "
                                     "exists with a different definition; versions are "
                                     "immutable, publish a new version")
        response.status_code = 200
    return _summary(definition, "tenant")


@router.get("/instruments/{instrument_id}/versions/{version}/quality", tags=["program admin"],
            responses=problem_responses(403, 404))
async def instrument_quality(instrument_id: str, version: int, principal: CurrentPrincipal,
                             repository: Repository, settings: Settings) -> dict[str, Any]:
    """Cronbach's alpha and corrected item-total correlations per scale over the tenant's
    completed responses (admins; aggregates only). Alpha below the threshold is flagged."""
    require(principal, Role.ADMIN)
    definition = await _definition(repository, principal.tenant_id, instrument_id, version)
    sheets = await repository.answer_sheets(principal.tenant_id, instrument_id, version)
    scales = scale_reliability(definition, sheets, settings.reliability_threshold)
    return {"instrument_id": instrument_id, "instrument_version": version,
            "completed_responses": len(sheets), "threshold": settings.reliability_threshold,
            "flagged": [scale.scale_id for scale in scales if scale.flagged],
            "scales": scales}


# -- program plans -------------------------------------------------------------------------


@router.put("/programs/{program_id}/enrolment-instruments", tags=["program admin"],
            responses=problem_responses(403, 404))
async def set_enrolment_instruments(program_id: str, plan: EnrolmentPlan,
                                    principal: CurrentPrincipal, repository: Repository,
                                    ) -> dict[str, Any]:
    """Which instruments the program assigns to each client it enrols (admins)."""
    require(principal, Role.ADMIN)
    for instrument_id in plan.instruments:
        await _definition(repository, principal.tenant_id, instrument_id)
    await repository.set_program_plan(principal.tenant_id, program_id, plan.instruments,
                                      principal.subject)
    return {"program_id": program_id, "instruments": plan.instruments}


@router.get("/programs/{program_id}/enrolment-instruments", tags=["program admin"],
            responses=problem_responses(403))
async def get_enrolment_instruments(program_id: str, principal: CurrentPrincipal,
                                    repository: Repository, settings: Settings,
                                    ) -> dict[str, Any]:
    """The program's enrolment instruments, or the service default when it has none."""
    require(principal, Role.ADMIN, Role.COACH)
    plan = await repository.program_plan(principal.tenant_id, program_id)
    return {"program_id": program_id, "default": plan is None,
            "instruments": plan if plan is not None else settings.enrolment_instruments}


# -- assignments and answers ---------------------------------------------------------------


async def _authorize_assigner(principal: Principal, client_id: str, runtime: ServiceRuntime,
                              repository: AssessmentRepository) -> None:
    """Coaches assign to their own clients; admins and integrations to any enrolled one."""
    if principal.has(Role.ADMIN, Role.INTEGRATION):
        if not await repository.is_enrolled(principal.tenant_id, client_id):
            raise HTTPException(404, f"no client {client_id!r} enrolled")
        return
    require(principal, Role.COACH)
    await authorize_client(principal, client_id, runtime)


async def _authorize_respondent(principal: Principal, client_id: str,
                                runtime: ServiceRuntime) -> None:
    """Only the client answers (or an integration, e.g. a chat front end acting for them)."""
    await authorize_client(principal, client_id, runtime)
    if not (principal.has(Role.INTEGRATION)
            or (principal.has(Role.CLIENT) and principal.subject == client_id)):
        raise HTTPException(403, "only the client answers their assessment")


async def _assignment(repository: AssessmentRepository, tenant_id: str, client_id: str,
                      assignment_id: str) -> dict[str, Any]:
    assignment = await repository.assignment(tenant_id, client_id, assignment_id)
    if assignment is None:
        raise HTTPException(404, f"no assignment {assignment_id!r} for client {client_id!r}")
    return assignment


async def _assignment_view(repository: AssessmentRepository, assignment: dict[str, Any],
                           answers: dict[str, int]) -> dict[str, Any]:
    assessment_id = assessment_id_of(assignment["assignment_id"])
    completed = await repository.result(assignment["tenant_id"], assignment["client_id"],
                                        assessment_id) is not None
    return {**without_internals(assignment), "answered": len(answers),
            "status": assignment_status(len(answers), completed),
            "assessment_id": assessment_id if completed else None}


@router.post("/clients/{client_id}/assignments", tags=["assignments"], status_code=201,
             responses=problem_responses(403, 404, 409))
async def assign(client_id: str, request: AssignmentRequest, principal: CurrentPrincipal,
                 runtime: Runtime, repository: Repository,
                 idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """Assign an instrument to a client (their coach, an admin or an integration)."""
    await _authorize_assigner(principal, client_id, runtime, repository)
    cause = command_id(principal, idempotency_key, f"assign|{client_id}")
    assignment_id = requested_assignment_id(cause)
    tenant_id = principal.tenant_id
    existing = await repository.assignment(tenant_id, client_id, assignment_id)
    if existing is None:
        definition = await _definition(repository, tenant_id, request.instrument_id,
                                       request.instrument_version)
        if definition.instrument_id in await open_instruments(repository, tenant_id,
                                                              client_id):
            raise HTTPException(409, f"{client_id} already has an open assignment of "
                                     f"{definition.instrument_id}")
        await assign_instrument(repository, runtime, tenant_id, client_id, assignment_id,
                                cause, definition, principal.subject)
        existing = await _assignment(repository, tenant_id, client_id, assignment_id)
    return await _assignment_view(repository, existing, {})


@router.get("/clients/{client_id}/assignments", tags=["assignments"],
            responses=problem_responses(404))
async def list_assignments(client_id: str, principal: CurrentPrincipal, runtime: Runtime,
                           repository: Repository) -> list[dict[str, Any]]:
    """The client's assignments with their status and progress, oldest first."""
    await authorize_client(principal, client_id, runtime)
    sheets = await repository.answers_of(principal.tenant_id, client_id)
    return [await _assignment_view(repository, assignment,
                                   sheets.get(assignment["assignment_id"], {}))
            for assignment in await repository.assignments_of(principal.tenant_id, client_id)]


@router.get("/clients/{client_id}/assignments/{assignment_id}", tags=["assignments"],
            responses=problem_responses(404))
async def get_assignment(client_id: str, assignment_id: str, principal: CurrentPrincipal,
                         runtime: Runtime, repository: Repository) -> dict[str, Any]:
    """One assignment with its status and how many items are answered."""
    await authorize_client(principal, client_id, runtime)
    assignment = await _assignment(repository, principal.tenant_id, client_id, assignment_id)
    answers = await repository.answers(principal.tenant_id, client_id, assignment_id)
    return await _assignment_view(repository, assignment, answers)


@router.get("/clients/{client_id}/assignments/{assignment_id}/items", tags=["assignments"],
            responses=problem_responses(403, 404))
async def assignment_items(client_id: str, assignment_id: str, principal: CurrentPrincipal,
                           runtime: Runtime, repository: Repository,
                           offset: Annotated[int, Query(ge=0)] = 0,
                           limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict[str, Any]:
    """A page of the assigned instrument's items, with the answers saved so far."""
    await _authorize_respondent(principal, client_id, runtime)
    assignment = await _assignment(repository, principal.tenant_id, client_id, assignment_id)
    definition = await _definition(repository, principal.tenant_id,
                                   assignment["instrument_id"], assignment["instrument_version"])
    answers = await repository.answers(principal.tenant_id, client_id, assignment_id)
    return {"assignment_id": assignment_id, **items_page(definition, offset, limit, answers)}


def _refused(problems: list[AnswerProblem]) -> JSONResponse:
    """422 naming every item at fault."""
    return problem(422, "answers refused for item(s): " + ", ".join(
        sorted({p.item_id for p in problems})), title="Answers refused",
        type_="urn:coaching:problem:answers",
        errors=[{"field": f"answers.{p.item_id}", "item_id": p.item_id, "type": p.problem,
                 "message": p.message} for p in problems])


def _check_version(assignment: dict[str, Any], sheet: AnswerSheet) -> None:
    if sheet.instrument_version != assignment["instrument_version"]:
        raise HTTPException(409, f"answers were given for version {sheet.instrument_version} "
                                 f"of {assignment['instrument_id']}; this assignment is for "
                                 f"version {assignment['instrument_version']}")


@router.put("/clients/{client_id}/assignments/{assignment_id}/answers", tags=["assignments"],
            responses=problem_responses(403, 404, 409))
async def save_answers(client_id: str, assignment_id: str, sheet: AnswerSheet,
                       principal: CurrentPrincipal, runtime: Runtime,
                       repository: Repository) -> Any:
    """Save some answers (merged with those saved before) to resume later."""
    await _authorize_respondent(principal, client_id, runtime)
    tenant_id = principal.tenant_id
    assignment = await _assignment(repository, tenant_id, client_id, assignment_id)
    if await repository.result(tenant_id, client_id, assessment_id_of(assignment_id)):
        raise HTTPException(409, "this assignment was submitted already")
    _check_version(assignment, sheet)
    definition = await _definition(repository, tenant_id, assignment["instrument_id"],
                                   assignment["instrument_version"])
    problems = answer_problems(definition, sheet.answers, complete=False)
    if problems:
        return _refused(problems)
    answers = await repository.save_answers(tenant_id, client_id, assignment_id, sheet.answers)
    missing = [p.item_id for p in answer_problems(definition, answers, complete=True)]
    return {"assignment_id": assignment_id, "answered": len(answers),
            "total": len(definition.items), "unanswered": missing}


async def _result_view(repository: AssessmentRepository, settings: AssessmentSettings,
                       result: dict[str, Any]) -> dict[str, Any]:
    """A result without the answers, its scores with percentiles in the tenant's norms."""
    distributions = await repository.norm_distributions(
        result["tenant_id"], result["instrument_id"], result["instrument_version"])
    visible = {name: value for name, value in without_internals(result).items()
               if name not in HIDDEN_RESULT_FIELDS}
    return with_percentiles(visible, distributions, settings.norm_minimum_group)


async def _settled(repository: AssessmentRepository, settings: AssessmentSettings,
                   result: dict[str, Any], cause: str) -> dict[str, Any]:
    """The answer to a submission whose result exists: the same result for a retry of that
    submission (after making sure the norms count it), 409 for any other submission."""
    if result.get("submission_cause") != cause:
        raise HTTPException(409, "this assignment was submitted already; its result is "
                                 f"assessment {result['assessment_id']}")
    await repository.count_in_norms(
        result["tenant_id"], result["instrument_id"], result["instrument_version"],
        result["assessment_id"], {s["scale_id"]: s["score"] for s in result["scores"]})
    return await _result_view(repository, settings, result)


@router.post("/clients/{client_id}/assignments/{assignment_id}/submission",
             tags=["assignments"], status_code=201, responses=problem_responses(403, 404, 409))
async def submit(client_id: str, assignment_id: str, sheet: AnswerSheet,
                 principal: CurrentPrincipal, runtime: Runtime, repository: Repository,
                 settings: Settings, idempotency_key: IdempotencyKey = None) -> Any:
    """Submit the answers (merged with those saved): scored once, AssessmentCompleted once.

    Retrying with the same Idempotency-Key returns the same result; every item must be
    answered on its scale, for the assignment's instrument version (else 422 or 409).
    """
    await _authorize_respondent(principal, client_id, runtime)
    tenant_id = principal.tenant_id
    assignment = await _assignment(repository, tenant_id, client_id, assignment_id)
    cause = command_id(principal, idempotency_key, f"submit|{client_id}|{assignment_id}")
    assessment_id = assessment_id_of(assignment_id)
    existing = await repository.result(tenant_id, client_id, assessment_id)
    if existing is not None:
        return await _settled(repository, settings, existing, cause)
    _check_version(assignment, sheet)
    definition = await _definition(repository, tenant_id, assignment["instrument_id"],
                                   assignment["instrument_version"])
    answers = {**await repository.answers(tenant_id, client_id, assignment_id),
               **sheet.answers}
    problems = answer_problems(definition, answers, complete=True)
    if problems:
        return _refused(problems)
    fields = result_fields(definition, score_instrument(definition, answers), assignment_id,
                           answers, utc_now())
    message = EventMessage.wrap(completion_event(tenant_id, client_id, assessment_id, fields),
                                SOURCE, event_id=derived_event_id(cause, "AssessmentCompleted"))
    document = await repository.record_result(
        tenant_id, client_id, assessment_id, cause,
        {**fields, "submitted_by": principal.subject}, outbox=[message])
    if document is None:  # a concurrent submission got there first
        document = await repository.result(tenant_id, client_id, assessment_id)
        if document is None:
            raise HTTPException(409, "the submission collided with another; retry it")
    else:
        await runtime.relay_document(runtime.collection(RESULTS), document)
    return await _settled(repository, settings, document, cause)


# -- results -------------------------------------------------------------------------------


@router.get("/clients/{client_id}/assessments", responses=problem_responses(404), tags=["results"])
async def list_assessments(client_id: str, principal: CurrentPrincipal, runtime: Runtime,
                           repository: Repository, settings: Settings) -> list[dict[str, Any]]:
    """The client's completed assessments, oldest first, with percentiles where the norm
    group is large enough."""
    await authorize_client(principal, client_id, runtime)
    return [await _result_view(repository, settings, result)
            for result in await repository.results_of(principal.tenant_id, client_id)]


@router.get("/clients/{client_id}/assessments/{assessment_id}", tags=["results"],
            responses=problem_responses(404))
async def get_assessment(client_id: str, assessment_id: str, principal: CurrentPrincipal,
                         runtime: Runtime, repository: Repository,
                         settings: Settings) -> dict[str, Any]:
    """One completed assessment with its scores, percentiles, findings and codes."""
    await authorize_client(principal, client_id, runtime)
    result = await repository.result(principal.tenant_id, client_id, assessment_id)
    if result is None:
        raise HTTPException(404, f"no assessment {assessment_id!r} for client {client_id!r}")
    return await _result_view(repository, settings, result)


@router.get("/clients/{client_id}/profile", responses=problem_responses(404), tags=["results"])
async def client_profile(client_id: str, principal: CurrentPrincipal, runtime: Runtime,
                         repository: Repository) -> dict[str, Any]:
    """One strengths-and-development-areas profile across the client's latest results."""
    await authorize_client(principal, client_id, runtime)
    return combined_profile(client_id,
                            await repository.results_of(principal.tenant_id, client_id))
