"""Reading the platform's state from outside: topics, consumer lag, pending work in MongoDB."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from coaching_shared.events import EventMessage
from pymongo import AsyncMongoClient

from chaos.cluster import SERVICES

OUTBOX_DATABASES = tuple(f"coaching_{service}" for service in SERVICES)


@dataclass(frozen=True)
class TopicRecord:
    topic: str
    partition: int
    offset: int
    headers: dict[str, str]
    key: bytes | None
    value: bytes | None

    def message(self) -> EventMessage | None:
        """The event, or None for a record that is not a CloudEvent of ours."""
        try:
            return EventMessage.from_kafka(self.headers, self.value,
                                           self.topic.removeprefix("coaching."))
        except ValueError:
            return None


async def read_topics(bootstrap: str) -> list[TopicRecord]:
    """Every record of every coaching topic, from the beginning to the current end."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = sorted(t for t in await admin.list_topics() if t.startswith("coaching."))
        partitions = [TopicPartition(found["topic"], partition["partition"])
                      for found in await admin.describe_topics(topics)
                      for partition in found["partitions"]]
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[TopicRecord] = []
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, found in batch.items():
                for record in found:
                    records.append(TopicRecord(
                        record.topic, record.partition, record.offset,
                        {n: (v or b"").decode("utf-8", "replace") for n, v in record.headers},
                        record.key, record.value))
                if found and found[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return records
    finally:
        await consumer.stop()


async def consumer_lag(bootstrap: str) -> dict[str, int]:
    """Per service consumer group: messages not yet committed."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        lag = {}
        for service in SERVICES:
            committed = await admin.list_consumer_group_offsets(f"coaching-{service}")
            ends = await consumer.end_offsets(list(committed)) if committed else {}
            lag[service] = sum(max(0, ends[tp] - meta.offset) for tp, meta in committed.items())
        return lag
    finally:
        await consumer.stop()
        await admin.close()


async def unfinished_work(mongodb_url: str) -> dict[str, object]:
    """Outbox entries not yet relayed and deliveries not yet sent, per database."""
    client = AsyncMongoClient(mongodb_url, tz_aware=True, serverSelectionTimeoutMS=3000)
    try:
        found = {}
        for name in OUTBOX_DATABASES:
            db = client[name]
            for collection in await db.list_collection_names():
                count = await db[collection].count_documents({"outbox_pending": True})
                if count:
                    found[f"{name}.{collection} outbox"] = count
        pending = await client["coaching_notifier"]["deliveries"].find(
            {"status": {"$in": ["pending", "sending"]}},
            {"_id": 0, "event_type": 1, "channel": 1, "status": 1, "attempts": 1,
             "due_at": 1, "attempt_log": 1}).to_list()
        if pending:
            found["deliveries pending"] = len(pending)
            found["first pending"] = pending[0]
        return found
    finally:
        await client.close()


async def settle(bootstrap: str, mongodb_url: str, within: float, quiet: float = 6.0,
                 ) -> None:
    """Wait until no consumer lags, no outbox holds entries and no delivery is pending, and
    that stays so for `quiet` seconds (work that is still on its way would show by then)."""
    deadline = time.monotonic() + within
    calm_since: float | None = None
    last: object = None
    while True:
        try:
            lag = await consumer_lag(bootstrap)
            work = await unfinished_work(mongodb_url)
            last = (lag, work)
            busy = any(lag.values()) or bool(work)
        except Exception as error:  # a server still coming back: look again
            last, busy = repr(error), True
        now = time.monotonic()
        if busy:
            calm_since = None
        elif calm_since is None:
            calm_since = now
        elif now - calm_since >= quiet:
            return
        if now > deadline:
            raise AssertionError(f"the platform did not settle within {within:.0f}s: {last}")
        await asyncio.sleep(1.0)
