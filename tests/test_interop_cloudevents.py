"""Clients we did not write read our events: the official CloudEvents Python SDK.

One example of every event type is published the way every service publishes (shared
EventPublisher through the FastStream broker), read back from the real broker with plain
aiokafka, and parsed by the SDK's Kafka binary-mode binding.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat
from coaching_shared.contracts.examples import EXAMPLES
from coaching_shared.events import EventMessage, event_class
from coaching_shared.messaging import EventPublisher, create_broker
from coaching_shared.settings import ServiceSettings
from support.kafka_tools import TopicReader

pytestmark = pytest.mark.integration
MOMENT = datetime(2026, 11, 27, 10, 15, 30, 250000, tzinfo=UTC)


async def test_cloudevents_sdk_reads_every_event_type_in_binary_mode(infra, prefix):
    sent = [EventMessage.wrap(event, f"/coaching/{event.stream}", event_id=f"evt-{n}",
                              time=MOMENT) for n, event in enumerate(EXAMPLES)]
    settings = ServiceSettings(service_name="interop", topic_prefix=prefix,
                               kafka_bootstrap_servers=infra.kafka_bootstrap_servers)
    broker = create_broker(settings)
    await broker.start()
    try:
        await EventPublisher(broker, prefix).publish(sent)
    finally:
        await broker.stop()

    topics = sorted({message.topic(prefix) for message in sent})
    async with TopicReader(infra.kafka_bootstrap_servers, *topics) as reader:
        records = await reader.until(lambda r: len(r) >= len(sent))
    by_id = {message.id: message for message in sent}
    assert len(records) == len(sent)
    for record in records:
        event = from_binary(KafkaMessage(headers=dict(record.headers), key=record.key,
                                         value=record.value), JSONFormat())
        original = by_id[event.get_id()]
        assert event.get_source() == original.source
        assert event.get_type() == original.type
        assert event.get_specversion() == "1.0"
        assert event.get_time() == MOMENT
        assert event.get_subject() == original.subject == "client-0042"
        assert event.get_extension("tenant") == "acme"
        assert event.get_extension("partitionkey") == original.subject
        assert event.get_datacontenttype() == "application/json"
        model = event_class(event.get_type())
        assert model.model_validate(event.get_data()) == model.model_validate(original.data)


def test_every_platform_event_type_has_an_example():
    from coaching_shared.schemas import platform_events

    assert {type(event).ce_type() for event in EXAMPLES} == set(platform_events())
