"""What the assessment service does with each event it consumes.

ClientOffboarded needs nothing here: the shared consumer erases the personal collections
(assignments, answer sheets, results) before any handler runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

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
from coaching_assessment.repository import (
    ASSIGNMENTS,
    AssessmentRepository,
    InstrumentNotFound,
    NewAssignment,
)
from coaching_assessment.settings import AssessmentSettings

SOURCE = "/coaching/assessment"
log = logging.getLogger(__name__)


def new_assignment(tenant_id: str, client_id: str, assignment_id: str, cause_id: str,
                   definition: InstrumentDefinition, assigned_by: str) -> NewAssignment:
    """An assignment of the instrument and its AssessmentAssigned (ids stable per cause)."""
    fields = assignment_fields(definition, utc_now(), assigned_by)
    event = assigned_event(tenant_id, client_id, assignment_id, fields)
    message = EventMessage.wrap(event, SOURCE, event_id=derived_event_id(
        cause_id, f"AssessmentAssigned|{assignment_id}"))
    return NewAssignment(tenant_id, client_id, assignment_id, cause_id, fields, message)


async def create_assignments(repository: AssessmentRepository, runtime: ServiceRuntime,
                             created: Sequence[NewAssignment]) -> None:
    """Create assignments and publish their AssessmentAssigned, once per cause."""
    for document in await repository.create_assignments(created):
        await runtime.relay_document(runtime.collection(ASSIGNMENTS), document)


async def assign_instrument(repository: AssessmentRepository, runtime: ServiceRuntime,
                            tenant_id: str, client_id: str, assignment_id: str, cause_id: str,
                            definition: InstrumentDefinition, assigned_by: str) -> None:
    """Create one assignment and publish AssessmentAssigned, once per cause."""
    await create_assignments(repository, runtime, [new_assignment(
        tenant_id, client_id, assignment_id, cause_id, definition, assigned_by)])


async def open_instruments(repository: AssessmentRepository, tenant_id: str,
                           client_id: str) -> set[str]:
    """Instruments the client has been assigned and not yet completed."""
    busy, _ = await instruments_in_hand(repository, tenant_id, client_id)
    return busy


async def instruments_in_hand(repository: AssessmentRepository, tenant_id: str,
                              client_id: str) -> tuple[set[str], dict[str, str]]:
    """The instruments the client has open, and every assignment's instrument by id."""
    assignments = await repository.assignments_of(tenant_id, client_id)
    if not assignments:  # a new client: nothing assigned, so nothing completed either
        return set(), {}
    completed = {result["assessment_id"]
                 for result in await repository.results_of(tenant_id, client_id)}
    return ({assignment["instrument_id"] for assignment in assignments
             if assessment_id_of(assignment["assignment_id"]) not in completed},
            {assignment["assignment_id"]: assignment["instrument_id"]
             for assignment in assignments})


class AssessmentHandlers:
    def __init__(self, repository: AssessmentRepository, runtime: ServiceRuntime,
                 settings: AssessmentSettings) -> None:
        self.repository = repository
        self.runtime = runtime
        self.settings = settings

    async def client_enrolled(self, event: ClientEnrolled, context: EventContext) -> None:
        """Assign the program's instruments (or the default set) to the new client."""
        await self.clients_enrolled([(event, context)])

    async def clients_enrolled(self, enrolled: Sequence[tuple[ClientEnrolled, EventContext]]
                               ) -> None:
        """The same for many clients: one read of the plans, one write of the assignments."""
        plans = await self.repository.program_plans_of(
            (event.tenant_id, event.program_id) for event, _ in enrolled)
        # Two indexed reads per client (by `_id` prefix), all in flight together.
        in_hand = await asyncio.gather(*(instruments_in_hand(
            self.repository, event.tenant_id, event.client_id) for event, _ in enrolled))
        created: list[NewAssignment] = []
        for (event, context), (busy, assigned) in zip(enrolled, in_hand, strict=True):
            cause = context.message.id
            planned = plans.get((event.tenant_id, event.program_id),
                                self.settings.enrolment_instruments)
            # A redelivery finds its own assignments "open": keep them in, their ids repeat.
            own = {instrument_id for assignment_id, instrument_id in assigned.items()
                   if assignment_id == enrolment_assignment_id(cause, instrument_id)}
            for instrument_id in instruments_to_assign(planned, busy - own):
                try:
                    definition = await self.repository.definition(event.tenant_id,
                                                                  instrument_id)
                except InstrumentNotFound:
                    log.warning("program %s plans unknown instrument %s; not assigned",
                                event.program_id, instrument_id)
                    continue
                created.append(new_assignment(
                    event.tenant_id, event.client_id,
                    enrolment_assignment_id(cause, instrument_id), cause, definition,
                    ENROLMENT))
        await create_assignments(self.repository, self.runtime, created)
