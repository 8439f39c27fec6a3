"""Every event contract of the platform, one module per stream.

Importing this package registers all event types (see `coaching_shared.events.event_class`).
A contract's owner (the producing service) may add optional fields; removing or renaming a
field, changing its type or adding a required one needs a new version of the event.
"""

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

__all__ = [
    "AssessmentAssigned",
    "AssessmentCompleted",
    "CheckInCompleted",
    "CheckInDue",
    "CheckInMissed",
    "ClientAtRisk",
    "ClientEnrolled",
    "ClientOffboarded",
    "CoachAssigned",
    "CoachContact",
    "DerivedCode",
    "Direction",
    "FeedbackGiven",
    "GoalAbandoned",
    "GoalAchieved",
    "GoalProgressUpdated",
    "GoalSet",
    "GoalSuggested",
    "KpiProgress",
    "KpiReading",
    "KpiSpec",
    "MultiRaterFeedbackCompleted",
    "NotificationFailed",
    "NotificationSent",
    "ProgressReviewed",
    "ScaleScore",
]
