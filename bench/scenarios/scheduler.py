"""Check-ins falling due all at once: the feedback scheduler against a raw claim-and-produce.

Both start from the same seed: `count` check-in schedules, written straight into a feedback
database through the service's repository, every one due at the same instant (last Monday's
slot). The raw figure reads the due documents in batches (each after the last key read),
marks each batch claimed and produces one CheckInDue-sized record per document, as fast as
PyMongo and aiokafka go. The
scheduler figure is the feedback service run as a process: from its start until the topic
holds `count` distinct CheckInDue.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from coaching_feedback.domain import first_due, month_start_after
from coaching_feedback.repository import ACTIVE, NO_LEASE, FeedbackRepository, schedule_key
from coaching_feedback.settings import FeedbackSettings
from coaching_shared.contracts import CheckInDue
from coaching_shared.contracts.examples import EXAMPLES
from coaching_shared.events import topic_name, utc_now
from coaching_shared.mongo import chunks
from pymongo import AsyncMongoClient, UpdateOne
from support.processes import ServiceProcess

from bench.context import Bench
from bench.measure import RAW_CLAIM_AND_PRODUCE, SCHEDULER, Result, Window
from bench.progress import create_topics
from bench.scenarios.raw import producer
from bench.scenarios.services import peak_rss_mb
from bench.workload import PARTITIONS, TENANT

# FerretDB 1.24 (SQLite) stops answering a bulk write of 100 or more updates: stay below.
CLAIM_BATCH = 99
# Due documents read per query (the scheduler's default batch).
READ_BATCH = 500
SEED_BATCH = 1000
_DUE_TYPE = CheckInDue.ce_type().encode()
_DUE_DATA = next(e for e in EXAMPLES if isinstance(e, CheckInDue)).model_dump(mode="json")


def due_schedules(count: int, planned_at: datetime) -> list[dict[str, Any]]:
    """`count` active weekly schedules (one goal per client), all due at the same slot.

    The documents are what the GoalSet handler stores (under the same keys), planned a week and
    a day ago so their first check-in has fallen due.
    """
    plan = FeedbackSettings().default_plan("Europe/Berlin")
    stored_plan = plan.model_dump(mode="json")
    due_at = first_due(plan, planned_at, planned_at.date())
    return [{**schedule_key(TENANT, f"goal-{index:07d}"),
             "client_id": f"client-{index:07d}", "coach_id": "coach-0001",
             "title": "Lead the quarterly planning", "goal_start": planned_at.date().isoformat(),
             "goal_due": (planned_at + timedelta(days=90)).date().isoformat(), "kpis": [],
             "status": ACTIVE, "plan": stored_plan, "plan_source": "default",
             "planned_at": planned_at, "origin_at": due_at, "previous_due_at": None,
             "next_period": 1, "next_due_at": due_at,
             "next_review_at": month_start_after(utc_now(), plan.timezone),
             "lease_until": NO_LEASE, "revision": 0, "applied_events": [f"seed-{index}"]}
            for index in range(count)]


async def seed(mongodb_url: str, database: str, count: int) -> int:
    """Write the due schedules into `database` through the feedback repository's collection."""
    client = AsyncMongoClient(mongodb_url, tz_aware=True)
    try:
        repository = FeedbackRepository(client[database])
        documents = due_schedules(count, utc_now() - timedelta(days=8))
        for start in range(0, count, SEED_BATCH):
            await repository.schedules.insert_many(documents[start:start + SEED_BATCH],
                                                   ordered=False)
        return count
    finally:
        await client.close()


def due_record(schedule: dict[str, Any]) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """A CheckInDue-shaped record for one schedule (key, JSON body, type header)."""
    body = {**_DUE_DATA, "tenant_id": schedule["tenant_id"], "client_id": schedule["client_id"],
            "goal_id": schedule["goal_id"], "period": schedule["next_period"],
            "checkin_id": f"{schedule['goal_id']}-{schedule['next_period']}",
            "due_at": schedule["next_due_at"].isoformat()}
    return (schedule["client_id"].encode(), json.dumps(body).encode(),
            [("ce_type", _DUE_TYPE), ("ce_id", body["checkin_id"].encode())])


async def raw_claim_and_produce(bench: Bench, count: int) -> Result:
    """Due documents read in batches; per batch one bulk claim, pipelined sends, one flush."""
    database = bench.database("raw_scheduler")
    await seed(bench.mongodb_url, database, count)
    out_topic = bench.topic("raw-scheduler.out")
    await create_topics(bench.bootstrap, [out_topic], PARTITIONS)
    client = AsyncMongoClient(bench.mongodb_url, tz_aware=True)
    kafka = producer(bench)
    await kafka.start()
    try:
        schedules = FeedbackRepository(client[database]).schedules
        now = utc_now()
        claimable = {"status": ACTIVE, "next_due_at": {"$lte": now},
                     "lease_until": {"$lte": now}}
        claimed = 0
        after = ""
        started = time.perf_counter()
        # A batch is read in full before it is claimed: FerretDB on SQLite blocks a write
        # while a cursor of the same database is open. Each read resumes after the greatest
        # key of the previous one (through the _id index), as the scheduler's rounds do.
        while time.perf_counter() - started < bench.cap_seconds:
            batch = await schedules.find({**claimable, "_id": {"$gt": after}}
                                         ).limit(READ_BATCH).to_list()
            if not batch:
                break
            after = max(schedule["_id"] for schedule in batch)
            for part in chunks(batch, CLAIM_BATCH):
                claimed += await _claim_and_send(schedules, kafka, out_topic, part, now)
        seconds = time.perf_counter() - started
    finally:
        await kafka.stop()
        await client.close()
    return Result.of(RAW_CLAIM_AND_PRODUCE, Window(claimed, seconds, complete=claimed >= count),
                     note=f"find x{READ_BATCH} after the last key, bulk claims x{CLAIM_BATCH}, "
                     "pipelined sends", seeded=count)


async def _claim_and_send(schedules, kafka, topic: str, batch: list[dict[str, Any]],
                          now: datetime) -> int:
    if not batch:
        return 0
    await schedules.bulk_write([UpdateOne({"_id": s["_id"]}, {"$set": {
        "lease_owner": "raw", "lease_until": now + timedelta(seconds=30)}}) for s in batch],
        ordered=False)
    pending = []
    for schedule in batch:
        key, value, headers = due_record(schedule)
        pending.append(await kafka.send(topic, value, key=key, headers=headers))
    await asyncio.gather(*pending)
    return len(batch)


async def scheduler_run(bench: Bench, count: int, log_dir: Path) -> Result:
    """The feedback service as a process on the seeded schedules, until every one is out."""
    database = bench.database("feedback_scheduler")
    prefix = f"{bench.prefix}sched."
    await seed(bench.mongodb_url, database, count)
    topic = topic_name(CheckInDue.stream, prefix)
    await create_topics(bench.bootstrap, [topic], PARTITIONS)
    process = ServiceProcess("feedback", {
        "KAFKA_BOOTSTRAP_SERVERS": bench.bootstrap, "MONGODB_URL": bench.mongodb_url,
        "TOPIC_PREFIX": prefix, "MONGODB_DATABASE": database, "LOG_LEVEL": "WARNING"}, log_dir)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bench.bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    seen: set[bytes] = set()
    records = 0
    try:
        started = time.perf_counter()
        process.start()
        deadline = started + bench.cap_seconds
        while len(seen) < count and time.perf_counter() < deadline:
            if not process.process.running():
                raise RuntimeError(f"the feedback service exited; see {log_dir}")
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for record in (r for batch in batches.values() for r in batch):
                headers = dict(record.headers)
                if headers.get("ce_type") == _DUE_TYPE:
                    records += 1
                    seen.add(headers["ce_id"])
        seconds = time.perf_counter() - started
        rss = peak_rss_mb(process.process.pid)
    finally:
        await consumer.stop()
        await asyncio.to_thread(process.stop)
    return Result.of(SCHEDULER, Window(len(seen), seconds, complete=len(seen) >= count),
                     reference=RAW_CLAIM_AND_PRODUCE,
                     note="process start to the last distinct CheckInDue on the topic",
                     seeded=count, duplicates=records - len(seen), peak_rss_mb=rss)
