"""Events of the assessment service (stream `assessment`).

Answers to items never travel in events: they carry scores, scale ids and codes only.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from coaching_shared.events import Event


class ScaleScore(BaseModel):
    """A client's score on one scale of an instrument."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    scale_id: str
    label: str
    score: float = Field(description="the scale's score by its rule (sum or mean)")
    minimum: float
    maximum: float
    raw_score: float | None = Field(default=None, description="sum of item contributions")
    mean: float | None = Field(default=None, description="mean item contribution")


class DerivedCode(BaseModel):
    """A code derived from the scores, e.g. the Holland code from the three highest areas."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    output_id: str
    label: str
    code: str | None = Field(description="the code, or None when tied scores leave it open")
    codes: list[str] = Field(description="every code the scores allow; more than one = a tie")


class AssessmentAssigned(Event):
    """An instrument was assigned to a client (on enrolment, or by a coach or admin)."""

    type_name = "AssessmentAssigned"
    stream = "assessment"

    assignment_id: str
    instrument_id: str
    instrument_version: int = Field(ge=1)
    instrument_title: str
    item_count: int = Field(ge=1)
    assigned_at: datetime
    assigned_by: str = Field(description="'enrolment', or the subject who assigned it")


class AssessmentCompleted(Event):
    """A client finished an instrument; scores, strengths and development areas are known."""

    type_name = "AssessmentCompleted"
    stream = "assessment"

    assessment_id: str
    instrument_id: str
    instrument_version: int = Field(ge=1)
    completed_at: datetime
    scores: list[ScaleScore] = Field(default_factory=list)
    strengths: list[str] = Field(default_factory=list, description="scale ids")
    development_areas: list[str] = Field(default_factory=list, description="scale ids")
    assignment_id: str | None = None
    instrument_title: str | None = None
    derived_codes: list[DerivedCode] = Field(default_factory=list)
    holland_code: str | None = Field(
        default=None, description="RIASEC instruments: the three highest areas, if untied")
    holland_code_alternatives: list[str] = Field(
        default_factory=list, description="RIASEC instruments: all codes a tie allows")
