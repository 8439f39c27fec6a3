"""A service's sustained throughput: the real service, as a process, on the pre-filled topic.

The service runs exactly as in production (its entry point, its settings from the
environment, ledger, outbox and acknowledgements on); the benchmark only watches its consumer
group's committed offsets from outside, and reads its peak memory from /proc.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from coaching_shared.events import topic_name
from support.processes import ServiceProcess

from bench.context import Bench
from bench.measure import Result
from bench.progress import GroupProgress
from bench.workload import input_topic


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


async def service_throughput(bench: Bench, service: str, out_stream: str,
                             log_dir: Path) -> Result:
    """Start the service on the input topic, measure until every event is committed."""
    group = f"{bench.prefix}coaching-{service}"
    process = ServiceProcess(service, {
        "KAFKA_BOOTSTRAP_SERVERS": bench.bootstrap, "MONGODB_URL": bench.mongodb_url,
        "TOPIC_PREFIX": bench.prefix, "MONGODB_DATABASE": bench.database(service)}, log_dir)
    process.start()
    try:
        await asyncio.to_thread(process.wait_ready)
        async with GroupProgress(bench.bootstrap, group, input_topic(bench.prefix)) as progress:
            async def running() -> bool:
                return process.process.running()

            window = await progress.watch(bench.total, bench.warmup, bench.cap_seconds,
                                          alive=running)
        rss = peak_rss_mb(process.process.pid)
    finally:
        await asyncio.to_thread(process.stop)
    out_topic = topic_name(out_stream, bench.prefix)
    produced = await events_on(bench.bootstrap, out_topic)
    return Result.of(f"{service} service", window,
                     note="process, ledger + outbox + membership + ack per event",
                     peak_rss_mb=rss, events_out=produced, events_out_topic=out_topic)
