"""Talking to Kafka as an outside client would: raw aiokafka, no project plumbing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import RecordMetadata
from coaching_shared.events import Event, EventMessage


async def publish_events(bootstrap: str, prefix: str, events: Sequence[Event], *,
                         source: str = "/hris/test", ids: Sequence[str] | None = None,
                         ) -> list[EventMessage]:
    """Publish events as an integrator would (e.g. the HRIS), in binary mode."""
    messages = [EventMessage.wrap(event, source, event_id=ids[i] if ids else None)
                for i, event in enumerate(events)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for message in messages:
            await producer.send_and_wait(
                message.topic(prefix), message.body(), key=message.key(),
                headers=[(name, value.encode()) for name, value in message.headers().items()])
    finally:
        await producer.stop()
    return messages


@dataclass(frozen=True)
class RawRecord:
    """A Kafka record exactly as it is to be sent, whatever it holds."""

    topic: str
    value: bytes | None
    key: bytes | None
    headers: dict[str, str]


async def publish_records(bootstrap: str, records: Sequence[RawRecord]) -> list[RecordMetadata]:
    """Send records as they are, in order, through one producer; where each one landed."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        return [await producer.send_and_wait(
                    record.topic, record.value, key=record.key,
                    headers=[(n, v.encode()) for n, v in record.headers.items()])
                for record in records]
    finally:
        await producer.stop()


async def publish_raw(bootstrap: str, topic: str, value: bytes | None, key: bytes | None,
                      headers: dict[str, str]) -> RecordMetadata:
    return (await publish_records(bootstrap, [RawRecord(topic, value, key, headers)]))[0]


async def consumed_to_end(bootstrap: str, group: str, topic: str) -> bool:
    """Whether the consumer group has committed every partition of the topic to its end."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await admin.start()
    await probe.start()
    try:
        await probe.topics()  # fresh metadata: the partitions of every topic
        partitions = [TopicPartition(topic, p) for p in probe.partitions_for_topic(topic) or ()]
        ends = await probe.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
    finally:
        await probe.stop()
        await admin.close()
    return all(end == 0 or (tp in committed and committed[tp].offset >= end)
               for tp, end in ends.items())


def headers_of(record: ConsumerRecord) -> dict[str, str]:
    return {name: value.decode() for name, value in (record.headers or ())}


class TopicReader:
    """Reads topics from the beginning, outside any consumer group."""

    def __init__(self, bootstrap: str, *topics: str) -> None:
        self._consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap,
                                          auto_offset_reset="earliest", group_id=None,
                                          enable_auto_commit=False)
        self.records: list[ConsumerRecord] = []

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def until(self, done: Callable[[list[ConsumerRecord]], bool],
                    timeout: float = 30) -> list[ConsumerRecord]:
        """Read until done(records) holds; fail with what was read after timeout seconds."""
        deadline = time.monotonic() + timeout
        while not done(self.records):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s; read {len(self.records)} "
                                     f"record(s): {[headers_of(r) for r in self.records][:10]}")
            batch = await self._consumer.getmany(timeout_ms=200)
            for records in batch.values():
                self.records.extend(records)
        return self.records

    async def settle(self, seconds: float) -> list[ConsumerRecord]:
        """Keep reading for a while (to see that nothing more arrives)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            batch = await self._consumer.getmany(timeout_ms=200)
            for records in batch.values():
                self.records.extend(records)
        return self.records


async def eventually(check: Callable[[], object], timeout: float = 30,
                     interval: float = 0.2) -> object:
    """Await an async check until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()  # type: ignore[misc]
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(interval)
