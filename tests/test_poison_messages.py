"""Poison messages, for each of the four services, against the real broker and database.

Every kind of message that can never be processed as it is goes to the service's own
dead-letter topic at once, byte for byte, with the reason and its origin in `dlq_*` headers;
the consumer carries on and applies the next valid event. Once the cause is fixed (here: the
deployment is reconfigured to serve the event's tenant), `coachctl dlq replay` delivers the
event again and the service applies it exactly once, however often it is replayed.

Each service runs once for all poison kinds (a module-scoped scenario), then once more,
reconfigured, for the replay.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from aiokafka.structs import RecordMetadata
from coaching_assessment.app import create_app as assessment_app
from coaching_assessment.settings import AssessmentSettings
from coaching_feedback.app import create_app as feedback_app
from coaching_feedback.settings import FeedbackSettings
from coaching_goals.app import create_app as goals_app
from coaching_goals.settings import GoalsSettings
from coaching_notifier.app import create_app as notifier_app
from coaching_notifier.settings import NotifierSettings
from coaching_shared.contracts import AssessmentCompleted, ClientEnrolled, GoalSet
from coaching_shared.contracts.examples import EXAMPLES
from coaching_shared.events import Event, EventMessage, dead_letter_topic
from coaching_shared.settings import ServiceSettings
from fastapi import FastAPI
from pymongo import AsyncMongoClient
from support.cli import coachctl
from support.inprocess import running_service, service_settings
from support.kafka_tools import (
    RawRecord,
    TopicReader,
    consumed_to_end,
    eventually,
    headers_of,
    publish_records,
)

pytestmark = pytest.mark.integration

SERVED = "acme"
NOT_YET_SERVED = "globex"
CLIENT = "client-0042"
SOURCE = "/hris/poison-tests"


@dataclass(frozen=True)
class ServiceUnderTest:
    """A service, one event type it consumes, and where that event's effect shows."""

    name: str
    settings_class: type[ServiceSettings]
    create_app: Callable[[ServiceSettings], FastAPI]
    consumed: type[Event]
    effect_collection: str
    effect_documents: int  # what one such event leaves there for its client
    overrides: dict[str, Any] = field(default_factory=dict)

    def settings(self, infra, prefix: str, tenants: list[str]) -> ServiceSettings:
        return service_settings(self.settings_class, infra, prefix, tenants=tenants,
                                **self.overrides)


SERVICES = [
    ServiceUnderTest("assessment", AssessmentSettings, assessment_app, ClientEnrolled,
                     "assignments",
                     len(AssessmentSettings.model_fields["enrolment_instruments"].default)),
    ServiceUnderTest("goals", GoalsSettings, goals_app, AssessmentCompleted,
                     "assessment_results", 1),
    ServiceUnderTest("feedback", FeedbackSettings, feedback_app, GoalSet, "checkin_schedules",
                     1),
    # Welcome mails go nowhere here (no SMTP sink): fail fast, they are not what is tested.
    ServiceUnderTest("notifier", NotifierSettings, notifier_app, ClientEnrolled, "contacts", 1,
                     {"smtp_port": 9, "smtp_timeout_seconds": 1.0}),
]


def event_of(model: type[Event], tenant_id: str) -> EventMessage:
    """The catalog's example of an event type, for a tenant, enveloped with a fresh id."""
    example = next(event for event in EXAMPLES if type(event) is model)
    event = model.model_validate({**example.model_dump(), "tenant_id": tenant_id,
                                  "client_id": CLIENT})
    return EventMessage.wrap(event, SOURCE)


def as_record(message: EventMessage, prefix: str) -> RawRecord:
    return RawRecord(message.topic(prefix), message.body(), message.key(), message.headers())


@dataclass(frozen=True)
class Poison:
    """A message the service can never process as it is, and what its dead letter must say."""

    kind: str
    record: RawRecord
    reason: str


def poison_messages(model: type[Event], prefix: str, max_event_bytes: int) -> list[Poison]:
    """One message of each poison kind, on the stream the service reads `model` from."""
    valid = event_of(model, SERVED)
    topic, key, body = valid.topic(prefix), valid.key(), valid.body()
    name = valid.type.rsplit(".v", 1)[0]
    required = next(attribute for attribute, info in model.model_fields.items()
                    if info.is_required() and attribute not in ("tenant_id", "client_id"))
    foreign = event_of(model, NOT_YET_SERVED)
    # A platform event written to the wrong topic (its producer's bug, or a bad replay).
    stray = next(other for other in (GoalSet, AssessmentCompleted) if other.stream != model.stream)

    def poison(kind: str, reason: str, value: bytes | None = body, **changes: str | None,
               ) -> Poison:
        headers = {**valid.headers(), "ce_id": str(uuid.uuid4())}
        for header, changed in changes.items():
            if changed is None:
                headers.pop(header)
            else:
                headers[header] = changed
        return Poison(kind, RawRecord(topic, value, key, headers), reason)

    without_required = {k: v for k, v in valid.data.items() if k != required}
    padded = {**valid.data, "notes": "x" * max_event_bytes}
    return [
        poison("invalid JSON", "body is not JSON", body[:len(body) // 2]),
        poison("not a JSON object", "body must be a JSON object", b"[" + body + b"]"),
        poison("breaks the schema", f"{valid.type} data invalid: {required}: Field required",
               json.dumps(without_required).encode()),
        poison("unknown type", "unknown event type 'coaching.ClientTeleported.v1'",
               ce_type="coaching.ClientTeleported.v1"),
        poison("unknown version", f"unsupported version of {name}: '{name}.v9' (known: v1)",
               ce_type=f"{name}.v9"),
        Poison("missing ce headers", RawRecord(topic, body, key, {
            "content-type": "application/json"}),
            "missing CloudEvents header(s): ce_id, ce_type, ce_source, ce_specversion"),
        poison("oversized body", f"exceeds the limit of {max_event_bytes} bytes",
               json.dumps(padded).encode()),
        Poison("tenant not served", as_record(foreign, prefix),
               f"tenant {NOT_YET_SERVED!r} is not served by this deployment"),
        poison("ce_tenant disagrees with data",
               f"ce_tenant {SERVED!r} does not match data.tenant_id", foreign.body()),
        poison("ce_tenant missing", "missing ce_tenant header", ce_tenant=None),
        poison("ce_tenant empty", "missing ce_tenant header", ce_tenant=""),
        poison("another stream's event", f"{stray.ce_type()} travels on the "
               f"{stray.stream!r} stream, not on {topic}", ce_type=stray.ce_type()),
    ]


KINDS = [poison.kind for poison in poison_messages(ClientEnrolled, "", 1)]


@dataclass
class Scenario:
    """What one service did with the poison messages and the valid event after them."""

    service: ServiceUnderTest
    settings: ServiceSettings
    mongo: AsyncMongoClient
    poisons: list[Poison]
    sent: list[RecordMetadata]  # where each poison landed
    valid: RecordMetadata  # where the valid event after them landed
    dead_letters: list[ConsumerRecord] = field(default_factory=list)

    def dead_letter_of(self, kind: str) -> tuple[Poison, RecordMetadata, ConsumerRecord]:
        index = next(i for i, poison in enumerate(self.poisons) if poison.kind == kind)
        sent = self.sent[index]
        matching = [record for record in self.dead_letters
                    if headers_of(record).get("dlq_original_offset") == str(sent.offset)
                    and headers_of(record).get("dlq_original_partition") == str(sent.partition)]
        assert len(matching) == 1, f"{kind}: {len(matching)} dead letters"
        return self.poisons[index], sent, matching[0]

    async def effect(self, tenant_id: str) -> int:
        """How many documents of the consumed event's effect the client has in the tenant."""
        db = self.mongo[self.settings.database_name]
        return await db[self.service.effect_collection].count_documents(
            {"tenant_id": tenant_id, "client_id": CLIENT})

    async def times_applied(self, tenant_id: str, event_id: str) -> list[int]:
        """For each effect document of the client, how often it recorded applying the event."""
        db = self.mongo[self.settings.database_name]
        documents = await db[self.service.effect_collection].find(
            {"tenant_id": tenant_id, "client_id": CLIENT}).to_list()
        return [document.get("applied_events", []).count(event_id) for document in documents]

    async def effect_is(self, tenant_id: str, expected: int) -> int:
        found = await self.effect(tenant_id)
        return found if found == expected else 0


@pytest.fixture(scope="module", params=SERVICES, ids=lambda service: service.name)
async def scenario(request, infra):
    """The service, serving one tenant, fed every poison kind and then a valid event."""
    service: ServiceUnderTest = request.param
    prefix = f"t{uuid.uuid4().hex[:10]}."
    settings = service.settings(infra, prefix, [SERVED])
    poisons = poison_messages(service.consumed, prefix, settings.max_event_bytes)
    # One partition key for all: the valid event is consumed after every poison message.
    valid = as_record(event_of(service.consumed, SERVED), prefix)
    mongo = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    try:
        async with running_service(service.create_app, settings):
            *sent, after = await publish_records(
                infra.kafka_bootstrap_servers, [poison.record for poison in poisons] + [valid])
            result = Scenario(service, settings, mongo, poisons, sent, after)
            await eventually(lambda: result.effect_is(SERVED, service.effect_documents))
            async with TopicReader(infra.kafka_bootstrap_servers,
                                   dead_letter_topic(service.name, prefix)) as reader:
                result.dead_letters = await reader.until(lambda r: len(r) >= len(poisons))
        yield result
    finally:
        await mongo.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_poison_is_dead_lettered_untouched_with_its_reason(scenario: Scenario, kind):
    poison, sent, dead = scenario.dead_letter_of(kind)
    headers = headers_of(dead)
    assert dead.value == poison.record.value
    assert dead.key == poison.record.key
    # The broker client adds its correlation id (the event id) to what it publishes.
    assert {name: value for name, value in headers.items()
            if not name.startswith("dlq_") and name != "correlation_id"} == poison.record.headers
    assert poison.reason in headers["dlq_reason"], headers["dlq_reason"]
    assert headers["dlq_error_type"] == "BadEvent"
    assert headers["dlq_service"] == scenario.service.name
    assert headers["dlq_original_topic"] == sent.topic == poison.record.topic
    assert headers["dlq_attempts"] == "0"  # never handed to a handler, so never retried
    assert datetime.fromisoformat(headers["dlq_failed_at"]).tzinfo is not None


async def test_consumer_carries_on_after_poison(scenario: Scenario):
    # The valid event queued behind every poison message, and its effect is there.
    assert all(sent.partition == scenario.valid.partition
               and sent.offset < scenario.valid.offset for sent in scenario.sent)
    assert await scenario.effect(SERVED) == scenario.service.effect_documents
    assert len(scenario.dead_letters) == len(scenario.poisons)
    assert await scenario.effect(NOT_YET_SERVED) == 0


async def test_replay_after_the_tenant_is_served_applies_it_exactly_once(scenario: Scenario,
                                                                          infra):
    stranded, sent, _ = scenario.dead_letter_of("tenant not served")
    event_id = stranded.record.headers["ce_id"]
    prefix = scenario.settings.topic_prefix
    service = scenario.service
    served = service.settings(infra, prefix, [SERVED, NOT_YET_SERVED])

    async def replay() -> str:
        return await asyncio.to_thread(coachctl, infra, prefix, "dlq", "replay", service.name,
                                       "--id", event_id)

    async with running_service(service.create_app, served):
        assert "replayed 1 of" in await replay()
        await eventually(lambda: scenario.effect_is(NOT_YET_SERVED, service.effect_documents))
        await replay()
        await eventually(lambda: consumed_to_end(infra.kafka_bootstrap_servers,
                                                 served.consumer_group, sent.topic))
        assert await scenario.times_applied(NOT_YET_SERVED, event_id) == [
            1] * service.effect_documents

    listing = [json.loads(line) for line in (await asyncio.to_thread(
        coachctl, infra, prefix, "dlq", "list", service.name, "--json")).splitlines()]
    # Served now, the replays were applied, not dead-lettered again.
    assert [entry["event_id"] for entry in listing].count(event_id) == 1
    assert len(listing) == len(scenario.poisons)
