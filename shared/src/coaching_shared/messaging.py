"""Kafka plumbing: the broker, the event publisher and the event consumer every service uses.

Delivery rules (see README, "Event rules"):
- producers are idempotent with `acks=all`;
- a service has one consumer group and acknowledges (commits) a message only after its
  handler's effects are stored; FastStream's Kafka default would commit first;
- a handler that raises is retried with exponential backoff, then the message goes to the
  service's dead-letter topic with the reason in headers, and consumption carries on;
- infrastructure outages (database or broker unreachable) are waited out, never dead-lettered;
- a message that can never be processed (not a CloudEvent, invalid data) is dead-lettered at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.exceptions import IncorrectState
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pymongo.errors import ConnectionFailure, OperationFailure, WriteConcernError

from coaching_shared.events import (
    BadEvent,
    Event,
    EventMessage,
    dead_letter_topic,
    event_class,
    topic_name,
    unknown_type_reason,
    utc_now,
)
from coaching_shared.membership import Admission, Membership
from coaching_shared.observability import METRICS, event_log_context
from coaching_shared.settings import ServiceSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

# Outages of the infrastructure: wait and retry for as long as it takes.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ConnectionFailure, WriteConcernError,
                                                       KafkaError)


def is_transient(error: BaseException) -> bool:
    """Whether an error is an outage to wait out, not a fault of the event or the code.

    Besides lost connections and a broker not connected yet: writes the server asks to
    retry, and FerretDB's SQLite backend answering "database is locked" while another
    writer holds it.
    """
    if isinstance(error, TRANSIENT_ERRORS):
        return True
    if isinstance(error, IncorrectState):  # the broker is not connected (yet, or again)
        return True
    return isinstance(error, OperationFailure) and (
        error.has_error_label("RetryableWriteError") or "SQLITE_BUSY" in str(error))


async def background_round(what: str, work: Callable[[], Awaitable[T]]) -> T | None:
    """One round of a background loop (sweep, scheduler, dispatcher) that must outlive its
    errors: an outage is logged as a wait, anything else with its traceback; None then."""
    try:
        return await work()
    except Exception as error:
        if is_transient(error):
            log.warning("%s waiting for infrastructure: %s", what, type(error).__name__)
        else:
            log.exception("%s failed", what)
        return None


DLQ_HEADERS = ("dlq_reason", "dlq_error_type", "dlq_service", "dlq_original_topic",
               "dlq_original_partition", "dlq_original_offset", "dlq_attempts", "dlq_failed_at")


def create_broker(settings: ServiceSettings) -> KafkaBroker:
    """A FastStream Kafka broker whose producer is idempotent and waits for all replicas."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=f"coaching-{settings.service_name}",
        enable_idempotence=True,
        acks="all",
        request_timeout_ms=30_000,
        logger=logging.getLogger(f"coaching.{settings.service_name}.kafka"),
    )


class EventPublisher:
    """Publishes enveloped events in Kafka binary mode, keyed by client id."""

    def __init__(self, broker: KafkaBroker, topic_prefix: str = "") -> None:
        self._broker = broker
        self._prefix = topic_prefix

    async def publish(self, messages: Sequence[EventMessage]) -> None:
        """Send messages in order and return once the broker has acknowledged all of them."""
        pending = []
        for message in messages:
            # no_confirm hands back the delivery future: messages are pipelined, order kept.
            pending.append(await self._broker.publish(
                message.body(), topic=message.topic(self._prefix), key=message.key(),
                headers=message.headers(), correlation_id=message.id, no_confirm=True))
        if pending:
            await asyncio.gather(*pending)
        for message in messages:
            METRICS.events_out.labels(type=message.type).inc()

    async def publish_raw(self, topic: str, value: bytes | None, key: bytes | None,
                          headers: dict[str, str]) -> None:
        """Send one message as it is (dead letters, replays)."""
        await self._broker.publish(value, topic=topic, key=key, headers=headers,
                                   correlation_id=headers.get("ce_id"))


@dataclass(frozen=True, slots=True)
class EventContext:
    """What a handler may know about the message besides the event data."""

    message: EventMessage
    topic: str
    partition: int
    offset: int


Handler = Callable[[Any, EventContext], Awaitable[None]]
# Applies many events of one type, each of another client, as `Handler` would one by one.
BatchHandler = Callable[[Sequence[tuple[Any, EventContext]]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Route:
    model: type[Event]
    handler: Handler
    batch: BatchHandler | None = None


@dataclass(frozen=True, slots=True)
class _Item:
    """A consumed record that passed the checks, with its route and parsed event."""

    record: ConsumerRecord
    headers: dict[str, str]
    route: _Route
    event: Event
    context: EventContext


class EventConsumer:
    """Dispatches a service's consumed events to its handlers with the delivery rules above.

    Register handlers with `on(EventModel, handler)`, then `subscribe(broker)` once: the
    service gets one FastStream subscriber over every topic its handlers need, in its own
    consumer group. Event types nobody registered are skipped (another service's business).
    """

    def __init__(self, settings: ServiceSettings, publisher: EventPublisher,
                 membership: Membership | None = None,
                 batch_scope: Callable[[], AbstractAsyncContextManager[None]] | None = None
                 ) -> None:
        self._settings = settings
        self._publisher = publisher
        self._membership = membership
        # Entered around each batch, e.g. to relay the batch's outbox entries together.
        self._batch_scope = batch_scope or nullcontext
        self._routes: dict[str, _Route] = {}
        self._stream_of_topic: dict[str, str] = {}
        self.subscriber: Any = None

    def on(self, model: type[Event], handler: Handler, batch: BatchHandler | None = None
           ) -> None:
        """Handle events of this type (one handler per type).

        `batch`, if given, applies the events of this type of a whole wave (see
        `handle_batch`) together, with the same effects as `handler` on each: bulk reads and
        writes instead of a few round trips per event. If it fails, the wave's events of
        this type are handled one by one by `handler`, so a bad event is dead-lettered alone.
        """
        if model.ce_type() in self._routes:
            raise ValueError(f"{model.ce_type()} already has a handler")
        self._routes[model.ce_type()] = _Route(model, handler, batch)
        self._stream_of_topic[topic_name(model.stream, self._settings.topic_prefix)] = model.stream

    @property
    def topics(self) -> list[str]:
        return sorted(self._stream_of_topic)

    @property
    def handled_types(self) -> list[str]:
        return sorted(self._routes)

    def models_by_topic(self) -> dict[str, list[type[Event]]]:
        """The event models each consumed topic is read for (for the AsyncAPI document)."""
        by_topic: dict[str, list[type[Event]]] = {}
        for ce_type in sorted(self._routes):
            model = self._routes[ce_type].model
            by_topic.setdefault(topic_name(model.stream, self._settings.topic_prefix),
                                []).append(model)
        return by_topic

    @property
    def dead_letter_topic(self) -> str:
        return dead_letter_topic(self._settings.service_name, self._settings.topic_prefix)

    def subscribe(self, broker: KafkaBroker) -> None:
        """Create the service's FastStream subscriber (call before the broker starts)."""
        if not self._routes:
            return
        settings = self._settings

        async def consume(message: KafkaMessage) -> None:
            await self.handle_batch(message.raw_message)

        async def undecoded(message: KafkaMessage) -> list[bytes]:
            # We validate bodies ourselves: a malformed one must reach the dead letters,
            # not fail inside FastStream's JSON decoding.
            return message.body

        self.subscriber = broker.subscriber(
            *self.topics,
            group_id=settings.consumer_group,
            auto_offset_reset="earliest",
            batch=True,
            max_records=settings.consume_batch_size,
            # Commit only after handle_batch returned; on an escaped error, seek back.
            ack_policy=AckPolicy.NACK_ON_ERROR,
            parser=_tolerant_parser,
            decoder=undecoded,
            # A handler may wait out a long outage; keep the group membership meanwhile.
            max_poll_interval_ms=30 * 60 * 1000,
            title=f"{settings.service_name} consumer",
            description="Consumes: " + ", ".join(self.handled_types),
        )
        self.subscriber(consume)

    async def handle_batch(self, records: Sequence[ConsumerRecord]) -> None:
        """Process a fetched batch to its end; the caller acknowledges it afterwards.

        Each client's records (one Kafka key) are handled one after another in the order they
        were fetched, so no two events of a client race for the same documents. The batch
        goes in waves: the first record of every client, then the second, and so on; within
        a wave every record is another client's, so events of a type with a batch handler
        are applied together and the others concurrently. Each wave runs in the batch scope
        (its outgoing events are published together when it ends), so a client's outgoing
        events leave in the order of its incoming ones, and all before this returns and the
        batch is acknowledged. If anything escapes, the rest of the batch is cancelled and
        the whole batch is fetched again (handlers apply each event once).
        """
        by_client: dict[bytes | None, list[ConsumerRecord]] = {}
        for record in records:
            by_client.setdefault(record.key, []).append(record)
        for wave in itertools.zip_longest(*by_client.values()):
            async with self._batch_scope():
                await self._handle_wave([record for record in wave if record is not None])

    async def _handle_wave(self, records: Sequence[ConsumerRecord]) -> None:
        """Handle records of distinct clients: batch routes together, the others each alone."""
        items = [item for item in [await self._read(record) for record in records] if item]
        together: dict[str, list[_Item]] = {}
        alone: list[_Item] = []
        for item in items:
            if item.route.batch is not None and len(items) > 1:
                together.setdefault(item.context.message.type, []).append(item)
            else:
                alone.append(item)
        for group in together.values():
            await self._run_together(group)
        slots = asyncio.Semaphore(self._settings.consume_concurrency)

        async def handle_alone(item: _Item) -> None:
            async with slots:
                await self._run_with_retries(item)

        async with asyncio.TaskGroup() as tasks:
            for item in alone:
                tasks.create_task(handle_alone(item))

    async def _read(self, record: ConsumerRecord) -> _Item | None:
        """The record's parsed event and route; None once it is dead-lettered or skipped."""
        headers = {name: (value or b"").decode("utf-8", "replace")
                   for name, value in (record.headers or ())}
        stream = self._stream_of_topic.get(record.topic, record.topic)
        try:
            message = self._admissible(record, headers, stream)
        except BadEvent as error:
            await self._dead_letter(record, headers, error, attempts=0)
            return None
        route = self._routes.get(message.type)
        if route is None:
            METRICS.events_in.labels(type=message.type, outcome="skipped").inc()
            return None
        with event_log_context(message.id, message.type):
            try:
                event = message.parse(route.model)
            except BadEvent as error:
                await self._dead_letter(record, headers, error, attempts=0)
                return None
        context = EventContext(message, record.topic, record.partition, record.offset)
        return _Item(record, headers, route, event, context)

    def _admissible(self, record: ConsumerRecord, headers: dict[str, str],
                    stream: str) -> EventMessage:
        """Read the envelope of a record that may be processed; BadEvent says why not.

        Events of other services' types on a shared stream are admissible (and skipped);
        types that no service knows, unknown versions, events on a stream not theirs,
        oversized bodies and tenants this deployment does not serve are not.
        """
        size = len(record.value or b"")
        if size > self._settings.max_event_bytes:
            raise BadEvent(f"body of {size} bytes exceeds the limit of "
                           f"{self._settings.max_event_bytes} bytes")
        message = EventMessage.from_kafka(headers, record.value, stream)
        reason = unknown_type_reason(message.type)
        if reason is not None:
            raise BadEvent(reason)
        home = event_class(message.type).stream
        if home != stream:
            raise BadEvent(f"{message.type} travels on the {home!r} stream, "
                           f"not on {record.topic}")
        tenants = self._settings.tenants
        if tenants and not message.tenant:
            raise BadEvent("missing ce_tenant header; this deployment serves named tenants only")
        if tenants and message.tenant not in tenants:
            raise BadEvent(f"tenant {message.tenant!r} is not served by this deployment")
        return message

    async def _run_together(self, items: Sequence[_Item]) -> None:
        """Admit and apply events of one type (distinct clients) with its batch handler.

        Outages are waited out like a single event's; any other failure hands the events to
        the one-by-one path, whose retries and dead letters then decide about each.
        """
        route = items[0].route
        assert route.batch is not None
        ce_type = items[0].context.message.type
        outages = 0
        while True:
            started = time.perf_counter()
            try:
                admitted = await self._admit_all(items)
                if admitted:
                    await route.batch([(item.event, item.context) for item in admitted])
            except Exception as error:
                if is_transient(error):
                    outages += 1
                    delay = self._backoff(outages)
                    log.warning("infrastructure unavailable, retrying %d %s in %.1fs: %s",
                                len(items), ce_type, delay, type(error).__name__)
                    METRICS.handler_retries.labels(type=ce_type, kind="outage").inc()
                    await asyncio.sleep(delay)
                    continue
                log.warning("batch of %d %s failed, handling them one by one: %r",
                            len(items), ce_type, error)
                METRICS.handler_retries.labels(type=ce_type, kind="batch").inc()
                for item in items:
                    await self._run_with_retries(item)
                return
            elapsed = time.perf_counter() - started
            handled = {id(item) for item in admitted}
            for item in items:
                METRICS.handler_seconds.labels(type=ce_type).observe(elapsed / len(items))
                METRICS.events_in.labels(
                    type=ce_type,
                    outcome="handled" if id(item) in handled else "erased_client").inc()
            return

    async def _admit_all(self, items: Sequence[_Item]) -> list[_Item]:
        """The items whose clients' events are handled (membership applied for all)."""
        if self._membership is None:
            return list(items)
        verdicts = await self._membership.admit_many([
            Admission(item.event, item.context.message.id, item.context.message.time)
            for item in items])
        return [item for item, admitted in zip(items, verdicts, strict=True) if admitted]

    async def _run_with_retries(self, item: _Item) -> None:
        route, event, context = item.route, item.event, item.context
        record, headers = item.record, item.headers
        failures = 0
        outages = 0
        with event_log_context(context.message.id, context.message.type):
            while True:
                started = time.perf_counter()
                try:
                    handled = await self._apply(route, event, context)
                except BadEvent as error:
                    await self._dead_letter(record, headers, error, attempts=failures + 1)
                    return
                except Exception as error:
                    if is_transient(error):
                        outages += 1
                        delay = self._backoff(outages)
                        log.warning("infrastructure unavailable, retrying in %.1fs: %s",
                                    delay, type(error).__name__)
                        METRICS.handler_retries.labels(type=context.message.type,
                                                       kind="outage").inc()
                        await asyncio.sleep(delay)
                        continue
                    failures += 1
                    if failures > self._settings.handler_retries:
                        log.exception("handler failed %d times, dead-lettering", failures)
                        await self._dead_letter(record, headers, error, attempts=failures)
                        return
                    delay = self._backoff(failures)
                    log.warning("handler failed (attempt %d), retrying in %.1fs: %r", failures,
                                delay, error)
                    METRICS.handler_retries.labels(type=context.message.type,
                                                   kind="error").inc()
                    await asyncio.sleep(delay)
                    continue
                METRICS.handler_seconds.labels(type=context.message.type).observe(
                    time.perf_counter() - started)
                METRICS.events_in.labels(
                    type=context.message.type,
                    outcome="handled" if handled else "erased_client").inc()
                return

    async def _apply(self, route: _Route, event: Event, context: EventContext) -> bool:
        """Update membership (roster, erasure), then run the handler unless it was erased."""
        if self._membership is not None and not await self._membership.admit(
                event, context.message.id, context.message.time):
            return False
        await route.handler(event, context)
        return True

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter, capped."""
        ceiling = min(self._settings.retry_backoff_max_seconds,
                      self._settings.retry_backoff_seconds * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    async def _dead_letter(self, record: ConsumerRecord, headers: dict[str, str],
                           error: BaseException, attempts: int) -> None:
        """Send the original message, untouched, to the dead-letter topic with the reason."""
        reason = str(error) or type(error).__name__
        dlq_headers = {name: value for name, value in headers.items()
                       if name not in DLQ_HEADERS}
        dlq_headers.update({
            "dlq_reason": reason[:2000],
            "dlq_error_type": type(error).__name__,
            "dlq_service": self._settings.service_name,
            "dlq_original_topic": record.topic,
            "dlq_original_partition": str(record.partition),
            "dlq_original_offset": str(record.offset),
            "dlq_attempts": str(attempts),
            "dlq_failed_at": utc_now().isoformat(),
        })
        outages = 0
        while True:
            try:
                await self._publisher.publish_raw(self.dead_letter_topic, record.value,
                                                  record.key, dlq_headers)
                break
            except KafkaError:
                # The dead letter must not be lost either: wait for the broker.
                outages += 1
                await asyncio.sleep(self._backoff(outages))
        log.error("dead-lettered message from %s[%d]@%d: %s", record.topic, record.partition,
                  record.offset, reason)
        METRICS.events_in.labels(type=headers.get("ce_type", "unknown"),
                                 outcome="dead_lettered").inc()


async def _tolerant_parser(records: tuple[ConsumerRecord, ...],
                           parse: Callable[[tuple[ConsumerRecord, ...]], Awaitable[Any]]) -> Any:
    """FastStream's parser, fed headers it cannot choke on.

    It decodes every header value as UTF-8 and fails on null or binary values; a failure
    there would rewind the batch forever. Such values reach our own reading (and, with
    the record, the dead letters) replaced by text.
    """
    return await parse(tuple(
        record if all(isinstance(value, bytes) and _is_utf8(value)
                      for _, value in record.headers or ())
        else dataclasses.replace(record, headers=tuple(
            (name, (value or b"").decode("utf-8", "replace").encode())
            for name, value in record.headers))
        for record in records))


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def provisioned_topics(settings: ServiceSettings, streams: Iterable[str]) -> list[str]:
    """The topics a service makes sure exist at start-up: its streams and its dead letters."""
    topics = {topic_name(stream, settings.topic_prefix) for stream in streams}
    topics.add(dead_letter_topic(settings.service_name, settings.topic_prefix))
    return sorted(topics)
