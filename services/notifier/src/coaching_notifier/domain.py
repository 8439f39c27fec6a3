"""Notification rules: who hears about what, on which channel, when; pure functions, no I/O.

- Routing: each event type the notifier consumes names its audience (the client, their coach)
  and the channels each gets by default.
- Preferences: a person's choice per event type wins over the tenant's default, which wins
  over the built-in one; an opted-out person gets no email; quiet hours in the person's
  timezone defer email to the end of the quiet period (never drop it).
- Retries: exponential backoff with jitter; which failures are worth retrying.
- Webhook signing: HMAC-SHA256 over `<timestamp>.<body>`, one signature per valid secret.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import random
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from coaching_shared.contracts import (
    AssessmentAssigned,
    AssessmentCompleted,
    CheckInCompleted,
    CheckInDue,
    CheckInMissed,
    ClientAtRisk,
    ClientEnrolled,
    CoachAssigned,
    CoachContact,
    FeedbackGiven,
    GoalAbandoned,
    GoalAchieved,
    GoalSet,
    GoalSuggested,
    ProgressReviewed,
)

# The enrolment contract's own timezone check, so a person's override is held to the same rule.
from coaching_shared.contracts.enrolment import known_timezone
from coaching_shared.events import Event, EventMessage, derived_event_id
from pydantic import BaseModel, ConfigDict, Field, field_validator


class Channel(StrEnum):
    EMAIL = "email"
    INBOX = "inbox"
    WEBHOOK = "webhook"


class Audience(StrEnum):
    """Whom an event concerns: the client it is about, or the client's coach."""

    CLIENT = "client"
    COACH = "coach"


PERSONAL_CHANNELS = (Channel.EMAIL, Channel.INBOX)
# Channels that interrupt a person; quiet hours hold these back. The inbox waits silently.
INTERRUPTING_CHANNELS = (Channel.EMAIL,)

EMAIL_AND_INBOX = (Channel.EMAIL, Channel.INBOX)
INBOX_ONLY = (Channel.INBOX,)

# Built-in routing: event type -> audience -> channels. Tenants and people adjust it.
ROUTES: dict[str, dict[Audience, tuple[Channel, ...]]] = {
    ClientEnrolled.type_name: {Audience.CLIENT: EMAIL_AND_INBOX},
    CoachAssigned.type_name: {Audience.CLIENT: INBOX_ONLY, Audience.COACH: EMAIL_AND_INBOX},
    AssessmentAssigned.type_name: {Audience.CLIENT: EMAIL_AND_INBOX},
    AssessmentCompleted.type_name: {Audience.CLIENT: EMAIL_AND_INBOX},
    GoalSuggested.type_name: {Audience.CLIENT: EMAIL_AND_INBOX},
    GoalSet.type_name: {Audience.CLIENT: EMAIL_AND_INBOX, Audience.COACH: INBOX_ONLY},
    GoalAchieved.type_name: {Audience.CLIENT: EMAIL_AND_INBOX, Audience.COACH: EMAIL_AND_INBOX},
    GoalAbandoned.type_name: {Audience.COACH: INBOX_ONLY},
    CheckInDue.type_name: {Audience.CLIENT: EMAIL_AND_INBOX},
    CheckInCompleted.type_name: {Audience.COACH: INBOX_ONLY},
    CheckInMissed.type_name: {Audience.CLIENT: EMAIL_AND_INBOX, Audience.COACH: INBOX_ONLY},
    ProgressReviewed.type_name: {Audience.CLIENT: INBOX_ONLY, Audience.COACH: INBOX_ONLY},
    FeedbackGiven.type_name: {Audience.CLIENT: EMAIL_AND_INBOX},
    ClientAtRisk.type_name: {Audience.COACH: EMAIL_AND_INBOX},
}

NOTIFIABLE_EVENTS: tuple[type[Event], ...] = (
    ClientEnrolled, CoachAssigned, AssessmentAssigned, AssessmentCompleted, GoalSuggested,
    GoalSet, GoalAchieved, GoalAbandoned, CheckInDue, CheckInCompleted, CheckInMissed,
    ProgressReviewed, FeedbackGiven, ClientAtRisk,
)
NOTIFIABLE_TYPES = frozenset(ROUTES)


def _check_event_type(value: str) -> str:
    if value != "*" and value not in NOTIFIABLE_TYPES:
        raise ValueError(f"unknown event type {value!r}; known: {', '.join(sorted(ROUTES))}")
    return value


# -- preferences -----------------------------------------------------------------------------


class QuietHours(BaseModel):
    """A daily period, in the person's own timezone, in which no email is sent.

    `start` after `end` (22:00 to 07:00) spans midnight; equal times mean no quiet hours.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: time
    end: time

    def deferred_until(self, now: datetime, timezone: str) -> datetime | None:
        """When the quiet period `now` falls in ends (UTC), or None outside quiet hours."""
        local = now.astimezone(ZoneInfo(timezone))
        clock = local.time().replace(tzinfo=None)
        if self.start == self.end:
            return None
        if self.start < self.end:
            quiet = self.start <= clock < self.end
        else:
            quiet = clock >= self.start or clock < self.end
        if not quiet:
            return None
        end_day = local.date() if clock < self.end else local.date() + timedelta(days=1)
        # Wall-clock arithmetic in the zone: a DST change inside the night is handled.
        end = datetime.combine(end_day, self.end, tzinfo=ZoneInfo(timezone))
        return end.astimezone(UTC)


class Preferences(BaseModel):
    """A person's notification preferences."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: dict[str, list[Channel]] = Field(
        default_factory=dict,
        description="per event type (e.g. CheckInDue) the channels wanted; [] mutes the type")
    quiet_hours: QuietHours | None = None
    opted_out: bool = Field(default=False,
                            description="no email at all; the in-app inbox still lists")
    timezone: str | None = Field(default=None,
                                 description="IANA timezone; defaults to the HRIS record")
    locale: str | None = Field(default=None, pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")

    @field_validator("channels")
    @classmethod
    def _personal_channels(cls, value: dict[str, list[Channel]]) -> dict[str, list[Channel]]:
        for event_type, channels in value.items():
            _check_event_type(event_type)
            if event_type == "*":
                raise ValueError("name event types one by one")
            if Channel.WEBHOOK in channels:
                raise ValueError("webhooks are subscribed per tenant, not chosen by a person")
        return {event_type: list(dict.fromkeys(chs)) for event_type, chs in value.items()}

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return None if value is None else known_timezone(value)


class TenantDefaults(BaseModel):
    """A tenant's defaults: channels per event type and audience, and quiet hours."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: dict[str, dict[Audience, list[Channel]]] = Field(default_factory=dict)
    quiet_hours: QuietHours | None = None

    @field_validator("channels")
    @classmethod
    def _known(cls, value: dict[str, dict[Audience, list[Channel]]]
               ) -> dict[str, dict[Audience, list[Channel]]]:
        for event_type, by_audience in value.items():
            _check_event_type(event_type)
            if event_type == "*":
                raise ValueError("name event types one by one")
            for channels in by_audience.values():
                if Channel.WEBHOOK in channels:
                    raise ValueError("webhooks are configured as subscriptions")
        return value


def chosen_channels(event_type: str, audience: Audience, preferences: Preferences,
                    defaults: TenantDefaults) -> list[Channel]:
    """The personal channels a person gets an event on: theirs, else the tenant's, else ours."""
    if event_type in preferences.channels:
        channels = preferences.channels[event_type]
    elif audience in defaults.channels.get(event_type, {}):
        channels = defaults.channels[event_type][audience]
    else:
        channels = list(ROUTES.get(event_type, {}).get(audience, ()))
    if preferences.opted_out:
        channels = [channel for channel in channels if channel is not Channel.EMAIL]
    return list(dict.fromkeys(channels))


def send_after(channel: Channel, now: datetime, timezone: str, preferences: Preferences,
               defaults: TenantDefaults) -> datetime:
    """When a delivery may go out: now, or the end of the person's quiet hours."""
    if channel not in INTERRUPTING_CHANNELS:
        return now
    quiet = preferences.quiet_hours or defaults.quiet_hours
    if quiet is None:
        return now
    return quiet.deferred_until(now, timezone) or now


# -- recipients -----------------------------------------------------------------------------


def client_contact(event: ClientEnrolled) -> dict[str, Any]:
    """How to reach a client, from their enrolment."""
    return {"role": "client", "display_name": event.display_name, "email": event.email,
            "timezone": event.timezone, "locale": event.locale}


def coach_contact(coach: CoachContact) -> dict[str, Any]:
    """How to reach a coach."""
    return {"role": "coach", "display_name": coach.display_name, "email": coach.email,
            "timezone": coach.timezone, "locale": coach.locale}


@dataclass(frozen=True, slots=True)
class Recipient:
    audience: Audience
    person_id: str


def coach_named_in(event: Event) -> str | None:
    """The coach an event itself names, if any (it wins over the roster's)."""
    coach = getattr(event, "coach", None)
    if isinstance(coach, CoachContact):
        return coach.coach_id
    coach_id = getattr(event, "coach_id", None)
    return coach_id if isinstance(coach_id, str) else None


def recipients_of(event: Event, roster_coach: str | None) -> list[Recipient]:
    """The people the built-in route addresses for this event."""
    route = ROUTES.get(type(event).type_name, {})
    found = []
    if Audience.CLIENT in route:
        found.append(Recipient(Audience.CLIENT, event.client_id))
    coach_id = coach_named_in(event) or roster_coach
    if Audience.COACH in route and coach_id:
        found.append(Recipient(Audience.COACH, coach_id))
    return found


def notification_id(tenant_id: str, cause_event_id: str, recipient_id: str,
                    channel: Channel) -> str:
    """The one id of a (cause event, recipient, channel) notification, stable across retries."""
    return derived_event_id(f"{tenant_id}|{cause_event_id}", f"notify|{recipient_id}|{channel}")


# -- retries ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    backoff_seconds: float
    backoff_max_seconds: float

    def delay(self, attempt: int, uniform: Callable[[float, float], float] = random.uniform
              ) -> timedelta:
        """Wait before the attempt after `attempt` failed ones: doubling, capped, jittered.

        The jitter (a random point in the upper half) keeps many deliveries that failed
        together, e.g. while a receiver was down, from all retrying in the same second.
        """
        ceiling = min(self.backoff_max_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        return timedelta(seconds=uniform(ceiling / 2, ceiling))

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts


def webhook_status_retryable(status_code: int) -> bool:
    """5xx, 408 (timeout) and 429 (slow down) are worth another try; other 4xx are not."""
    return status_code >= 500 or status_code in (408, 429)


def smtp_code_retryable(code: int) -> bool:
    """SMTP 4xx replies are transient by definition (RFC 5321); 5xx are permanent."""
    return 400 <= code < 500


# -- webhooks ---------------------------------------------------------------------------------

SIGNATURE_VERSION = "v1"
SECRET_PREFIX = "whsec_"
HEADER_ID = "Coaching-Webhook-Id"
HEADER_TIMESTAMP = "Coaching-Webhook-Timestamp"
HEADER_SIGNATURE = "Coaching-Webhook-Signature"
CLOUDEVENTS_JSON = "application/cloudevents+json"


def new_webhook_secret() -> str:
    """A fresh signing secret (256 bits of randomness)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 of `<timestamp>.<body>` under the secret, hex."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(valid_secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """`v1=<hex>` per valid secret, space separated: during a rotation both verify."""
    return " ".join(f"{SIGNATURE_VERSION}={webhook_signature(secret, timestamp, body)}"
                    for secret in valid_secrets)


def webhook_headers(delivery_id: str, valid_secrets: Sequence[str], now: datetime,
                    body: bytes) -> dict[str, str]:
    """Every header of one webhook call; the timestamp is the attempt's own."""
    timestamp = int(now.timestamp())
    return {"Content-Type": CLOUDEVENTS_JSON, HEADER_ID: delivery_id,
            HEADER_TIMESTAMP: str(timestamp),
            HEADER_SIGNATURE: signature_header(valid_secrets, timestamp, body),
            "User-Agent": "coaching-notifier/1"}


def valid_secrets(stored: Iterable[Mapping[str, Any]], now: datetime) -> list[str]:
    """The secrets that sign now: the current one, and the previous one until it retires."""
    found = []
    for entry in stored:
        retires_at = entry.get("retires_at")
        if retires_at is not None and _aware(retires_at) <= now:
            continue
        found.append(entry["secret"])
    return found


def rotated_secrets(stored: Sequence[Mapping[str, Any]], new_secret: str, now: datetime,
                    overlap: timedelta) -> list[dict[str, Any]]:
    """The secret list after a rotation: the new one first, the newest old one until overlap.

    At most two are ever valid; an older one still in its overlap retires at once.
    """
    rotated: list[dict[str, Any]] = [{"secret": new_secret, "created_at": now,
                                      "retires_at": None}]
    previous = valid_secrets(stored[:1], now)
    if previous and overlap > timedelta(0):
        rotated.append({"secret": previous[0], "created_at": stored[0].get("created_at"),
                        "retires_at": now + overlap})
    return rotated


def subscribed(event_type: str, subscription: Mapping[str, Any]) -> bool:
    """Whether a webhook subscription wants this event type."""
    wanted = subscription.get("event_types", [])
    return "*" in wanted or event_type in wanted


class WebhookSubscriptionRequest(BaseModel):
    """What a tenant admin or integration submits to subscribe a URL."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=2000)
    event_types: list[str] = Field(min_length=1, max_length=len(ROUTES) + 1,
                                   description="event type names, or * for all")
    description: str = Field(default="", max_length=500)

    @field_validator("event_types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(_check_event_type(v) for v in value))


def webhook_url_problem(url: str, allow_http_loopback: bool) -> str | None:
    """Why a URL may not be subscribed, or None. https only, except loopback in development."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an absolute http(s) URL"
    if parts.username or parts.password:
        return "must not carry credentials; the signature authenticates the platform"
    if parts.scheme == "http":
        if not (allow_http_loopback and _is_loopback(parts.hostname)):
            return "must use https"
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cloudevent_body(message: EventMessage) -> bytes:
    """The event in CloudEvents structured JSON: what a webhook receives."""
    envelope = {"specversion": "1.0", "id": message.id, "type": message.type,
                "source": message.source, "subject": message.subject,
                "time": message.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "tenant": message.tenant, "datacontenttype": "application/json",
                "data": message.data}
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


# -- the delivery log -------------------------------------------------------------------------


class DeliveryStatus(StrEnum):
    PENDING = "pending"      # waiting for its due time (first send, retry or quiet hours)
    SENDING = "sending"      # claimed by a sender until its lease runs out
    SENT = "sent"
    FAILED = "failed"        # retries exhausted or a permanent refusal
    SKIPPED = "skipped"      # nothing to send to (e.g. no email address known)


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What one attempt came to; `detail` names a status or error class, never content."""

    delivered: bool
    retryable: bool
    detail: str


def attempt_entry(attempt: int, at: datetime, outcome: str, detail: str) -> dict[str, Any]:
    """One line of a delivery's attempt log."""
    return {"attempt": attempt, "at": at, "outcome": outcome, "detail": detail[:500]}


def planned_delivery(*, tenant_id: str, client_id: str, cause: EventMessage, event_type: str,
                     recipient_id: str, audience: Audience | None, channel: Channel,
                     now: datetime, due_at: datetime, content: dict[str, Any],
                     skip_reason: str | None = None) -> dict[str, Any]:
    """A delivery-log document as planned by a handler (`content` is the channel's part)."""
    document: dict[str, Any] = {
        "tenant_id": tenant_id, "client_id": client_id, "cause_event_id": cause.id,
        "cause_type": cause.type, "event_type": event_type, "recipient_id": recipient_id,
        "audience": audience.value if audience else None, "channel": channel.value,
        "notification_id": notification_id(tenant_id, cause.id, recipient_id, channel),
        "status": DeliveryStatus.PENDING.value, "created_at": now, "due_at": due_at,
        "attempts": 0, "attempt_log": [], channel.value: content,
    }
    if due_at > now:
        document["deferred_until"] = due_at
    if skip_reason is not None:
        document.update(status=DeliveryStatus.SKIPPED.value, reason=skip_reason)
    return document


def next_step(outcome: SendOutcome, attempts: int, policy: RetryPolicy) -> DeliveryStatus:
    """After an attempt: sent, retry later (pending), or give up (failed)."""
    if outcome.delivered:
        return DeliveryStatus.SENT
    if outcome.retryable and not policy.exhausted(attempts):
        return DeliveryStatus.PENDING
    return DeliveryStatus.FAILED


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
