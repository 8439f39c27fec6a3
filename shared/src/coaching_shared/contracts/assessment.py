"""Events of the assessment service (stream `assessment`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from coaching_shared.events import Event


class ScaleScore(BaseModel):
    """A client's score on one scale of an instrument."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    scale_id: str
    label: str
    score: float
    minimum: float
    maximum: float


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
