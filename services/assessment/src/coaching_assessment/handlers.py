"""What the assessment service does with each event it consumes."""

from __future__ import annotations

from coaching_shared.contracts import ClientEnrolled
from coaching_shared.events import EventMessage, derived_event_id
from coaching_shared.messaging import EventContext
from coaching_shared.service import ServiceRuntime

from coaching_assessment.domain import intake_completion
from coaching_assessment.repository import ASSESSMENTS, AssessmentRepository

SOURCE = "/coaching/assessment"


class AssessmentHandlers:
    def __init__(self, repository: AssessmentRepository, runtime: ServiceRuntime) -> None:
        self.repository = repository
        self.runtime = runtime

    async def client_enrolled(self, event: ClientEnrolled, context: EventContext) -> None:
        cause = context.message.id
        completed = intake_completion(event, cause)
        outgoing = EventMessage.wrap(completed, SOURCE,
                                     event_id=derived_event_id(cause, "AssessmentCompleted"))
        document = await self.repository.record_completion(
            event.tenant_id, event.client_id, completed.assessment_id, cause,
            completed.model_dump(exclude={"tenant_id", "client_id"}), outbox=[outgoing])
        await self.runtime.relay_document(self.runtime.collection(ASSESSMENTS), document)
