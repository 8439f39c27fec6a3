"""Latency: one Kafka hop, and a submitted assessment's way to an integrator's webhook.

Both scenarios are open-loop: each send is due at a fixed offered rate (the i-th at
start + i / rate), whether or not earlier ones were answered, so a slow moment delays the
samples after it instead of hiding them. Every figure is timed from outside, on this
process's monotonic clock; percentiles are nearest-rank (`percentile`).

- `kafka_hop`: an aiokafka producer (idempotent, acks=all, no linger, as the services'
  producers are) sends our real `AssessmentCompleted` records one at a time; a consumer
  assigned to every partition (positions resolved before the first send) notes when each
  record arrives. Latency = arrival - the moment `send` was called.
- `end_to_end`: the four services as OS processes on their own topics and databases, an
  SMTP sink (for the personal notifications they also send) and a webhook sink in this
  process. A cohort is enrolled over Kafka, its assignments fetched and the platform left to
  settle; then completed assessments are submitted over HTTP at the offered rate. Latency =
  the webhook sink's arrival of the `AssessmentCompleted` carrying that assessment id - the
  moment the submission request was started. Submissions whose webhook never came within
  the drain time are reported as `missing`.

Knobs (environment): BENCH_LATENCY_RATE (sends/s, default 20), BENCH_LATENCY_SECONDS (15),
BENCH_E2E_RATE (submissions/s, default 0.5: on the project's machine with FerretDB on
SQLite, 2/s overran the platform, the submissions timed out and the percentiles measured a
growing queue instead of latency), BENCH_E2E_SECONDS (60), BENCH_E2E_DRAIN_SECONDS (how long
to wait for the last webhooks after the load, default 120). The cohort (rate x seconds
clients) is enrolled and settled before the load, outside the measurement.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from coaching_assessment.domain.lifecycle import assessment_id_of
from coaching_notifier.sinks import SmtpSink, WebhookSink
from coaching_shared.auth import mint_token
from coaching_shared.contracts import AssessmentCompleted, ClientEnrolled
from coaching_shared.events import topic_name
from coaching_shared.settings import ServiceSettings
from pymongo import AsyncMongoClient
from support.processes import SERVICES, ServiceProcess

from bench.context import Bench, env_float
from bench.measure import Result, Window
from bench.progress import create_topics
from bench.scenarios.raw import PRODUCER_OPTIONS
from bench.scenarios.services import fill, peak_rss_mb
from bench.workload import PARTITIONS, TENANT, enrolment_messages

# The services' producers (FastStream) do not linger; a latency figure should not either.
HOP_PRODUCER_OPTIONS: dict[str, Any] = {**PRODUCER_OPTIONS, "linger_ms": 0}
HOP_WARMUP_SENDS = 5  # connections, metadata, producer id: sent and awaited before timing
HOP_DRAIN_SECONDS = 10.0
INSTRUMENT = "onet-skills"  # a skills instrument: the goals service drafts goals from it
WEBHOOK_EVENT = AssessmentCompleted.type_name
SETTLE_SECONDS = 300.0  # longest wait for the enrolment's work to be done
QUIET_SECONDS = 3.0  # ... and for it to stay done
HTTP_TIMEOUT = 30.0


# -- the arithmetic ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0 < q <= 100) by the nearest-rank method; None for no values.

    Nearest rank: the smallest value with at least q% of the values at or below it, i.e.
    the ceil(q/100 * n)-th smallest. Always one of the measured values, never interpolated.
    """
    if not values:
        return None
    if not 0 < q <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {q}")
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered) / 100))
    return ordered[rank - 1]


def latency_summary(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """p50/p95/p99/max in milliseconds (rounded to 0.1) and the sample count."""
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    return {"p50_ms": ms(percentile(seconds, 50)), "p95_ms": ms(percentile(seconds, 95)),
            "p99_ms": ms(percentile(seconds, 99)), "max_ms": ms(max(seconds, default=None)),
            "samples": len(seconds)}


def planned_count(rate: float, seconds: float) -> int:
    """How many sends an offered `rate` per second makes in `seconds` (at least one)."""
    if rate <= 0 or seconds <= 0:
        raise ValueError("rate and seconds must be positive")
    return max(1, round(rate * seconds))


async def at_rate(count: int, rate: float, action: Callable[[int], Awaitable[None]]) -> float:
    """Start action(i) at start + i / rate for i < count, without waiting for earlier ones.

    Returns once every action has finished; the result is the load's span in seconds: from
    the first start to when a next one would have been due (count / rate when on time).
    """
    tasks = []
    began = time.monotonic()
    for index in range(count):
        delay = began + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(action(index)))
    span = time.monotonic() - began + 1 / rate
    await asyncio.gather(*tasks)
    return span


async def wait_for(condition: Callable[[], bool], within: float, interval: float = 0.05
                   ) -> bool:
    """Poll condition() until true or `within` seconds passed; whether it became true."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
    return True


# -- one Kafka hop ----------------------------------------------------------------------------


async def kafka_hop(bench: Bench) -> Result:
    """Produce real events one at a time at a fixed rate; time each to its consumer."""
    rate = env_float("BENCH_LATENCY_RATE", 20.0)
    count = planned_count(rate, env_float("BENCH_LATENCY_SECONDS", 15.0))
    topic = bench.topic("hop")
    await create_topics(bench.bootstrap, [topic], PARTITIONS)
    partitions = [TopicPartition(topic, number) for number in range(PARTITIONS)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bench.bootstrap, group_id=None,
                                enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=bench.bootstrap, **HOP_PRODUCER_OPTIONS)
    arrivals: dict[tuple[int, int], float] = {}
    await consumer.start()
    reader: asyncio.Task[None] | None = None
    try:
        await producer.start()
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for partition in partitions:  # resolved now: every later record will be read
            await consumer.position(partition)
        reader = asyncio.create_task(_note_arrivals(consumer, arrivals))
        await _hop_warmup(producer, topic, bench, arrivals)
        started: dict[int, float] = {}
        pending: dict[int, asyncio.Future[Any]] = {}

        async def send(index: int) -> None:
            item = bench.encoded[index % len(bench.encoded)]
            started[index] = time.monotonic()
            pending[index] = await producer.send(topic, item.value, key=item.key,
                                                 headers=item.headers)

        span = await at_rate(count, rate, send)
        placed = {index: ((meta := await future).partition, meta.offset)
                  for index, future in pending.items()}
        await wait_for(lambda: all(where in arrivals for where in placed.values()),
                       HOP_DRAIN_SECONDS)
    finally:
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        await producer.stop()
        await consumer.stop()
    latencies = [arrivals[where] - started[index] for index, where in placed.items()
                 if where in arrivals]
    return Result.of("Kafka hop latency", Window(len(latencies), span,
                                                 complete=len(latencies) == count),
                     note=f"open loop at {rate:g}/s, send to consumer arrival",
                     **latency_summary(latencies), offered_per_s=rate,
                     missing=count - len(latencies), linger_ms=0, acks="all")


async def _note_arrivals(consumer: AIOKafkaConsumer,
                         arrivals: dict[tuple[int, int], float]) -> None:
    """Note when each record (partition, offset) came out of the consumer."""
    while True:
        batches = await consumer.getmany(timeout_ms=100)
        now = time.monotonic()
        for records in batches.values():
            for record in records:
                arrivals.setdefault((record.partition, record.offset), now)


async def _hop_warmup(producer: AIOKafkaProducer, topic: str, bench: Bench,
                      arrivals: dict[tuple[int, int], float]) -> None:
    """A few records sent and read back before timing; their arrivals are forgotten."""
    placed = []
    for item in bench.encoded[:HOP_WARMUP_SENDS]:
        meta = await producer.send_and_wait(topic, item.value, key=item.key,
                                            headers=item.headers)
        placed.append((meta.partition, meta.offset))
    await wait_for(lambda: all(where in arrivals for where in placed), HOP_DRAIN_SECONDS)
    for where in placed:
        arrivals.pop(where, None)


# -- submission to webhook --------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """One client's completed assessment, ready to be submitted."""

    client_id: str
    assignment_id: str
    instrument_version: int
    answers: dict[str, int]


@dataclass
class SubmissionLog:
    """What the load sent: start time per assessment id, answer times, failures."""

    sent_at: dict[str, float] = field(default_factory=dict)  # assessment id -> monotonic
    answer_seconds: list[float] = field(default_factory=list)
    failed: Counter[str] = field(default_factory=Counter)  # reason -> submissions
    first_failure: str | None = None  # the first refusal's answer, to explain the count

    def fail(self, reason: str, detail: str) -> None:
        self.failed[reason] += 1
        self.first_failure = self.first_failure or f"{reason}: {detail[:300]}"


def service_environment(bench: Bench, service: str, prefix: str,
                        smtp_port: int) -> dict[str, str]:
    """A service's settings: the bench's servers, own topics and database, else defaults."""
    env = {"KAFKA_BOOTSTRAP_SERVERS": bench.bootstrap, "MONGODB_URL": bench.mongodb_url,
           "TOPIC_PREFIX": prefix, "MONGODB_DATABASE": bench.database(f"e2e_{service}")}
    if service == "assessment":
        env["ENROLMENT_INSTRUMENTS"] = json.dumps([INSTRUMENT])
    if service == "notifier":
        # The sinks listen on 127.0.0.1 over plain http: allowed for loopback hosts.
        env |= {"SMTP_PORT": str(smtp_port), "WEBHOOK_ALLOW_HTTP_LOOPBACK": "true"}
    return env


def bearer(subject: str, role: str) -> dict[str, str]:
    """A dev token signed with the services' secret (the same environment)."""
    token = mint_token(ServiceSettings(service_name="bench"), TENANT, subject, [role])
    return {"Authorization": f"Bearer {token}"}


async def end_to_end(bench: Bench, log_dir: Path) -> Result:
    """Submissions over HTTP at a fixed rate, timed to their webhook at the integrator."""
    rate = env_float("BENCH_E2E_RATE", 0.5)
    count = planned_count(rate, env_float("BENCH_E2E_SECONDS", 60.0))
    drain = env_float("BENCH_E2E_DRAIN_SECONDS", 120.0)
    prefix = f"{bench.prefix}e2e."
    smtp = SmtpSink().start()
    sink: WebhookSink | None = None
    processes: dict[str, ServiceProcess] = {}
    try:
        processes = {service: ServiceProcess(service, service_environment(
            bench, service, prefix, smtp.port), log_dir / "e2e") for service in SERVICES}
        sink = await WebhookSink().start()
        for process in processes.values():
            process.start()
        for process in processes.values():
            await asyncio.to_thread(process.wait_ready)
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
            prepared = time.monotonic()
            submissions = await _prepare(bench, prefix, http, processes, sink, count)
            prepare_seconds = time.monotonic() - prepared
            log = SubmissionLog()
            span = await at_rate(count, rate, lambda index: _submit(
                http, processes["assessment"].url, submissions[index], log))
        await wait_for(lambda: set(log.sent_at) <= set(_first_arrivals(sink)), drain, 0.2)
        arrived = _first_arrivals(sink)
        rss = {service: peak_rss_mb(process.process.pid)
               for service, process in processes.items()}
        exited = [service for service, process in processes.items()
                  if not process.process.running()]
    finally:
        for process in processes.values():
            await asyncio.to_thread(process.stop)
        if sink is not None:
            await sink.stop()
        smtp.stop()
    latencies = [arrived[assessment_id] - sent for assessment_id, sent in log.sent_at.items()
                 if assessment_id in arrived]
    missing = len(log.sent_at) - len(latencies)
    return Result.of(
        "end-to-end latency", Window(len(latencies), span,
                                     complete=missing == 0 and not log.failed),
        note=f"open loop at {rate:g}/s, HTTP submission to webhook arrival",
        **latency_summary(latencies), offered_per_s=rate, submitted=count,
        submit_failed=sum(log.failed.values()), submit_failures=dict(log.failed),
        first_failure=log.first_failure,
        missing=missing, drain_seconds=drain,
        submit_answer_p50_ms=_ms(percentile(log.answer_seconds, 50)),
        submit_answer_p99_ms=_ms(percentile(log.answer_seconds, 99)),
        prepare_seconds=round(prepare_seconds, 1), peak_rss_mb=rss, exited=exited)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


async def _prepare(bench: Bench, prefix: str, http: httpx.AsyncClient,
                   processes: dict[str, ServiceProcess], sink: WebhookSink,
                   count: int) -> list[Submission]:
    """Subscribe the webhook, enrol the cohort, let that settle, answer its assignments."""
    response = await http.post(
        f"{processes['notifier'].url}/v1/webhooks",
        headers={**bearer("bench-connector", "integration"), "Idempotency-Key": "bench-e2e"},
        json={"url": sink.url, "event_types": [WEBHOOK_EVENT],
              "description": "bench latency receiver"})
    response.raise_for_status()
    messages = enrolment_messages(count)
    await fill(bench, prefix, [messages])
    await _settle(bench, prefix)  # before reading: polling would only slow the enrolment
    assessment = processes["assessment"].url
    assignments = [await _assignment(http, assessment, message.subject)
                   for message in messages]
    answers = await _answers(http, assessment, messages[0].subject, assignments[0])
    return [Submission(message.subject, assignment["assignment_id"],
                       assignment["instrument_version"], answers(number))
            for number, (message, assignment) in enumerate(zip(messages, assignments,
                                                               strict=True))]


async def _assignment(http: httpx.AsyncClient, assessment: str,
                      client_id: str) -> dict[str, Any]:
    """The client's assignment of the instrument, once the enrolment has made it."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        response = await http.get(f"{assessment}/v1/clients/{client_id}/assignments",
                                  headers=bearer(client_id, "client"))
        found = [a for a in (response.json() if response.status_code == 200 else [])
                 if a["instrument_id"] == INSTRUMENT]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no {INSTRUMENT} assignment for {client_id} "
                                 f"within {SETTLE_SECONDS:.0f}s")
        await asyncio.sleep(0.5)


async def _answers(http: httpx.AsyncClient, assessment: str, client_id: str,
                   assignment: dict[str, Any]) -> Callable[[int], dict[str, int]]:
    """Read the instrument's items once (same version for all); answers varying by client."""
    base = f"{assessment}/v1/clients/{client_id}/assignments/{assignment['assignment_id']}"
    choices: dict[str, list[int]] = {}
    total = assignment.get("item_count") or 1
    while len(choices) < total:
        page = await http.get(f"{base}/items", headers=bearer(client_id, "client"),
                              params={"offset": len(choices), "limit": 100})
        page.raise_for_status()
        body = page.json()
        total = body["total"]
        if not body["items"]:
            break
        for item in body["items"]:
            options = body["response_scales"][item["response_scale"]]["options"]
            choices[item["item_id"]] = [option["value"] for option in options]

    def for_client(number: int) -> dict[str, int]:
        return {item_id: values[(number + position) % len(values)]
                for position, (item_id, values) in enumerate(choices.items())}

    return for_client


async def _submit(http: httpx.AsyncClient, assessment: str, submission: Submission,
                  log: SubmissionLog) -> None:
    """Submit one completed assessment; note when it was started and what came back."""
    path = (f"{assessment}/v1/clients/{submission.client_id}/assignments/"
            f"{submission.assignment_id}/submission")
    headers = {**bearer(submission.client_id, "client"),
               "Idempotency-Key": f"bench-{submission.assignment_id}"}
    # Known before the answer: a submission answered late (or never) still counts if its
    # webhook comes, and as missing if it does not.
    started = log.sent_at[assessment_id_of(submission.assignment_id)] = time.monotonic()
    try:
        response = await http.post(path, headers=headers, json={
            "instrument_version": submission.instrument_version,
            "answers": submission.answers})
    except httpx.HTTPError as error:
        log.fail(type(error).__name__, str(error))
        return
    log.answer_seconds.append(time.monotonic() - started)
    if response.status_code != 201:
        log.fail(f"HTTP {response.status_code}", response.text)


def _first_arrivals(sink: WebhookSink) -> dict[str, float]:
    """Assessment id -> when its AssessmentCompleted first reached the webhook sink."""
    arrivals: dict[str, float] = {}
    for call in list(sink.calls):
        try:
            event = json.loads(call.body)
        except ValueError:
            continue
        assessment_id = (event.get("data") or {}).get("assessment_id")
        if event.get("type") == AssessmentCompleted.ce_type() and assessment_id:
            arrivals.setdefault(assessment_id, call.received_at)
    return arrivals


async def _settle(bench: Bench, prefix: str) -> None:
    """Wait until the services consumed all they were sent and the notifier sent what was
    due, and it stays so for QUIET_SECONDS: the load then meets an idle platform."""
    groups = [f"{prefix}coaching-{service}" for service in SERVICES]
    admin = AIOKafkaAdminClient(bootstrap_servers=bench.bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bench.bootstrap, group_id=None)
    mongo = AsyncMongoClient(bench.mongodb_url, tz_aware=True)
    deliveries = mongo[bench.database("e2e_notifier")]["deliveries"]
    enrolment_topic = topic_name(ClientEnrolled.stream, prefix)
    await admin.start()
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        enrolment = [TopicPartition(enrolment_topic, number) for number
                     in sorted(consumer.partitions_for_topic(enrolment_topic) or ())]
        deadline = time.monotonic() + SETTLE_SECONDS
        calm_since: float | None = None
        while True:
            busy = (await _lag(admin, consumer, groups, enrolment)
                    or await deliveries.count_documents(
                        {"status": {"$in": ["pending", "sending"]},
                         "due_at": {"$lte": datetime.now(UTC)}}))
            now = time.monotonic()
            calm_since = None if busy else (calm_since or now)
            if calm_since is not None and now - calm_since >= QUIET_SECONDS:
                return
            if now > deadline:
                raise AssertionError(f"the enrolment's work not done in {SETTLE_SECONDS:.0f}s")
            await asyncio.sleep(1.0)
    finally:
        await consumer.stop()
        await admin.close()
        await mongo.close()


async def _lag(admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, groups: Sequence[str],
               enrolment: Sequence[TopicPartition]) -> int:
    """Records the groups have not committed yet; every group must have read all of the
    enrolment topic (a partition without a commit counts in full there)."""
    lag = 0
    for group in groups:
        committed = await admin.list_consumer_group_offsets(group)
        partitions = list({*committed, *enrolment})
        ends = await consumer.end_offsets(partitions)
        lag += sum(max(0, ends[tp] - (max(0, committed[tp].offset) if tp in committed else 0))
                   for tp in partitions)
    return lag
