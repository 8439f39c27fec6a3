"""What the assessment service does with each event it consumes.

ClientOffboarded needs nothing here: the shared consumer erases the personal collections
(assignments, answer sheets, results) before any handler runs.
"""

from __future__ import annotations

import logging
from typing import Any

from coaching_shared.contracts import ClientEnrolled
from coaching_shared.events import EventMessage, derived_event_id, utc_now
from coaching_shared.messaging import EventContext
from coaching_shared.service import ServiceRuntime

from coaching_assessment.domain.instruments import InstrumentDefinition
from coaching_assessment.domain.lifecycle import (
    ENROLMENT,
    assessment_id_of,
    assigned_event,
    assignment_fields,
    enrolment_assignment_id,
    instruments_to_assign,
)
from coaching_assessment.repository import ASSIGNMENTS, AssessmentRepository, InstrumentNotFound
from coaching_assessment.settings import AssessmentSettings

SOURCE = "/coaching/assessment"
log = logging.getLogger(__name__)


async def assign_instrument(repository: AssessmentRepository, runtime: ServiceRuntime,
                            tenant_id: str, client_id: str, assignment_id: str, cause_id: str,
                            definition: InstrumentDefinition, assigned_by: str,
                            ) -> dict[str, Any] | None:
    """Create one assignment and publish AssessmentAssigned, once per cause."""
    fields = assignment_fields(definition, utc_now(), assigned_by)
    event = assigned_event(tenant_id, client_id, assignment_id, fields)
    message = EventMessage.wrap(event, SOURCE, event_id=derived_event_id(
        cause_id, f"AssessmentAssigned|{assignment_id}"))
    document = await repository.create_assignment(tenant_id, client_id, assignment_id,
                                                  cause_id, fields, outbox=[message])
    await runtime.relay_document(runtime.collection(ASSIGNMENTS), document)
    return document


async def open_instruments(repository: AssessmentRepository, tenant_id: str,
                           client_id: str) -> set[str]:
    """Instruments the client has been assigned and not yet completed."""
    completed = {result["assessment_id"]
                 for result in await repository.results_of(tenant_id, client_id)}
    return {assignment["instrument_id"]
            for assignment in await repository.assignments_of(tenant_id, client_id)
            if assessment_id_of(assignment["assignment_id"]) not in completed}


class AssessmentHandlers:
    def __init__(self, repository: AssessmentRepository, runtime: ServiceRuntime,
                 settings: AssessmentSettings) -> None:
        self.repository = repository
        self.runtime = runtime
        self.settings = settings

    async def client_enrolled(self, event: ClientEnrolled, context: EventContext) -> None:
        """Assign the program's instruments (or the default set) to the new client."""
        cause = context.message.id
        plan = await self.repository.program_plan(event.tenant_id, event.program_id)
        planned = plan if plan is not None else self.settings.enrolment_instruments
        busy = await open_instruments(self.repository, event.tenant_id, event.client_id)
        # A redelivery finds its own assignments "open": keep them in, their ids repeat.
        own = {assignment["instrument_id"]
               for assignment in await self.repository.assignments_of(event.tenant_id,
                                                                        event.client_id)
               if assignment["assignment_id"] == enrolment_assignment_id(
                   cause, assignment["instrument_id"])}
        for instrument_id in instruments_to_assign(planned, busy - own):
            try:
                definition = await self.repository.definition(event.tenant_id, instrument_id)
            except InstrumentNotFound:
                log.warning("program %s plans unknown instrument %s; not assigned",
                            event.program_id, instrument_id)
                continue
            await assign_instrument(self.repository, self.runtime, event.tenant_id,
                                    event.client_id,
                                    enrolment_assignment_id(cause, instrument_id), cause,
                                    definition, ENROLMENT)
