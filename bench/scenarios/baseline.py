"""What a team would write with FastStream by the book: one subscriber, and per event one
awaited insert_one and one awaited publish; the message is acknowledged after the handler."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from coaching_shared.events import EventMessage
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from pymongo import AsyncMongoClient

from bench.context import Bench
from bench.measure import BASELINE, Result
from bench.progress import create_topics, raise_failure, watch_consumer
from bench.workload import PARTITIONS, input_topic, outgoing_suggestion

# FastStream logs every message at INFO by default; the baseline runs without that noise,
# so what it measures is the consume/insert/publish path, not console output.
_QUIET = logging.getLogger("bench.baseline")
_QUIET.setLevel(logging.WARNING)


async def by_the_book(bench: Bench) -> Result:
    group = f"{bench.prefix}bench-baseline"
    topic = input_topic(bench.prefix)
    out_topic = bench.topic("baseline.out")
    await create_topics(bench.bootstrap, [out_topic], PARTITIONS)
    client = AsyncMongoClient(bench.mongodb_url, tz_aware=True)
    collection = client[bench.database("baseline")]["events"]
    await collection.create_index([("tenant_id", 1), ("client_id", 1)])
    broker = KafkaBroker(bench.bootstrap, enable_idempotence=True, acks="all", logger=_QUIET)

    @broker.subscriber(topic, group_id=group, auto_offset_reset="earliest",
                       ack_policy=AckPolicy.ACK)
    async def handle(body: dict[str, Any], message: KafkaMessage) -> None:
        event = EventMessage.from_kafka(message.headers, message.body, "assessment")
        await collection.insert_one({"_id": event.id, "tenant_id": event.tenant,
                                     "client_id": event.subject, **event.to_document()})
        out = outgoing_suggestion(event)
        await broker.publish(out.data, topic=out_topic, key=out.key(), headers=out.headers())

    stopped = asyncio.Event()

    async def run() -> None:
        await broker.start()
        await stopped.wait()

    task = asyncio.create_task(run())
    try:
        window = await watch_consumer(bench, group, task)
    finally:
        stopped.set()
        await asyncio.gather(task, return_exceptions=True)
        raise_failure(task)
        await broker.stop()
        await client.close()
    return Result.of(BASELINE, window, note="1 subscriber, awaited insert_one + publish, "
                     "ack after handling")
