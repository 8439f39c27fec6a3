"""Events of the feedback service (stream `feedback`).

Confidential coaching content (notes, reflections, feedback text) never travels in events:
they carry ids, numbers and codes; the content stays behind the access-controlled API.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from coaching_shared.events import Event


class KpiReading(BaseModel):
    """A KPI value the client reported."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kpi_id: str
    value: float
    measured_at: datetime


class CheckInDue(Event):
    """A scheduled check-in for a goal fell due (published once per goal and period)."""

    type_name = "CheckInDue"
    stream = "feedback"

    checkin_id: str
    goal_id: str
    period: int = Field(ge=1, description="1 for the goal's first check-in, then 2, 3, ...")
    due_at: datetime
    respond_by: datetime = Field(description="end of the grace period for late submissions")
    coach_id: str | None = Field(default=None, description="the client's coach, if any")


class CheckInCompleted(Event):
    """The client submitted a check-in; carries the KPI readings for the goals service."""

    type_name = "CheckInCompleted"
    stream = "feedback"

    checkin_id: str
    goal_id: str
    period: int = Field(ge=1)
    completed_at: datetime
    confidence: int = Field(ge=1, le=5)
    late: bool = False
    kpi_readings: list[KpiReading] = Field(default_factory=list)
    coach_id: str | None = None


class CheckInMissed(Event):
    """The grace period passed without a submission."""

    type_name = "CheckInMissed"
    stream = "feedback"

    checkin_id: str
    goal_id: str
    period: int = Field(ge=1)
    due_at: datetime
    coach_id: str | None = None


class ProgressReviewed(Event):
    """A progress review was computed (every N check-ins or monthly)."""

    type_name = "ProgressReviewed"
    stream = "feedback"

    review_id: str
    goal_id: str | None = None
    period_start: datetime
    period_end: datetime
    adherence: float = Field(ge=0, le=1, description="completed check-ins / due check-ins")
    confidence_trend: float | None = Field(default=None, description="change per check-in")
    checkins_due: int | None = Field(default=None, ge=0)
    checkins_completed: int | None = Field(default=None, ge=0)
    kpi_trends: dict[str, float] = Field(default_factory=dict,
                                         description="change per check-in, by KPI id")
    coach_id: str | None = None
    trigger: str | None = Field(
        default=None, description="every_n_checkins, monthly or on_request")


class FeedbackGiven(Event):
    """A coach gave feedback on a check-in or a goal (the text stays in the service)."""

    type_name = "FeedbackGiven"
    stream = "feedback"

    feedback_id: str
    coach_id: str
    subject_kind: str = Field(description="check_in or goal")
    subject_id: str


class ClientAtRisk(Event):
    """Signals that a client may be disengaging, for their coach."""

    type_name = "ClientAtRisk"
    stream = "feedback"

    coach_id: str | None = None
    goal_id: str | None = None
    reasons: list[str] = Field(min_length=1, description="reason codes, e.g. missed_twice")
    detected_at: datetime


class MultiRaterFeedbackCompleted(Event):
    """A client's multi-rater (360) feedback round closed and its results are ready.

    No ratings, comments or rater identities travel: the anonymised results stay behind the
    access-controlled API, shown only per rater group with enough answers.
    """

    type_name = "MultiRaterFeedbackCompleted"
    stream = "feedback"

    round_id: str
    competencies: list[str] = Field(min_length=1, description="competency ids rated")
    qualifying_groups: int = Field(
        ge=0, description="rater groups with enough answers to be shown (anonymity threshold)")
    closed_at: datetime
    closed_by: str = Field(description="client, coach or deadline")
    coach_id: str | None = None
