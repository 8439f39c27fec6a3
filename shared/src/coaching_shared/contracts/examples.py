"""One realistic example of every event type: for the published catalog and the tests that
let clients we did not write (CloudEvents SDK, kcat) read every type from the real broker."""

from __future__ import annotations

from datetime import UTC, date, datetime

from coaching_shared.contracts.assessment import (
    AssessmentAssigned,
    AssessmentCompleted,
    DerivedCode,
    ScaleScore,
)
from coaching_shared.contracts.enrolment import (
    ClientEnrolled,
    ClientOffboarded,
    CoachAssigned,
    CoachContact,
)
from coaching_shared.contracts.feedback import (
    CheckInCompleted,
    CheckInDue,
    CheckInMissed,
    ClientAtRisk,
    FeedbackGiven,
    KpiReading,
    MultiRaterFeedbackCompleted,
    ProgressReviewed,
)
from coaching_shared.contracts.goals import (
    Direction,
    GoalAbandoned,
    GoalAchieved,
    GoalProgressUpdated,
    GoalSet,
    GoalSuggested,
    KpiProgress,
    KpiSpec,
)
from coaching_shared.contracts.notifier import NotificationFailed, NotificationSent
from coaching_shared.events import Event

_WHO = {"tenant_id": "acme", "client_id": "client-0042"}
_AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
_COACH = CoachContact(coach_id="coach-07", display_name="Kim Okafor",
                      email="kim.okafor@acme.example", timezone="Europe/Berlin")
_KPI = KpiSpec(kpi_id="kpi-1", name="Decisions made by the agreed date", unit="percent",
               baseline=60, target=90, direction=Direction.UP)

EXAMPLES: list[Event] = [
    ClientEnrolled(**_WHO, program_id="leaders-2027", display_name="Ada Lindqvist",
                   email="ada.lindqvist@acme.example", timezone="Europe/Stockholm",
                   locale="en", coach=_COACH),
    CoachAssigned(**_WHO, coach=_COACH),
    ClientOffboarded(**_WHO, reason="left the company"),
    AssessmentAssigned(**_WHO, assignment_id="asg-1", instrument_id="riasec",
                       instrument_version=1, instrument_title="Career-interest inventory",
                       item_count=60, assigned_at=_AT, assigned_by="enrolment"),
    AssessmentCompleted(
        **_WHO, assessment_id="asm-1", instrument_id="riasec", instrument_version=1,
        completed_at=_AT,
        scores=[ScaleScore(scale_id="social", label="Social", score=32, minimum=0,
                           maximum=40)],
        strengths=["social"], development_areas=["conventional"],
        derived_codes=[DerivedCode(output_id="holland", label="Holland code", code="SEA",
                                   codes=["SEA"])], holland_code="SEA"),
    GoalSuggested(**_WHO, goal_id="goal-1", title="Make timely decisions and stand by them",
                  development_area="judgment_and_decision_making",
                  source_assessment_id="asm-1", kpis=[_KPI],
                  first_actions=["Set a decision date for every open question"]),
    GoalSet(**_WHO, goal_id="goal-1", title="Make timely decisions and stand by them",
            coach_id="coach-07", start_date=date(2026, 11, 30), due_date=date(2027, 2, 28),
            kpis=[_KPI], relevant_to="judgment_and_decision_making"),
    GoalProgressUpdated(**_WHO, goal_id="goal-1", progress_percent=40, expected_percent=35,
                        status="active", measured_at=_AT,
                        kpis=[KpiProgress(kpi_id="kpi-1", latest_value=72,
                                          progress_percent=40)]),
    GoalAchieved(**_WHO, goal_id="goal-1", achieved_at=_AT),
    GoalAbandoned(**_WHO, goal_id="goal-2", abandoned_at=_AT, reason="role changed"),
    CheckInDue(**_WHO, checkin_id="chk-1", goal_id="goal-1", period=1, due_at=_AT,
               respond_by=datetime(2026, 12, 3, 9, 0, tzinfo=UTC)),
    CheckInCompleted(**_WHO, checkin_id="chk-1", goal_id="goal-1", period=1,
                     completed_at=_AT, confidence=4,
                     kpi_readings=[KpiReading(kpi_id="kpi-1", value=72, measured_at=_AT)]),
    CheckInMissed(**_WHO, checkin_id="chk-2", goal_id="goal-1", period=2, due_at=_AT),
    ProgressReviewed(**_WHO, review_id="rev-1", goal_id="goal-1",
                     period_start=datetime(2026, 11, 2, tzinfo=UTC), period_end=_AT,
                     adherence=0.75, confidence_trend=0.5),
    FeedbackGiven(**_WHO, feedback_id="fb-1", coach_id="coach-07", subject_kind="check_in",
                  subject_id="chk-1"),
    ClientAtRisk(**_WHO, coach_id="coach-07", goal_id="goal-1", reasons=["missed_twice"],
                 detected_at=_AT),
    MultiRaterFeedbackCompleted(**_WHO, round_id="round-1", coach_id="coach-07",
                                competencies=["active_listening", "speaking"],
                                qualifying_groups=2, closed_at=_AT, closed_by="client"),
    NotificationSent(**_WHO, notification_id="ntf-1", cause_event_id="evt-1",
                     cause_type="coaching.CheckInDue.v1", recipient_id="client-0042",
                     channel="email", sent_at=_AT, attempts=1),
    NotificationFailed(**_WHO, notification_id="ntf-2", cause_event_id="evt-1",
                       cause_type="coaching.CheckInDue.v1", recipient_id="client-0042",
                       channel="webhook", failed_at=_AT, attempts=6,
                       reason="HTTP 503 from the receiver after 6 attempts"),
]
