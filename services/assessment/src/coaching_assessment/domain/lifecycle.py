"""The assessment lifecycle: assignment, answer sheets, results and their events.

Ids are derived from their cause, so a redelivered enrolment or a retried request finds the
assignment or result it already made instead of making a second one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from coaching_shared.contracts import (
    AssessmentAssigned,
    AssessmentCompleted,
    DerivedCode,
    ScaleScore,
)
from coaching_shared.events import derived_event_id

from coaching_assessment.domain.instruments import InstrumentDefinition
from coaching_assessment.domain.psychometrics import norm_percentile
from coaching_assessment.domain.scoring import Answers, InstrumentScore

HOLLAND_CODE = "holland_code"  # the derived output the event names explicitly
ENROLMENT = "enrolment"


def enrolment_assignment_id(enrolment_event_id: str, instrument_id: str) -> str:
    """The id of the assignment an enrolment makes: the same on every redelivery."""
    return derived_event_id(enrolment_event_id, f"assignment|{instrument_id}")


def requested_assignment_id(command_id: str) -> str:
    """The id of an assignment made through the API (the command id is retry-stable)."""
    return derived_event_id(command_id, "assignment")


def assessment_id_of(assignment_id: str) -> str:
    """An assignment is completed at most once: its result's id follows from it."""
    return derived_event_id(assignment_id, "assessment")


def instruments_to_assign(planned: Sequence[str], open_instruments: Iterable[str]) -> list[str]:
    """The planned instruments the client is not already working on, in plan order."""
    busy = set(open_instruments)
    return [instrument_id for instrument_id in dict.fromkeys(planned) if instrument_id not in busy]


def assignment_fields(definition: InstrumentDefinition, assigned_at: datetime,
                      assigned_by: str) -> dict[str, Any]:
    """What an assignment records; it pins the instrument version the client will answer."""
    return {"instrument_id": definition.instrument_id,
            "instrument_version": definition.version, "instrument_title": definition.title,
            "item_count": len(definition.items), "assigned_at": assigned_at,
            "assigned_by": assigned_by}


def assigned_event(tenant_id: str, client_id: str, assignment_id: str,
                   fields: Mapping[str, Any]) -> AssessmentAssigned:
    return AssessmentAssigned(tenant_id=tenant_id, client_id=client_id,
                              assignment_id=assignment_id, **fields)


def assignment_status(answered: int, completed: bool) -> str:
    """assigned (nothing answered), in_progress (answers saved), or completed."""
    if completed:
        return "completed"
    return "in_progress" if answered else "assigned"


def items_page(definition: InstrumentDefinition, offset: int, limit: int,
               answers: Answers) -> dict[str, Any]:
    """One page of items in definition order, with the answers saved so far."""
    page = definition.items[offset:offset + limit]
    return {
        "instrument_id": definition.instrument_id, "instrument_version": definition.version,
        "total": len(definition.items), "offset": offset, "limit": limit,
        "answered": sum(1 for item in definition.items if item.item_id in answers),
        "response_scales": {name: scale.model_dump()
                            for name, scale in definition.response_scales.items()},
        "items": [{"item_id": item.item_id, "text": item.text,
                   "response_scale": item.response_scale, "required": item.required,
                   "answer": answers.get(item.item_id)} for item in page],
    }


def result_fields(definition: InstrumentDefinition, score: InstrumentScore,
                  assignment_id: str, answers: Answers, completed_at: datetime,
                  ) -> dict[str, Any]:
    """The stored result: scores, findings with reasons, codes, and the answers scored."""
    return {
        "assignment_id": assignment_id, "instrument_id": definition.instrument_id,
        "instrument_version": definition.version, "instrument_title": definition.title,
        "completed_at": completed_at, "answers": dict(answers),
        "scores": [asdict(scale) for scale in score.scales],
        "strengths": [asdict(finding) for finding in score.strengths],
        "development_areas": [asdict(finding) for finding in score.development_areas],
        "gaps": {scale_id: round(gap, 4) for scale_id, gap in score.gaps.items()},
        "codes": [{"output_id": code.output_id, "label": code.label, "code": code.code,
                   "codes": code.codes, "tied": code.tied,
                   "ranking": [{"letter": letter, "score": value}
                               for letter, value in code.ranking]} for code in score.codes],
    }


def completion_event(tenant_id: str, client_id: str, assessment_id: str,
                     fields: Mapping[str, Any]) -> AssessmentCompleted:
    """AssessmentCompleted for a stored result (see `result_fields`); no answers in it."""
    codes = [DerivedCode(output_id=code["output_id"], label=code["label"], code=code["code"],
                         codes=code["codes"]) for code in fields["codes"]]
    holland = next((code for code in codes if code.output_id == HOLLAND_CODE), None)
    return AssessmentCompleted(
        tenant_id=tenant_id, client_id=client_id, assessment_id=assessment_id,
        assignment_id=fields["assignment_id"], instrument_id=fields["instrument_id"],
        instrument_version=fields["instrument_version"],
        instrument_title=fields["instrument_title"], completed_at=fields["completed_at"],
        scores=[ScaleScore(scale_id=s["scale_id"], label=s["label"], score=s["score"],
                           minimum=s["minimum"], maximum=s["maximum"],
                           raw_score=s["raw_score"], mean=s["mean"])
                for s in fields["scores"]],
        strengths=[finding["scale_id"] for finding in fields["strengths"]],
        development_areas=[finding["scale_id"] for finding in fields["development_areas"]],
        derived_codes=codes, holland_code=holland.code if holland else None,
        holland_code_alternatives=holland.codes if holland else [])


def with_percentiles(result: Mapping[str, Any], distributions: Mapping[str, Mapping[float, int]],
                     minimum_group: int) -> dict[str, Any]:
    """A result for reading, each scale score with its percentile in the tenant's norm group
    (the instrument version's completions), or the reason it has none yet."""
    scores = []
    for scale in result["scores"]:
        percentile = norm_percentile(distributions.get(scale["scale_id"], {}),
                                     scale["score"], minimum_group)
        scores.append({**scale, "percentile": percentile.value,
                       "norm_group_size": percentile.group_size,
                       "percentile_note": percentile.reason})
    return {**result, "scores": scores}
