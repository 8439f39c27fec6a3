"""Clients we did not write read our events: the official CloudEvents Python SDK.

The event is published the way every service publishes (shared EventPublisher through the
FastStream broker), read back from the real broker with plain aiokafka, and parsed by the
SDK's Kafka binary-mode binding.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat
from coaching_shared.contracts import GoalSet, KpiSpec
from coaching_shared.events import EventMessage
from coaching_shared.messaging import EventPublisher, create_broker
from coaching_shared.settings import ServiceSettings
from support.kafka_tools import TopicReader

pytestmark = pytest.mark.integration


async def test_cloudevents_sdk_reads_our_binary_mode_messages(infra, prefix):
    goal_set = GoalSet(
        tenant_id="acme", client_id="c-42", goal_id="g-1", title="Lead the weekly stand-up",
        start_date=datetime(2026, 12, 1).date(), due_date=datetime(2027, 3, 1).date(),
        kpis=[KpiSpec(kpi_id="k-1", name="stand-ups led", unit="count", baseline=0, target=10,
                      direction="up")])
    sent = EventMessage.wrap(goal_set, "/coaching/goals", event_id="evt-interop-1",
                             time=datetime(2026, 11, 27, 10, 15, 30, 250000, tzinfo=UTC))
    settings = ServiceSettings(service_name="interop", topic_prefix=prefix,
                               kafka_bootstrap_servers=infra.kafka_bootstrap_servers)
    broker = create_broker(settings)
    await broker.start()
    try:
        await EventPublisher(broker, prefix).publish([sent])
    finally:
        await broker.stop()

    async with TopicReader(infra.kafka_bootstrap_servers, sent.topic(prefix)) as reader:
        records = await reader.until(lambda r: len(r) >= 1)
    record = records[0]
    event = from_binary(KafkaMessage(headers=dict(record.headers), key=record.key,
                                     value=record.value), JSONFormat())

    assert event.get_id() == "evt-interop-1"
    assert event.get_source() == "/coaching/goals"
    assert event.get_type() == "coaching.GoalSet.v1"
    assert event.get_specversion() == "1.0"
    assert event.get_time() == datetime(2026, 11, 27, 10, 15, 30, 250000, tzinfo=UTC)
    assert event.get_subject() == "c-42"
    assert event.get_extension("tenant") == "acme"
    assert event.get_extension("partitionkey") == "c-42"
    assert event.get_datacontenttype() == "application/json"
    assert event.get_data()["goal_id"] == "g-1"
    assert GoalSet.model_validate(event.get_data()) == goal_set
