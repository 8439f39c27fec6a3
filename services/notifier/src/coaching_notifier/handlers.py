"""What the notifier service does with each event it consumes.

Enrolment events keep the contact book (address, timezone, locale). Every notifiable event
is *planned*: for each recipient and channel one delivery document in the delivery log,
rendered and due now (or at the end of the person's quiet hours). Planning twice plans the
same documents, which the log's unique index refuses. Sending is the dispatcher's job, so a
slow webhook receiver never holds up this consumer.

A client's enrolment travels on its own stream, so an event about the client (e.g. the
`AssessmentAssigned` the enrolment caused) can arrive first: it is held until the enrolment
brings the contact, then planned, instead of going out without an address.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from coaching_shared.contracts import ClientEnrolled, CoachAssigned
from coaching_shared.events import Event, event_class
from coaching_shared.membership import Membership
from coaching_shared.messaging import EventContext

from coaching_notifier.domain import (
    Audience,
    Channel,
    Preferences,
    Recipient,
    TenantDefaults,
    chosen_channels,
    client_contact,
    cloudevent_body,
    coach_contact,
    coach_named_in,
    planned_delivery,
    recipients_of,
    send_after,
    subscribed,
)
from coaching_notifier.messages import (
    TemplateOverride,
    locales_for,
    message_context,
    render_notification,
)
from coaching_notifier.repository import NotifierRepository
from coaching_notifier.settings import NotifierSettings


class NotifierHandlers:
    def __init__(self, repository: NotifierRepository, membership: Membership,
                 settings: NotifierSettings, clock: Callable[[], datetime],
                 planned: Callable[[], None]) -> None:
        self.repository = repository
        self.membership = membership
        self.settings = settings
        self.clock = clock
        self.planned = planned

    async def client_enrolled(self, event: ClientEnrolled, context: EventContext) -> None:
        """Keep the client's (and their coach's) contact details, then welcome the client."""
        cause = context.message.id
        await self.repository.save_contact(event.tenant_id, event.client_id, cause,
                                           client_contact(event), client_id=event.client_id)
        if event.coach is not None:
            await self.repository.save_contact(event.tenant_id, event.coach.coach_id, cause,
                                               coach_contact(event.coach), client_id=None)
        await self.notify(event, context)
        for held in await self.repository.held_for(event.tenant_id, event.client_id):
            model = event_class(held.type)
            if model is not None:
                await self.notify(held.parse(model), EventContext(held, held.topic(), -1, -1))
            await self.repository.release_held(event.tenant_id, event.client_id, held.id)

    async def coach_assigned(self, event: CoachAssigned, context: EventContext) -> None:
        """Keep the coach's contact details, then tell client and coach."""
        await self.repository.save_contact(event.tenant_id, event.coach.coach_id,
                                           context.message.id, coach_contact(event.coach),
                                           client_id=None)
        await self.notify(event, context)

    async def notify(self, event: Event, context: EventContext) -> None:
        """Plan the deliveries of one event: its people's channels and matching webhooks."""
        tenant_id = event.tenant_id
        client = await self.repository.contact(tenant_id, event.client_id)
        if client is None and not isinstance(event, ClientEnrolled | CoachAssigned):
            await self.repository.hold_for_contact(tenant_id, event.client_id, context.message)
            client = await self.repository.contact(tenant_id, event.client_id)
            if client is None:
                return  # client_enrolled plans it
            # The enrolment was handled meanwhile (another replica): plan it here.
            await self.repository.release_held(tenant_id, event.client_id, context.message.id)
        now = self.clock()
        stored = await self.repository.tenant_defaults(tenant_id)
        defaults = TenantDefaults.model_validate((stored or {}).get("defaults", {}))
        roster_coach = (None if coach_named_in(event)
                        else await self.membership.coach_of(tenant_id, event.client_id))
        coach_id = coach_named_in(event) or roster_coach
        coach = await self.repository.contact(tenant_id, coach_id) if coach_id else None
        planned: list[dict[str, Any]] = []
        for recipient in recipients_of(event, roster_coach):
            contact = client if recipient.audience is Audience.CLIENT else coach
            planned += await self._personal_deliveries(event, context, recipient, contact,
                                                       client, coach, defaults, now)
        planned += await self._webhook_deliveries(event, context, now)
        if await self.repository.plan_deliveries(planned):
            self.planned()

    async def _personal_deliveries(self, event: Event, context: EventContext,
                                   recipient: Recipient, contact: dict[str, Any] | None,
                                   client: dict[str, Any] | None, coach: dict[str, Any] | None,
                                   defaults: TenantDefaults, now: datetime
                                   ) -> list[dict[str, Any]]:
        tenant_id = event.tenant_id
        event_type = type(event).type_name
        stored = await self.repository.preferences(tenant_id, recipient.person_id)
        preferences = Preferences.model_validate((stored or {}).get("preferences", {}))
        channels = chosen_channels(event_type, recipient.audience, preferences, defaults)
        if not channels:
            return []
        timezone = preferences.timezone or (contact or {}).get("timezone") or "UTC"
        locale = preferences.locale or (contact or {}).get("locale")
        chain = locales_for(locale)
        override = await self.repository.template_override(tenant_id, event_type, chain)
        message = render_notification(
            event_type, recipient.audience,
            message_context(event_type=event_type, data=context.message.data,
                            recipient=contact or {}, client=client, coach=coach,
                            timezone=timezone, locale=chain[0], app_url=self.settings.app_url),
            chain[0], _override(override))
        deliveries = []
        for channel in channels:
            skip_reason = None
            if channel is Channel.EMAIL:
                email = (contact or {}).get("email")
                skip_reason = None if email else "no email address known"
                content = {"to": email, "to_name": (contact or {}).get("display_name"),
                           "subject": message.subject, "text": message.text,
                           "html": message.html}
            else:
                content = {"title": message.subject, "body": message.body,
                           "link": message.link}
            deliveries.append(planned_delivery(
                tenant_id=tenant_id, client_id=event.client_id, cause=context.message,
                event_type=event_type, recipient_id=recipient.person_id,
                audience=recipient.audience, channel=channel, now=now,
                due_at=send_after(channel, now, timezone, preferences, defaults),
                content=content, skip_reason=skip_reason))
        return deliveries

    async def _webhook_deliveries(self, event: Event, context: EventContext,
                                  now: datetime) -> list[dict[str, Any]]:
        event_type = type(event).type_name
        subscriptions = [s for s in await self.repository.webhooks_of(event.tenant_id)
                         if subscribed(event_type, s)]
        if not subscriptions:
            return []
        body = cloudevent_body(context.message).decode()
        return [planned_delivery(
            tenant_id=event.tenant_id, client_id=event.client_id, cause=context.message,
            event_type=event_type, recipient_id=subscription["subscription_id"], audience=None,
            channel=Channel.WEBHOOK, now=now, due_at=now,
            content={"subscription_id": subscription["subscription_id"],
                     "url": subscription["url"], "body": body})
            for subscription in subscriptions]


def _override(stored: dict[str, Any] | None) -> TemplateOverride | None:
    return TemplateOverride.model_validate(stored["template"]) if stored else None
