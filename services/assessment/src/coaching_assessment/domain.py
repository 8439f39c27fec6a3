"""Assessment rules: pure functions, no I/O."""

from __future__ import annotations

from coaching_shared.contracts import AssessmentCompleted, ClientEnrolled
from coaching_shared.events import derived_event_id, utc_now

INTAKE_INSTRUMENT = "intake"


def intake_completion(enrolment: ClientEnrolled, enrolment_event_id: str,
                      ) -> AssessmentCompleted:
    """Walking skeleton: the enrolment intake counts as a completed, score-less assessment.

    It proves the flow enrolment -> assessment -> goals end to end until the real
    instruments (skills, Big Five, RIASEC) replace it.
    """
    return AssessmentCompleted(
        tenant_id=enrolment.tenant_id, client_id=enrolment.client_id,
        assessment_id=derived_event_id(enrolment_event_id, "intake-assessment"),
        instrument_id=INTAKE_INSTRUMENT, instrument_version=1, completed_at=utc_now())
