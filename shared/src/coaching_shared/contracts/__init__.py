"""Every event contract of the platform, one module per stream.

Importing this package registers all event types (see `coaching_shared.events.event_class`).
"""

from coaching_shared.contracts.assessment import AssessmentCompleted, ScaleScore
from coaching_shared.contracts.enrolment import (
    ClientEnrolled,
    ClientOffboarded,
    CoachAssigned,
    CoachContact,
)

__all__ = [
    "AssessmentCompleted",
    "ClientEnrolled",
    "ClientOffboarded",
    "CoachAssigned",
    "CoachContact",
    "ScaleScore",
]
