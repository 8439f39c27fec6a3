"""Each service's sustained throughput: the real service, as a process, on pre-filled topics.

The service runs exactly as in production (its entry point, its settings from the
environment, ledger, outbox and acknowledgements on); the benchmark only watches its consumer
group's committed offsets from outside, and reads its peak memory from /proc. Every service
gets a topic prefix of its own, filled with the events it consumes in a real program:

- assessment: the cohort's enrolments (it assigns each client the program's instruments);
- goals: their completed skills assessments (three goals drafted per client);
- feedback: enrolments, then each client's accepted goal (a check-in schedule per goal);
- notifier: enrolments (contacts), then the completed assessments (an inbox item and an
  e-mail to each client, sent to an SMTP sink in this process).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from coaching_notifier.sinks import SmtpSink
from coaching_shared.events import EventMessage, topic_name
from support.processes import ServiceProcess

from bench.context import Bench
from bench.measure import Result
from bench.progress import GroupProgress, create_topics
from bench.scenarios.raw import PRODUCER_OPTIONS
from bench.workload import PARTITIONS, encode, enrolment_messages, goal_set_messages


@dataclass(frozen=True)
class ServiceRun:
    """A service and what it is fed: event lists, each filled into its stream's topic."""

    service: str
    inputs: Sequence[Sequence[EventMessage]]
    out_stream: str
    note: str


def service_runs(bench: Bench) -> list[ServiceRun]:
    enrolments = enrolment_messages(bench.total)
    return [
        ServiceRun("assessment", [enrolments], "assessment",
                   "ClientEnrolled -> instruments assigned"),
        ServiceRun("goals", [bench.messages], "goals",
                   "AssessmentCompleted -> 3 goals drafted"),
        ServiceRun("feedback", [enrolments, goal_set_messages(bench.total)], "feedback",
                   "ClientEnrolled + GoalSet -> check-in schedule"),
        ServiceRun("notifier", [enrolments, bench.messages], "notifier",
                   "ClientEnrolled + AssessmentCompleted -> inbox + e-mail"),
    ]


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set size (VmHWM), in MB; None where /proc is missing."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


async def events_on(bootstrap: str, topic: str) -> int:
    """How many records a topic holds (sum of its partitions' end offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def fill(bench: Bench, prefix: str, inputs: Sequence[Sequence[EventMessage]]
               ) -> list[str]:
    """Produce each input list, in order, into its stream's topic; returns the topics."""
    topics = sorted({topic_name(messages[0].stream, prefix) for messages in inputs})
    await create_topics(bench.bootstrap, topics, PARTITIONS)
    kafka = AIOKafkaProducer(bootstrap_servers=bench.bootstrap, **PRODUCER_OPTIONS)
    await kafka.start()
    try:
        for messages in inputs:
            pending = []
            for message in messages:
                item = encode(message)
                pending.append(await kafka.send(topic_name(message.stream, prefix), item.value,
                                                key=item.key, headers=item.headers))
            await asyncio.gather(*pending)
    finally:
        await kafka.stop()
    return topics


async def service_throughput(bench: Bench, run: ServiceRun, log_dir: Path) -> Result:
    """Fill the service's topics, start it, measure until every event is committed."""
    prefix = f"{bench.prefix}{run.service}."
    topics = await fill(bench, prefix, run.inputs)
    total = sum(len(messages) for messages in run.inputs)
    smtp = SmtpSink().start() if run.service == "notifier" else None
    environment = {"KAFKA_BOOTSTRAP_SERVERS": bench.bootstrap, "MONGODB_URL": bench.mongodb_url,
                   "TOPIC_PREFIX": prefix, "MONGODB_DATABASE": bench.database(run.service),
                   "TENANTS": '["bench"]'}
    if smtp is not None:
        environment["SMTP_PORT"] = str(smtp.port)
    process = ServiceProcess(run.service, environment, log_dir)
    process.start()
    try:
        await asyncio.to_thread(process.wait_ready)
        group = f"{prefix}coaching-{run.service}"
        async with GroupProgress(bench.bootstrap, group, topics) as progress:
            async def running() -> bool:
                return process.process.running()

            window = await progress.watch(total, int(total * bench.warmup_share),
                                          bench.cap_seconds, alive=running)
        rss = peak_rss_mb(process.process.pid)
    finally:
        await asyncio.to_thread(process.stop)
        if smtp is not None:
            smtp.stop()
    out_topic = topic_name(run.out_stream, prefix)
    return Result.of(f"{run.service} service", window, note=run.note, peak_rss_mb=rss,
                     events_in=total, events_out=await events_on(bench.bootstrap, out_topic),
                     events_out_topic=out_topic)
