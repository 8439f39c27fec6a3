"""A tiny service built from the shared plumbing, to test the delivery rules on real Kafka.

Its one event type, `TallyRecorded`, counts into a `tallies` document per client through
`apply_once`, so a double application would show as a count of 2.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from coaching_shared.events import Event, EventMessage
from coaching_shared.membership import Membership
from coaching_shared.messaging import (
    BatchHandler,
    EventConsumer,
    EventContext,
    EventPublisher,
    create_broker,
)
from coaching_shared.mongo import IndexSpec, ensure_indexes
from coaching_shared.settings import ServiceSettings
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

TALLIES = "tallies"
TALLY_INDEX = IndexSpec(TALLIES, [("tenant_id", 1), ("client_id", 1)], unique=True)


class TallyRecorded(Event):
    """Test-only event: add `amount` to the client's tally."""

    type_name = "TallyRecorded"
    stream = "probe"

    amount: int = 1


def probe_settings(bootstrap: str, mongodb_url: str, prefix: str, database: str,
                   **overrides: Any) -> ServiceSettings:
    values = {"service_name": "probe", "kafka_bootstrap_servers": bootstrap,
              "mongodb_url": mongodb_url, "mongodb_database": database, "topic_prefix": prefix,
              "retry_backoff_seconds": 0.05, "retry_backoff_max_seconds": 0.2, **overrides}
    return ServiceSettings(**values)


def tally(event: TallyRecorded) -> EventMessage:
    return EventMessage.wrap(event, "/tests/probe")


@asynccontextmanager
async def running_consumer(settings: ServiceSettings,
                           handler: Callable[[TallyRecorded, EventContext], Awaitable[None]],
                           batch: BatchHandler | None = None,
                           ) -> AsyncIterator[tuple[EventConsumer, KafkaBroker]]:
    """A started broker whose service consumer routes TallyRecorded to handler."""
    broker = create_broker(settings)
    publisher = EventPublisher(broker, settings.topic_prefix)
    client = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    db = client[settings.database_name]
    consumer = EventConsumer(settings, publisher, Membership(db, [TALLIES]))
    consumer.on(TallyRecorded, handler, batch=batch)
    consumer.subscribe(broker)
    await ensure_indexes(db, [TALLY_INDEX])
    await broker.start()
    try:
        yield consumer, broker
    finally:
        await broker.stop()
        await client.close()


async def wait_assigned(consumer: EventConsumer, timeout: float = 30) -> None:
    """Wait until the group has given the consumer its partitions."""
    for _ in range(int(timeout / 0.1)):
        kafka_consumer = getattr(consumer.subscriber, "consumer", None)
        if kafka_consumer is not None and kafka_consumer.assignment():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("consumer got no partitions")
