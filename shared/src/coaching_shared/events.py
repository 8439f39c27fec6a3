"""Event contracts and the CloudEvents 1.0 envelope in Kafka binary mode.

An event's *data* is a pydantic model (a subclass of `Event`); its *attributes* (id, source,
type, time, subject, tenant) travel as `ce_*` Kafka headers, and the Kafka key is the client id,
so every client's events stay in order within a stream. Each stream (one per producing
context) is one topic, named by `topic_name`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
TENANT_EXTENSION = "tenant"
# uuid5 namespace for ids derived from a cause: a redelivered cause yields the same id again.
_EVENT_ID_NAMESPACE = uuid.UUID("8f3b3c1e-5d1a-4c3e-9a57-2f0d6d1f8a10")

_REGISTRY: dict[str, type[Event]] = {}

# What a tenant id may be, wherever one is named: events, settings.
TenantId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class BadEvent(ValueError):
    """An incoming message that can never be processed as it is (goes to dead letters)."""


class Event(BaseModel):
    """Base of every event's data.

    Subclasses name themselves (`type_name`), their contract version and the stream (topic)
    they travel on. Unknown fields are ignored when reading, so additive changes are safe.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    type_name: ClassVar[str]
    version: ClassVar[int] = 1
    stream: ClassVar[str]

    tenant_id: TenantId
    client_id: str = Field(min_length=1, max_length=128)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "type_name" in cls.__dict__:
            existing = _REGISTRY.get(cls.ce_type())
            if existing is not None and existing is not cls:
                raise TypeError(f"event type {cls.ce_type()} defined twice")
            _REGISTRY[cls.ce_type()] = cls

    @classmethod
    def ce_type(cls) -> str:
        """The CloudEvents `type` attribute, e.g. `coaching.AssessmentCompleted.v1`."""
        return f"coaching.{cls.type_name}.v{cls.version}"


def event_class(ce_type: str) -> type[Event] | None:
    """The registered event model for a CloudEvents type, if any."""
    return _REGISTRY.get(ce_type)


def unknown_type_reason(ce_type: str) -> str | None:
    """Why a CloudEvents type is not one of the platform's, or None if it is.

    A known event in a version this process does not know is named as such: the consumer
    needs an upgrade, and the dead letter can be replayed after it.
    """
    if ce_type in _REGISTRY:
        return None
    name = ce_type.rsplit(".v", 1)[0]
    versions = sorted(cls.version for known, cls in _REGISTRY.items()
                      if known.rsplit(".v", 1)[0] == name)
    if versions:
        return (f"unsupported version of {name}: {ce_type!r} "
                f"(known: {', '.join(f'v{v}' for v in versions)})")
    return f"unknown event type {ce_type!r}"


def registered_events() -> dict[str, type[Event]]:
    """Every event type known to this process, keyed by CloudEvents type."""
    return dict(_REGISTRY)


def topic_name(stream: str, prefix: str = "") -> str:
    """The one topic-naming rule: `<prefix>coaching.<stream>`."""
    return f"{prefix}coaching.{stream}"


def dead_letter_topic(service_name: str, prefix: str = "") -> str:
    """Each consuming service has its own dead-letter topic."""
    return f"{prefix}coaching.{service_name}.dlq"


def derived_event_id(cause_id: str, purpose: str) -> str:
    """A deterministic id for an event caused by another one (or by a request id).

    Handling the same cause twice produces the same id, so downstream deduplication holds.
    """
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, f"{cause_id}|{purpose}"))


def utc_now() -> datetime:
    return datetime.now(UTC)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class EventMessage:
    """One event with its CloudEvents attributes, ready to publish or just consumed."""

    id: str
    type: str
    source: str
    time: datetime
    subject: str
    tenant: str
    stream: str
    data: dict[str, Any] = field(repr=False)

    @classmethod
    def wrap(cls, event: Event, source: str, *, event_id: str | None = None,
             time: datetime | None = None) -> EventMessage:
        """Envelope an event; the subject is its client id, the tenant its tenant id."""
        return cls(id=event_id or str(uuid.uuid4()), type=event.ce_type(), source=source,
                   time=time or utc_now(), subject=event.client_id, tenant=event.tenant_id,
                   stream=event.stream, data=event.model_dump(mode="json"))

    # -- Kafka binary mode ---------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        return {
            "ce_specversion": SPEC_VERSION,
            "ce_id": self.id,
            "ce_source": self.source,
            "ce_type": self.type,
            "ce_time": _rfc3339(self.time),
            "ce_subject": self.subject,
            f"ce_{TENANT_EXTENSION}": self.tenant,
            "content-type": CONTENT_TYPE,
        }

    def body(self) -> bytes:
        return json.dumps(self.data, separators=(",", ":"), ensure_ascii=False).encode()

    def key(self) -> bytes:
        return self.subject.encode()

    def topic(self, prefix: str = "") -> str:
        return topic_name(self.stream, prefix)

    @classmethod
    def from_kafka(cls, headers: dict[str, str], value: bytes | None, stream: str) -> EventMessage:
        """Read a binary-mode message; raises BadEvent naming what is wrong."""
        missing = [name for name in ("ce_id", "ce_type", "ce_source", "ce_specversion")
                   if not headers.get(name)]
        if missing:
            raise BadEvent(f"missing CloudEvents header(s): {', '.join(missing)}")
        if headers["ce_specversion"] != SPEC_VERSION:
            raise BadEvent(f"unsupported ce_specversion {headers['ce_specversion']!r}")
        try:
            data = json.loads(value or b"")
        except (ValueError, UnicodeDecodeError) as error:
            raise BadEvent(f"body is not JSON: {error}") from error
        if not isinstance(data, dict):
            raise BadEvent("body must be a JSON object")
        raw_time = headers.get("ce_time")
        try:
            time = datetime.fromisoformat(raw_time) if raw_time else utc_now()
        except ValueError as error:
            raise BadEvent(f"ce_time is not RFC 3339: {raw_time!r}") from error
        return cls(id=headers["ce_id"], type=headers["ce_type"], source=headers["ce_source"],
                   time=time, subject=headers.get("ce_subject", ""),
                   tenant=headers.get(f"ce_{TENANT_EXTENSION}", ""), stream=stream, data=data)

    def parse(self, model: type[Event]) -> Event:
        """Validate the data against its contract and the envelope; raises BadEvent."""
        try:
            event = model.model_validate(self.data)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}"
                for e in error.errors()
            )
            raise BadEvent(f"{self.type} data invalid: {problems}") from error
        if self.tenant and self.tenant != event.tenant_id:
            raise BadEvent(f"ce_tenant {self.tenant!r} does not match data.tenant_id")
        if self.subject and self.subject != event.client_id:
            raise BadEvent(f"ce_subject {self.subject!r} does not match data.client_id")
        return event

    # -- embedded outbox storage ----------------------------------------------------------

    def to_document(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "source": self.source, "time": self.time,
                "subject": self.subject, "tenant": self.tenant, "stream": self.stream,
                "data": self.data}

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> EventMessage:
        time = doc["time"]
        if time.tzinfo is None:  # BSON datetimes come back naive, in UTC
            time = time.replace(tzinfo=UTC)
        return cls(id=doc["id"], type=doc["type"], source=doc["source"], time=time,
                   subject=doc["subject"], tenant=doc["tenant"], stream=doc["stream"],
                   data=doc["data"])
