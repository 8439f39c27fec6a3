"""What the goals service does with each event it consumes."""

from __future__ import annotations

from coaching_shared.contracts import AssessmentCompleted
from coaching_shared.messaging import EventContext

from coaching_goals.domain import assessment_basis
from coaching_goals.repository import GoalsRepository


class GoalsHandlers:
    def __init__(self, repository: GoalsRepository) -> None:
        self.repository = repository

    async def assessment_completed(self, event: AssessmentCompleted,
                                   context: EventContext) -> None:
        await self.repository.store_assessment(event.tenant_id, event.client_id,
                                               context.message.id, assessment_basis(event))
