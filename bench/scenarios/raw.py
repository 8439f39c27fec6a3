"""The raw limits: aiokafka and PyMongo as fast as they go, and a hand-written pipeline.

These are ceilings, not services: no idempotency ledger, no outbox, no membership, no retries.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from coaching_shared.events import EventMessage
from pymongo import AsyncMongoClient
from pymongo.errors import BulkWriteError

from bench.context import Bench
from bench.measure import RAW_PIPELINE, Result, Window
from bench.progress import create_topics, raise_failure, watch_consumer
from bench.workload import PARTITIONS, encode, input_topic, outgoing_suggestion

PRODUCER_OPTIONS: dict[str, Any] = {"enable_idempotence": True, "acks": "all",
                                    "linger_ms": 5, "max_batch_size": 512 * 1024}
BULK_BATCH = 500
PIPELINE_BATCH = 500
DUPLICATE_KEY = 11000


def producer(bench: Bench) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bench.bootstrap, **PRODUCER_OPTIONS)


async def produce(bench: Bench) -> Result:
    """Fill the input topic: every event sent without waiting, then all acknowledgements."""
    topic = input_topic(bench.prefix)
    warmup_topic = bench.topic("warmup")
    await create_topics(bench.bootstrap, [topic, warmup_topic], PARTITIONS)
    kafka = producer(bench)
    await kafka.start()
    try:
        # Warm-up on another topic: connections, metadata, producer id.
        await asyncio.gather(*[await kafka.send(warmup_topic, item.value, key=item.key,
                                                headers=item.headers)
                               for item in bench.encoded[:500]])
        started = time.perf_counter()
        pending = [await kafka.send(topic, item.value, key=item.key, headers=item.headers)
                   for item in bench.encoded]
        await asyncio.gather(*pending)
        seconds = time.perf_counter() - started
    finally:
        await kafka.stop()
    return Result.of("aiokafka produce", Window(bench.total, seconds),
                     note="pre-encoded, idempotent, acks=all", **PRODUCER_OPTIONS)


async def consume(bench: Bench) -> Result:
    """Read the input topic back, outside any group; timed from the first batch on."""
    consumer = AIOKafkaConsumer(input_topic(bench.prefix), bootstrap_servers=bench.bootstrap,
                                group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        first = await _read_some(consumer)
        started = time.perf_counter()
        seen = first
        while seen < bench.total:
            seen += await _read_some(consumer)
        seconds = time.perf_counter() - started
    finally:
        await consumer.stop()
    return Result.of("aiokafka consume", Window(bench.total - first, seconds),
                     note="records only, first batch excluded")


async def _read_some(consumer: AIOKafkaConsumer) -> int:
    batches = await consumer.getmany(timeout_ms=1000, max_records=PIPELINE_BATCH)
    return sum(len(records) for records in batches.values())


def stored(message: EventMessage) -> dict[str, Any]:
    """The document the raw writers store for an event (its envelope, keyed by event id)."""
    return {"_id": message.id, "tenant_id": message.tenant, "client_id": message.subject,
            **message.to_document()}


async def _fresh_collection(client: AsyncMongoClient, bench: Bench, scenario: str):
    collection = client[bench.database(scenario)]["events"]
    await collection.create_index([("tenant_id", 1), ("client_id", 1)])
    await collection.insert_one({"_id": "warm-up", "tenant_id": "-", "client_id": "-"})
    return collection


async def _timed_writes(bench: Bench, scenario: str, write) -> float:
    """Seconds `write(collection, documents)` takes for every event into a fresh collection."""
    client = AsyncMongoClient(bench.mongodb_url, tz_aware=True)
    try:
        collection = await _fresh_collection(client, bench, scenario)
        documents = [stored(message) for message in bench.messages]
        started = time.perf_counter()
        await write(collection, documents)
        return time.perf_counter() - started
    finally:
        await client.close()


async def insert_one(bench: Bench) -> Result:
    """One awaited insert_one per event (the driver's per-document round trip)."""
    async def one_by_one(collection, documents) -> None:
        for document in documents:
            await collection.insert_one(document)

    seconds = await _timed_writes(bench, "raw_insert_one", one_by_one)
    return Result.of("PyMongo insert_one", Window(bench.total, seconds),
                     note="awaited one by one")


async def insert_many(bench: Bench) -> Result:
    """insert_many(ordered=False) in batches of 500 (FerretDB mishandles bulk_write upserts)."""
    async def in_batches(collection, documents) -> None:
        for start in range(0, len(documents), BULK_BATCH):
            await collection.insert_many(documents[start:start + BULK_BATCH], ordered=False)

    seconds = await _timed_writes(bench, "raw_insert_many", in_batches)
    return Result.of(f"PyMongo insert_many x{BULK_BATCH}", Window(bench.total, seconds),
                     note="unordered batches")


async def pipeline(bench: Bench) -> Result:
    """The ceiling for a service: read a batch, store it, emit one event per input, commit."""
    group = f"{bench.prefix}bench-raw-pipeline"
    out_topic = bench.topic("raw-pipeline.out")
    await create_topics(bench.bootstrap, [out_topic], PARTITIONS)
    client = AsyncMongoClient(bench.mongodb_url, tz_aware=True)
    collection = await _fresh_collection(client, bench, "raw_pipeline")
    kafka = producer(bench)
    consumer = AIOKafkaConsumer(input_topic(bench.prefix), bootstrap_servers=bench.bootstrap,
                                group_id=group, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await kafka.start()
    await consumer.start()
    stream = dict.fromkeys([input_topic(bench.prefix)], "assessment")

    async def work() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=PIPELINE_BATCH)
            records = [record for batch in batches.values() for record in batch]
            if not records:
                continue
            messages = [EventMessage.from_kafka(
                {name: value.decode() for name, value in record.headers},
                record.value, stream[record.topic]) for record in records]
            try:
                await collection.insert_many([stored(m) for m in messages], ordered=False)
            except BulkWriteError as error:  # a redelivered batch: its events are stored
                if any(e["code"] != DUPLICATE_KEY for e in error.details["writeErrors"]):
                    raise
            pending = []
            for message in messages:
                item = encode(outgoing_suggestion(message))
                pending.append(await kafka.send(out_topic, item.value, key=item.key,
                                                headers=item.headers))
            await asyncio.gather(*pending)
            await consumer.commit()

    worker = asyncio.create_task(work())
    try:
        window = await watch_consumer(bench, group, worker)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        raise_failure(worker)
        await consumer.stop()
        await kafka.stop()
        await client.close()
    return Result.of(RAW_PIPELINE, window, note=f"getmany ≤{PIPELINE_BATCH}, insert_many, "
                     "1 event out per input, commit per batch")

