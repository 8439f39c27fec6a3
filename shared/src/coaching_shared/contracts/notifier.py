"""Events of the notifier service (stream `notifier`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from coaching_shared.events import Event


class NotificationSent(Event):
    """A notification reached its channel (once per cause event, recipient and channel)."""

    type_name = "NotificationSent"
    stream = "notifier"

    notification_id: str
    cause_event_id: str
    cause_type: str
    recipient_id: str
    channel: str = Field(description="email, webhook or inbox")
    sent_at: datetime
    attempts: int = Field(ge=1)


class NotificationFailed(Event):
    """A notification could not be delivered after its retries."""

    type_name = "NotificationFailed"
    stream = "notifier"

    notification_id: str
    cause_event_id: str
    cause_type: str
    recipient_id: str
    channel: str
    failed_at: datetime
    attempts: int = Field(ge=1)
    reason: str = Field(max_length=2000)
