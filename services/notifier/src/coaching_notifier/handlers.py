"""What the notifier service does with each event it consumes."""

from __future__ import annotations

from coaching_shared.contracts import ClientEnrolled, CoachAssigned
from coaching_shared.messaging import EventContext

from coaching_notifier.domain import client_contact, coach_contact
from coaching_notifier.repository import NotifierRepository


class NotifierHandlers:
    def __init__(self, repository: NotifierRepository) -> None:
        self.repository = repository

    async def client_enrolled(self, event: ClientEnrolled, context: EventContext) -> None:
        cause = context.message.id
        await self.repository.save_contact(event.tenant_id, event.client_id, cause,
                                           client_contact(event), client_id=event.client_id)
        if event.coach is not None:
            await self.repository.save_contact(event.tenant_id, event.coach.coach_id, cause,
                                               coach_contact(event.coach), client_id=None)

    async def coach_assigned(self, event: CoachAssigned, context: EventContext) -> None:
        await self.repository.save_contact(event.tenant_id, event.coach.coach_id,
                                           context.message.id, coach_contact(event.coach),
                                           client_id=None)
