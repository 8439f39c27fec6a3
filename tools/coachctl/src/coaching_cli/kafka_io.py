"""Reading topics to their current end and publishing events, as an outside client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from coaching_shared.events import EventMessage


def headers_of(record: ConsumerRecord) -> dict[str, str]:
    return {name: (value or b"").decode("utf-8", "replace")
            for name, value in (record.headers or ())}


async def read_to_end(bootstrap: str, topics: Iterable[str]) -> AsyncIterator[ConsumerRecord]:
    """Every record now in the topics, oldest first per partition; missing topics are empty."""
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await probe.start()
    try:
        existing = sorted(set(topics) & await probe.topics())
    finally:
        await probe.stop()
    if not existing:
        return
    consumer = AIOKafkaConsumer(*existing, bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        # Without a group every partition is ours, once metadata arrived; aiokafka offers
        # no event to await for that.
        while not consumer.assignment():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        partitions = sorted(consumer.assignment())
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp, end in ends.items() if end > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    yield record
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()


async def follow(bootstrap: str, topics: Sequence[str], from_beginning: bool,
                 ) -> AsyncIterator[ConsumerRecord]:
    """Records as they arrive (optionally from the beginning), until cancelled."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False,
                                auto_offset_reset="earliest" if from_beginning else "latest")
    await consumer.start()
    try:
        async for record in consumer:
            yield record
    finally:
        await consumer.stop()


class Publisher:
    """An idempotent producer for events and raw records."""

    def __init__(self, bootstrap: str) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)

    async def __aenter__(self) -> Publisher:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def send_events(self, messages: Sequence[EventMessage], prefix: str) -> None:
        futures = [await self._producer.send(
            m.topic(prefix), m.body(), key=m.key(),
            headers=[(n, v.encode()) for n, v in m.headers().items()]) for m in messages]
        await asyncio.gather(*futures)

    async def send_raw(self, topic: str, value: bytes | None, key: bytes | None,
                       headers: dict[str, str]) -> None:
        await self._producer.send_and_wait(topic, value, key=key,
                                           headers=[(n, v.encode()) for n, v in headers.items()])
