"""Events of the goals service (stream `goals`)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from coaching_shared.events import Event


class Direction(StrEnum):
    """Whether a KPI improves by going up (e.g. sales calls) or down (e.g. defects)."""

    UP = "up"
    DOWN = "down"


class KpiSpec(BaseModel):
    """A key performance indicator of a goal: from baseline to target."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kpi_id: str
    name: str = Field(min_length=1, max_length=200)
    unit: str = Field(default="", max_length=50)
    baseline: float
    target: float
    direction: Direction
    frequency: str = Field(default="weekly", description="how often it is measured")
    weight: float = Field(default=1.0, gt=0, le=100,
                          description="share of the goal's progress relative to its other KPIs")


class KpiProgress(BaseModel):
    """Where one KPI stands: its latest reading and its share of the way to the target."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kpi_id: str
    latest_value: float | None
    progress_percent: float = Field(ge=0, le=100)


class GoalSuggested(Event):
    """A draft goal for a development area; not active until the client or coach accepts it."""

    type_name = "GoalSuggested"
    stream = "goals"

    goal_id: str
    title: str
    development_area: str = Field(description="scale id of the assessment result it addresses")
    source_assessment_id: str
    kpis: list[KpiSpec] = Field(default_factory=list)
    first_actions: list[str] = Field(default_factory=list)
    instrument_id: str | None = Field(default=None, description="instrument of the assessment")
    template_id: str | None = Field(default=None, description="goal template it was drafted from")
    levers: list[str] = Field(default_factory=list,
                              description="scale ids of the strengths the plan builds on")
    start_date: date | None = None
    due_date: date | None = None


class GoalSet(Event):
    """A goal became active (it passed the SMART check, or a coach overrode it)."""

    type_name = "GoalSet"
    stream = "goals"

    goal_id: str
    title: str
    coach_id: str | None = None
    start_date: date
    due_date: date
    kpis: list[KpiSpec] = Field(min_length=1)
    relevant_to: str | None = None
    parent_goal_id: str | None = None
    smart_override_reason: str | None = None


class GoalProgressUpdated(Event):
    """A goal's measured progress changed."""

    type_name = "GoalProgressUpdated"
    stream = "goals"

    goal_id: str
    progress_percent: float = Field(ge=0, le=100)
    expected_percent: float = Field(ge=0, le=100, description="share of the time elapsed")
    status: str = Field(description="active, at_risk, achieved or abandoned")
    kpis: list[KpiProgress] = Field(default_factory=list)
    measured_at: datetime
    previous_status: str | None = Field(default=None, description="status before this update")
    parent_goal_id: str | None = None


class GoalAchieved(Event):
    """A goal reached the targets of its KPIs (or of its child goals, rolled up)."""

    type_name = "GoalAchieved"
    stream = "goals"

    goal_id: str
    achieved_at: datetime


class GoalAbandoned(Event):
    """A goal or suggestion was given up; no more progress is tracked for it."""

    type_name = "GoalAbandoned"
    stream = "goals"

    goal_id: str
    abandoned_at: datetime
    reason: str | None = Field(default=None, max_length=500)
