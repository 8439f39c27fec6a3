"""Wiring a service: one ASGI app with the HTTP API, the Kafka consumer and the outbox relay.

Every service builds its app the same way (`build_service`), so health, metrics, docs,
problem details, topic provisioning and start-up order are identical across the four.
The app answers `/health/live` at once; it connects to Kafka and MongoDB in the background
(waiting out outages) and reports `/health/ready` only when both answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any, Protocol
from urllib.parse import unquote

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from faststream.specification.asyncapi.site import get_asyncapi_html
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic.json_schema import models_json_schema
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from coaching_shared.auth import Principal
from coaching_shared.contracts.enrolment import ClientEnrolled, ClientOffboarded, CoachAssigned
from coaching_shared.events import Event, topic_name
from coaching_shared.membership import INDEXES as MEMBERSHIP_INDEXES
from coaching_shared.membership import Membership
from coaching_shared.messaging import (
    EventConsumer,
    EventContext,
    EventPublisher,
    create_broker,
    is_transient,
    provisioned_topics,
)
from coaching_shared.mongo import (
    IndexSpec,
    configure_outbox_lease,
    create_client,
    ensure_indexes,
    outbox_index,
)
from coaching_shared.observability import METRICS, configure_logging
from coaching_shared.outbox import OutboxRelay
from coaching_shared.outbox_batch import PublishOnce
from coaching_shared.problems import (
    document_problems,
    install_problem_handlers,
    problem_responses,
)
from coaching_shared.settings import ServiceSettings
from coaching_shared.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class BackgroundWorker(Protocol):
    """A service's own long-running loop (a scheduler, a delivery dispatcher)."""

    def start(self, ready: asyncio.Event) -> None:
        """Start in the background; begin work once `ready` is set (Kafka and Mongo up)."""

    async def stop(self) -> None:
        """Stop before the broker and the database connection close."""


@dataclass
class ServiceRuntime:
    """The live parts of a service, handed to its wiring function and its API."""

    settings: ServiceSettings
    broker: KafkaBroker
    publisher: EventPublisher
    consumer: EventConsumer
    mongo: AsyncMongoClient
    db: AsyncDatabase
    relay: OutboxRelay
    membership: Membership
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    workers: list[BackgroundWorker] = field(default_factory=list)

    def collection(self, name: str) -> AsyncCollection:
        return self.db[name]

    def run_in_background(self, worker: BackgroundWorker) -> None:
        """Run the worker for the app's lifetime (started with it, stopped before it ends)."""
        self.workers.append(worker)

    async def relay_document(self, collection: AsyncCollection,
                             document: dict[str, Any] | None) -> None:
        """Publish a just-written document's outbox entries (see OutboxRelay)."""
        await self.relay.relay_document(collection, document)


@dataclass(frozen=True)
class ServiceDefinition:
    """What makes one service different from the others."""

    title: str
    description: str
    routers: Sequence[APIRouter]
    indexes: Sequence[IndexSpec]
    outbox_collections: Sequence[str]
    produces: Sequence[type[Event]]
    personal_collections: Sequence[str]
    wire: Callable[[ServiceRuntime], None]
    version: str = "0.1.0"
    # Outbox collection -> the publish-once ledger collection its writers publish through.
    publish_once: Mapping[str, str] = field(default_factory=dict)


def _publisher_docs(broker: KafkaBroker, settings: ServiceSettings,
                    produces: Sequence[type[Event]]) -> None:
    """Declare what the service publishes so its AsyncAPI document lists it."""
    by_stream: dict[str, list[type[Event]]] = {}
    for model in produces:
        by_stream.setdefault(model.stream, []).append(model)
    for stream, models in sorted(by_stream.items()):
        for model in models:
            broker.publisher(
                topic_name(stream, settings.topic_prefix), title=f"{model.ce_type()}",
                description=(model.__doc__ or "").strip() + " (Kafka binary-mode CloudEvent; "
                "key = client id)", schema=model)


async def _ensure_topics(settings: ServiceSettings, topics: Sequence[str]) -> None:
    """Create missing topics with the configured partitions (another replica may race us)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            try:
                await admin.create_topics([
                    NewTopic(name, settings.topic_partitions, settings.topic_replication_factor)
                    for name in missing])
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


async def _record_consumer_lag(consumer: EventConsumer) -> None:
    """Export how far the service's consumer is behind each partition's end."""
    kafka_consumer = getattr(consumer.subscriber, "consumer", None)
    if kafka_consumer is None:
        return
    for partition in kafka_consumer.assignment():
        highwater = kafka_consumer.highwater(partition)
        if highwater is None:
            continue
        position = await kafka_consumer.position(partition)
        METRICS.consumer_lag.labels(topic=partition.topic, partition=partition.partition).set(
            max(0, highwater - position))


async def _membership_only(event: Event, context: EventContext) -> None:
    """For membership events a service has nothing to add to (roster, erasure)."""


async def _membership_only_together(events: Sequence[tuple[Event, EventContext]]) -> None:
    """The same for a wave of them (the consumer admitted them all at once)."""


CLOUDEVENTS_HEADERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0 attributes in Kafka binary mode",
    "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject",
                 "ce_tenant", "content-type"],
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string", "description": "unique per event: drop duplicates on it"},
        "ce_source": {"type": "string", "description": "the producer, e.g. /coaching/goals"},
        "ce_type": {"type": "string", "description": "coaching.<EventName>.v<version>"},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string", "description": "the client id (also the key)"},
        "ce_tenant": {"type": "string", "description": "the tenant (extension attribute)"},
        "content-type": {"type": "string", "const": "application/json"},
    },
}


def asyncapi_document(asyncapi: AsyncAPI, consumer: EventConsumer,
                      service_name: str) -> dict[str, Any]:
    """FastStream's AsyncAPI 3.0 document, with the consumed events' schemas filled in.

    The service reads raw records (it dispatches on `ce_type` itself), so FastStream sees no
    payload type for its subscriber; the events each topic is read for are added here.
    """
    document = asyncapi.to_specification().to_jsonable()
    components = document.setdefault("components", {})
    components.setdefault("schemas", {})["CloudEventsHeaders"] = CLOUDEVENTS_HEADERS_SCHEMA
    for message in components.get("messages", {}).values():
        message["headers"] = {"$ref": "#/components/schemas/CloudEventsHeaders"}
        message["bindings"] = {"kafka": {"key": {"type": "string",
                                                 "description": "the client id"},
                                         "bindingVersion": "0.5.0"}}
    by_topic = consumer.models_by_topic()
    models = list({model: None for group in by_topic.values() for model in group})
    if not models:
        return document
    _, definitions = models_json_schema([(model, "serialization") for model in models],
                                        ref_template="#/components/schemas/{model}")
    components["schemas"].update(definitions.get("$defs", {}))
    for key, channel in document.get("channels", {}).items():
        consumed = by_topic.get(channel.get("address", ""))
        # FastStream names the channel "<title>" for one topic, "<title>:<topic>" for several.
        if not consumed or key.split(":")[0] != f"{service_name} consumer":
            continue
        channel["description"] = "Consumes: " + ", ".join(m.ce_type() for m in consumed)
        for reference in channel.get("messages", {}).values():
            name = unquote(reference["$ref"].rsplit("/", 1)[1])
            components["messages"][name]["payload"] = {
                "oneOf": [{"$ref": f"#/components/schemas/{m.__name__}"} for m in consumed]}
    if "EmptyPayload" not in json.dumps(document["channels"]) + json.dumps(
            components.get("messages", {})):
        components["schemas"].pop("EmptyPayload", None)
    return document


class _RenderedDocument:
    """What FastStream's AsyncAPI page renderer reads from a specification."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._document = document

    def to_json(self) -> str:
        return json.dumps(self._document)


# A service must stop within its orchestrator's grace period (Kubernetes: 30 s by default);
# a step that does not finish in time is logged by name and left behind.
SHUTDOWN_STEP_SECONDS = 15.0


async def _stop_step(name: str, stop: Callable[[], Awaitable[Any]]) -> None:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(stop(), SHUTDOWN_STEP_SECONDS)
    except TimeoutError:
        log.error("shutdown: %s did not stop within %.0f s; going on without it", name,
                  SHUTDOWN_STEP_SECONDS)
        return
    except Exception:
        log.exception("shutdown: %s failed to stop cleanly", name)
        return
    log.info("shutdown: %s stopped in %.2f s", name, time.perf_counter() - started)


def build_service(settings: ServiceSettings, definition: ServiceDefinition) -> FastAPI:
    """The ASGI app of one service: HTTP API, consumer, outbox relay, health, metrics, docs."""
    configure_logging(settings.service_name, settings.log_level)
    broker = create_broker(settings)
    publisher = EventPublisher(broker, settings.topic_prefix)
    mongo = create_client(settings)
    db = mongo[settings.database_name]
    configure_outbox_lease(timedelta(seconds=settings.outbox_lease_seconds))
    relay = OutboxRelay(publisher, [db[name] for name in definition.outbox_collections],
                        sweep_interval=settings.outbox_sweep_seconds,
                        lease=timedelta(seconds=settings.outbox_lease_seconds),
                        ledgers={name: PublishOnce(db[ledger])
                                 for name, ledger in definition.publish_once.items()})
    membership = Membership(db, definition.personal_collections)
    consumer = EventConsumer(settings, publisher, membership, batch_scope=relay.deferred)
    runtime = ServiceRuntime(settings, broker, publisher, consumer, mongo, db, relay,
                             membership)
    definition.wire(runtime)
    for model in (ClientEnrolled, CoachAssigned, ClientOffboarded):
        if model.ce_type() not in consumer.handled_types:
            # The consumer keeps the roster itself.
            consumer.on(model, _membership_only, batch=_membership_only_together)
    consumer.subscribe(broker)
    _publisher_docs(broker, settings, definition.produces)
    indexes = [*definition.indexes, *MEMBERSHIP_INDEXES,
               *(outbox_index(c) for c in definition.outbox_collections)]
    streams = {model.stream for model in definition.produces}

    async def connect() -> None:
        """Bring up indexes, topics and the broker, waiting out outages; then mark ready."""
        attempt = 0
        while True:
            try:
                await ensure_indexes(db, indexes)
                await _ensure_topics(settings, provisioned_topics(settings, streams))
                await broker.start()
                break
            except Exception as error:
                if not is_transient(error):
                    raise
                attempt += 1
                log.warning("start-up waiting for infrastructure (attempt %d): %s", attempt,
                            type(error).__name__)
                await asyncio.sleep(min(10.0, 0.5 * attempt))
        relay.start()
        runtime.ready.set()
        log.info("%s ready: consuming %s", settings.service_name, consumer.topics or "nothing")
        while True:
            await asyncio.sleep(10)
            try:
                await _record_consumer_lag(consumer)
            except Exception as error:  # metrics must never take the service down
                log.debug("consumer lag not recorded: %r", error)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(connect(), name="connect")
        for worker in runtime.workers:
            worker.start(runtime.ready)
        try:
            yield
        finally:
            steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
                ("start-up task", partial(cancel_and_wait, task)),
                *((f"worker {type(worker).__name__}", worker.stop)
                  for worker in reversed(runtime.workers)),
                ("outbox relay", relay.stop), ("Kafka broker", broker.stop),
                ("database client", mongo.close)]
            for name, stop in steps:
                await _stop_step(name, stop)

    app = FastAPI(title=definition.title, description=definition.description,
                  version=definition.version, lifespan=lifespan,
                  docs_url="/docs", openapi_url="/openapi.json")
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.definition = definition
    install_problem_handlers(app)
    for router in definition.routers:
        app.include_router(router, responses=problem_responses(503))
    generate_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document, with the problem details every error answers."""
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(generate_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    asyncapi = AsyncAPI(broker, title=f"{definition.title} events", version=definition.version,
                        description=definition.description, schema_version="3.0.0")
    app.state.asyncapi_document = lambda: asyncapi_document(asyncapi, consumer,
                                                            settings.service_name)

    @app.get("/health/live", tags=["operations"])
    async def live() -> dict[str, str]:
        """The process is up and serving HTTP."""
        return {"status": "live"}

    @app.get("/health/ready", tags=["operations"])
    async def ready() -> JSONResponse:
        """Kafka and MongoDB both answer, and the consumer and relay are running."""
        checks = {"started": runtime.ready.is_set(), "mongodb": False, "kafka": False}
        try:
            await asyncio.wait_for(db.command("ping"), timeout=2)
            checks["mongodb"] = True
        except Exception:  # any failure means not ready; the reason is in the logs
            pass
        if checks["started"]:
            checks["kafka"] = bool(await broker.ping(timeout=2))
        ok = all(checks.values())
        return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks},
                            status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/asyncapi", tags=["docs"], response_class=HTMLResponse)
    async def asyncapi_page() -> HTMLResponse:
        """The service's AsyncAPI 3.0 document, rendered."""
        return HTMLResponse(get_asyncapi_html(_RenderedDocument(app.state.asyncapi_document())))

    @app.get("/asyncapi.json", tags=["docs"])
    async def asyncapi_json() -> JSONResponse:
        """The service's AsyncAPI 3.0 document (what it consumes and publishes)."""
        return JSONResponse(app.state.asyncapi_document())

    return app


def runtime_of(request: Request) -> ServiceRuntime:
    """FastAPI dependency: the service's live parts."""
    return request.app.state.runtime


async def authorize_client(principal: Principal, client_id: str,
                           runtime: ServiceRuntime) -> None:
    """404 unless the caller may see this client's personal coaching data.

    404 rather than 403, so a caller cannot probe which clients exist.
    """
    coach_id = await runtime.membership.coach_of(principal.tenant_id, client_id)
    if not principal.may_read_client(client_id, coach_id):
        raise HTTPException(404, f"no client {client_id!r} visible to you")


def run_service(app: FastAPI, settings: ServiceSettings) -> None:
    """Serve the app with uvicorn on the configured host and port (the services' entry point)."""
    import uvicorn

    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None,
                access_log=False, timeout_graceful_shutdown=10)
