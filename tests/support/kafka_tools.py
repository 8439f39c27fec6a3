"""Talking to Kafka as an outside client would: raw aiokafka, no project plumbing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
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


async def publish_raw(bootstrap: str, topic: str, value: bytes | None, key: bytes | None,
                      headers: dict[str, str]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key,
                                     headers=[(n, v.encode()) for n, v in headers.items()])
    finally:
        await producer.stop()


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
