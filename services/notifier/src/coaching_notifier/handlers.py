"""What the notifier service does with each event it consumes.

Enrolment events keep the contact book (address, timezone, locale). Every notifiable event
is *planned*: for each recipient and channel one delivery document in the delivery log,
rendered and due now (or at the end of the person's quiet hours). Planning twice plans the
same documents, which the log's unique index refuses. Sending is the dispatcher's job, so a
slow webhook receiver never holds up this consumer.

A client's enrolment travels on its own stream, so an event about the client (e.g. the
`AssessmentAssigned` the enrolment caused) can arrive first: it is held until the enrolment
brings the contact, then planned, instead of going out without an address.

The consumer hands a wave of events of one type (distinct clients) to the `*_together`
handlers; a single event is a wave of one. Everything planning reads (contacts, roster
coaches, preferences, tenant defaults, templates, webhook subscriptions) is read once per
wave for all of its events, and the wave's deliveries are planned in one insert.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
from coaching_notifier.repository import ContactSave, NotifierRepository
from coaching_notifier.settings import NotifierSettings

Item = tuple[Event, EventContext]
Person = tuple[str, str]  # (tenant, person id)


@dataclass(frozen=True)
class PlanningData:
    """What planning a wave of events reads, each read once for the whole wave."""

    contacts: dict[Person, dict[str, Any]]
    roster_coaches: dict[Person, str | None]
    preferences: dict[Person, dict[str, Any]]
    defaults: dict[str, dict[str, Any]]
    templates: dict[tuple[str, str, str], dict[str, Any]]
    webhooks: dict[str, list[dict[str, Any]]]


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
        await self.client_enrolled_together([(event, context)])

    async def client_enrolled_together(
            self, items: Sequence[tuple[ClientEnrolled, EventContext]]) -> None:
        """Enrolments of distinct clients: contacts, welcomes, then the events held for them."""
        saves: list[ContactSave] = []
        for event, context in items:
            cause = context.message.id
            saves.append(ContactSave(event.tenant_id, event.client_id, cause,
                                     client_contact(event), event.client_id))
            if event.coach is not None:
                saves.append(ContactSave(event.tenant_id, event.coach.coach_id, cause,
                                         coach_contact(event.coach), None))
        await self.repository.save_contacts(saves)
        await self.notify_together(items)
        held = await self.repository.held_for_all(
            [(event.tenant_id, event.client_id) for event, _ in items])
        released: list[Item] = []
        for messages in held.values():
            for message in messages:
                model = event_class(message.type)
                if model is not None:
                    released.append((message.parse(model),
                                     EventContext(message, message.topic(), -1, -1)))
        await self.notify_together(released)
        await self.repository.release_all_held([
            (tenant_id, client_id, message.id)
            for (tenant_id, client_id), messages in held.items() for message in messages])

    async def coach_assigned(self, event: CoachAssigned, context: EventContext) -> None:
        """Keep the coach's contact details, then tell client and coach."""
        await self.coach_assigned_together([(event, context)])

    async def coach_assigned_together(
            self, items: Sequence[tuple[CoachAssigned, EventContext]]) -> None:
        await self.repository.save_contacts([
            ContactSave(event.tenant_id, event.coach.coach_id, context.message.id,
                        coach_contact(event.coach), None) for event, context in items])
        await self.notify_together(items)

    async def notify(self, event: Event, context: EventContext) -> None:
        """Plan the deliveries of one event: its people's channels and matching webhooks."""
        await self.notify_together([(event, context)])

    async def notify_together(self, items: Sequence[Item]) -> None:
        """Plan the deliveries of many events in one insert, reading what they need once.

        An event about a client whose contact is not known yet is held for the enrolment
        (`client_enrolled_together` plans it) instead.
        """
        if not items:
            return
        contacts = await self.repository.contacts_of(
            (event.tenant_id, event.client_id) for event, _ in items)
        waiting = [(event, context) for event, context in items
                   if (event.tenant_id, event.client_id) not in contacts
                   and not isinstance(event, ClientEnrolled | CoachAssigned)]
        if waiting:
            held = {context.message.id for _, context in waiting}
            items = [(event, context) for event, context in items
                     if context.message.id not in held]
            await self.repository.hold_all_for_contact(
                [(event.tenant_id, event.client_id, context.message) for event, context
                 in waiting])
            arrived = await self.repository.contacts_of(
                (event.tenant_id, event.client_id) for event, _ in waiting)
            # The enrolment was handled meanwhile (another replica): plan those here.
            now_known = [(event, context) for event, context in waiting
                         if (event.tenant_id, event.client_id) in arrived]
            contacts.update(arrived)
            items = [*items, *now_known]
            await self.repository.release_all_held(
                [(event.tenant_id, event.client_id, context.message.id)
                 for event, context in now_known])
        if not items:
            return
        data = await self._planning_data(items, contacts)
        now = self.clock()
        planned: list[dict[str, Any]] = []
        for event, context in items:
            planned += self._deliveries(event, context, data, now)
        if await self.repository.plan_deliveries(planned):
            self.planned()

    async def _planning_data(self, items: Sequence[Item],
                             contacts: dict[Person, dict[str, Any]]) -> PlanningData:
        """Read, once for all the events, everything their deliveries depend on."""
        unnamed = [(event.tenant_id, event.client_id) for event, _ in items
                   if not coach_named_in(event)]
        roster = await self.membership.coaches_of(unnamed) if unnamed else {}
        recipients = [(event.tenant_id, recipient.person_id) for event, _ in items
                      for recipient in recipients_of(event, roster.get(
                          (event.tenant_id, event.client_id)))]
        coaches = {(event.tenant_id, coach_id) for event, _ in items
                   if (coach_id := coach_named_in(event)
                       or roster.get((event.tenant_id, event.client_id)))}
        missing = coaches - contacts.keys()
        if missing:
            contacts = {**contacts, **await self.repository.contacts_of(missing)}
        tenants = {event.tenant_id for event, _ in items}
        return PlanningData(
            contacts=contacts, roster_coaches=roster,
            preferences=await self.repository.preferences_of(recipients),
            defaults=await self.repository.tenant_defaults_of(tenants),
            templates=await self.repository.template_overrides_for(
                tenants, {type(event).type_name for event, _ in items}),
            webhooks=await self.repository.webhooks_of_tenants(tenants))

    def _deliveries(self, event: Event, context: EventContext, data: PlanningData,
                    now: datetime) -> list[dict[str, Any]]:
        """The deliveries of one event: its people's channels and matching webhooks."""
        tenant_id = event.tenant_id
        defaults = TenantDefaults.model_validate(
            data.defaults.get(tenant_id, {}).get("defaults", {}))
        roster_coach = (None if coach_named_in(event)
                        else data.roster_coaches.get((tenant_id, event.client_id)))
        coach_id = coach_named_in(event) or roster_coach
        client = data.contacts.get((tenant_id, event.client_id))
        coach = data.contacts.get((tenant_id, coach_id)) if coach_id else None
        planned: list[dict[str, Any]] = []
        for recipient in recipients_of(event, roster_coach):
            contact = client if recipient.audience is Audience.CLIENT else coach
            planned += self._personal_deliveries(event, context, recipient, contact,
                                                 client, coach, defaults, data, now)
        planned += _webhook_deliveries(event, context, data.webhooks.get(tenant_id, []), now)
        return planned

    def _personal_deliveries(self, event: Event, context: EventContext,
                             recipient: Recipient, contact: dict[str, Any] | None,
                             client: dict[str, Any] | None, coach: dict[str, Any] | None,
                             defaults: TenantDefaults, data: PlanningData, now: datetime
                             ) -> list[dict[str, Any]]:
        tenant_id = event.tenant_id
        event_type = type(event).type_name
        stored = data.preferences.get((tenant_id, recipient.person_id))
        preferences = Preferences.model_validate((stored or {}).get("preferences", {}))
        channels = chosen_channels(event_type, recipient.audience, preferences, defaults)
        if not channels:
            return []
        timezone = preferences.timezone or (contact or {}).get("timezone") or "UTC"
        locale = preferences.locale or (contact or {}).get("locale")
        chain = locales_for(locale)
        override = next((data.templates[(tenant_id, event_type, each)] for each in chain
                         if (tenant_id, event_type, each) in data.templates), None)
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


def _webhook_deliveries(event: Event, context: EventContext,
                        webhooks: Sequence[dict[str, Any]], now: datetime
                        ) -> list[dict[str, Any]]:
    event_type = type(event).type_name
    subscriptions = [s for s in webhooks if subscribed(event_type, s)]
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
