"""The delivery rules of the shared core, proven against the real broker and database.

- a redelivered event is applied once;
- a handler that keeps failing sends the event to the dead-letter topic after the retries,
  with the reason in headers, and the consumer carries on;
- a message that is not a valid event is dead-lettered at once;
- an event written to the outbox survives a crash between the write and the publish;
- the sweep of a collection with a publish-once ledger leaves a live writer's entries to it
  and takes over a dead writer's, publishing each entry once;
- a consumer killed before acknowledging gets the event again.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from coaching_shared.events import dead_letter_topic, topic_name
from coaching_shared.messaging import EventContext, EventPublisher, create_broker
from coaching_shared.mongo import (
    DEFAULT_OUTBOX_LEASE,
    apply_once,
    configure_outbox_lease,
    ensure_indexes,
    outbox_index,
)
from coaching_shared.outbox import OutboxRelay
from coaching_shared.outbox_batch import PublishOnce
from faststream.kafka import KafkaBroker
from support.kafka_tools import TopicReader, eventually, headers_of, publish_events, publish_raw
from support.probe import (
    TALLIES,
    TALLY_INDEX,
    TallyRecorded,
    probe_settings,
    running_consumer,
    tally,
    wait_assigned,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(infra, prefix, database_name):
    return probe_settings(infra.kafka_bootstrap_servers, infra.mongodb_url, prefix,
                          database_name, handler_retries=2)


def count_into(db):
    """A handler that adds the event's amount to the client's tally, once per event."""

    async def handler(event: TallyRecorded, context: EventContext) -> None:
        await apply_once(db[TALLIES], {"tenant_id": event.tenant_id,
                                       "client_id": event.client_id},
                         context.message.id, {"$inc": {"count": event.amount}})

    return handler


async def test_redelivered_event_is_applied_once(settings, infra, mongo, prefix):
    db = mongo[settings.database_name]
    event = TallyRecorded(tenant_id="acme", client_id="c-1", amount=5)
    other = TallyRecorded(tenant_id="acme", client_id="c-1", amount=1)
    async with running_consumer(settings, count_into(db)):
        # The same event (same ce_id) three times, as a producer retry or replay would send it.
        await publish_events(infra.kafka_bootstrap_servers, prefix, [event, event, event, other],
                             ids=["evt-1", "evt-1", "evt-1", "evt-2"])

        async def applied():
            doc = await db[TALLIES].find_one({"tenant_id": "acme", "client_id": "c-1"})
            return doc if doc and doc.get("count", 0) >= 6 else None

        await eventually(applied)
        await asyncio.sleep(1.0)  # let the duplicates be consumed too
    doc = await db[TALLIES].find_one({"tenant_id": "acme", "client_id": "c-1"})
    assert doc["count"] == 6
    assert doc["applied_events"] == ["evt-1", "evt-2"]


async def test_apply_once_reports_duplicates(mongo, database_name):
    db = mongo[database_name]
    await ensure_indexes(db, [TALLY_INDEX])
    key = {"tenant_id": "acme", "client_id": "c-9"}
    first = await apply_once(db[TALLIES], key, "cause-1", {"$inc": {"count": 1}})
    again = await apply_once(db[TALLIES], key, "cause-1", {"$inc": {"count": 1}})
    other = await apply_once(db[TALLIES], key, "cause-2", {"$inc": {"count": 1}})
    assert first["count"] == 1
    assert again is None
    assert other["count"] == 2


async def test_failing_handler_dead_letters_after_retries_and_consumer_carries_on(
        settings, infra, mongo, prefix):
    db = mongo[settings.database_name]
    attempts: dict[str, int] = {}
    counting = count_into(db)

    async def handler(event: TallyRecorded, context: EventContext) -> None:
        attempts[event.client_id] = attempts.get(event.client_id, 0) + 1
        if event.client_id == "poison":
            raise RuntimeError("tally service cannot count poison")
        await counting(event, context)

    async with running_consumer(settings, handler):
        sent = await publish_events(
            infra.kafka_bootstrap_servers, prefix,
            [TallyRecorded(tenant_id="acme", client_id="poison"),
             TallyRecorded(tenant_id="acme", client_id="healthy")])
        async with TopicReader(infra.kafka_bootstrap_servers,
                               dead_letter_topic("probe", prefix)) as dlq:
            records = await dlq.until(lambda r: len(r) >= 1)

        async def healthy_counted():
            return await db[TALLIES].find_one({"client_id": "healthy", "count": 1})

        await eventually(healthy_counted)

    assert attempts["poison"] == settings.handler_retries + 1
    assert attempts["healthy"] == 1
    assert len(records) == 1
    headers = headers_of(records[0])
    assert headers["ce_id"] == sent[0].id
    assert headers["dlq_reason"] == "tally service cannot count poison"
    assert headers["dlq_error_type"] == "RuntimeError"
    assert headers["dlq_original_topic"] == topic_name("probe", prefix)
    assert headers["dlq_attempts"] == str(settings.handler_retries + 1)
    assert records[0].key == b"poison"
    assert records[0].value == sent[0].body()


async def test_invalid_messages_are_dead_lettered_at_once(settings, infra, mongo, prefix):
    db = mongo[settings.database_name]
    topic = topic_name("probe", prefix)
    good = TallyRecorded(tenant_id="acme", client_id="fine")
    async with running_consumer(settings, count_into(db)):
        headers = tally(good).headers()
        await publish_raw(infra.kafka_bootstrap_servers, topic, b"{not json", b"x",
                          {**headers, "ce_id": "bad-json"})
        await publish_raw(infra.kafka_bootstrap_servers, topic,
                          b'{"tenant_id": "acme", "client_id": "fine", "amount": "many"}',
                          b"fine", {**headers, "ce_id": "bad-field"})
        await publish_raw(infra.kafka_bootstrap_servers, topic, b"{}", None,
                          {"content-type": "application/json"})
        await publish_events(infra.kafka_bootstrap_servers, prefix, [good])
        async with TopicReader(infra.kafka_bootstrap_servers,
                               dead_letter_topic("probe", prefix)) as dlq:
            records = await dlq.until(lambda r: len(r) >= 3)

        async def counted():
            return await db[TALLIES].find_one({"client_id": "fine", "count": 1})

        await eventually(counted)
    reasons = {headers_of(r).get("ce_id", "(none)"): headers_of(r)["dlq_reason"]
               for r in records}
    assert "body is not JSON" in reasons["bad-json"]
    assert "amount" in reasons["bad-field"]
    assert "missing CloudEvents header" in reasons["(none)"]
    assert all(headers_of(r)["dlq_attempts"] == "0" for r in records)


async def _started_broker(settings) -> KafkaBroker:
    broker = create_broker(settings)
    await broker.start()
    return broker


async def test_outbox_event_survives_crash_between_write_and_publish(settings, infra, mongo,
                                                                     prefix):
    db = mongo[settings.database_name]
    await ensure_indexes(db, [TALLY_INDEX, outbox_index(TALLIES)])
    outgoing = tally(TallyRecorded(tenant_id="acme", client_id="c-7", amount=3))
    # The state change and its event land in one write; then the writer "crashes": it never
    # gets to publish. A short lease lets the sweep take over quickly.
    configure_outbox_lease(timedelta(seconds=0.5))
    try:
        await apply_once(db[TALLIES], {"tenant_id": "acme", "client_id": "c-7"}, "cause-7",
                         {"$inc": {"count": 3}}, outbox=[outgoing])
    finally:
        configure_outbox_lease(DEFAULT_OUTBOX_LEASE)

    # A restarted service: new broker, new relay over the same collection.
    broker = await _started_broker(settings)
    relay = OutboxRelay(EventPublisher(broker, prefix), [db[TALLIES]], sweep_interval=0.2)
    relay.start()
    try:
        async with TopicReader(infra.kafka_bootstrap_servers, outgoing.topic(prefix)) as reader:
            records = await reader.until(lambda r: len(r) >= 1, timeout=20)
            await reader.settle(1.5)  # several more sweeps: nothing is published twice

            async def cleared():
                doc = await db[TALLIES].find_one({"client_id": "c-7"})
                return doc if doc.get("outbox_pending") is False else None

            doc = await eventually(cleared)
    finally:
        await relay.stop()
        await broker.stop()
    assert len(reader.records) == 1
    headers = headers_of(records[0])
    assert headers["ce_id"] == outgoing.id
    assert headers["ce_type"] == "coaching.TallyRecorded.v1"
    assert headers["ce_tenant"] == "acme"
    assert records[0].key == b"c-7"
    assert doc["outbox"] == []
    assert doc["count"] == 3


async def test_the_sweep_goes_through_the_writers_publish_once_ledger(settings, infra, mongo,
                                                                   prefix):
    db = mongo[settings.database_name]
    ledger = PublishOnce(db["published_events"])
    await ensure_indexes(db, [TALLY_INDEX, outbox_index(TALLIES),
                              *PublishOnce.indexes("published_events")])
    marked, dead, never, live = [
        tally(TallyRecorded(tenant_id="acme", client_id="c-9", amount=n)) for n in range(1, 5)]
    lease = timedelta(seconds=0.6)
    configure_outbox_lease(lease)
    try:
        await apply_once(db[TALLIES], {"tenant_id": "acme", "client_id": "c-9"}, "cause-9",
                         {"$inc": {"count": 10}}, outbox=[marked, dead, never, live])
    finally:
        configure_outbox_lease(DEFAULT_OUTBOX_LEASE)
    # A writer admitted three entries, published the first and died before clearing any.
    await ledger.admit([marked, dead])
    await ledger.published([marked])
    await asyncio.sleep(lease.total_seconds() + 0.1)
    # Another writer has just admitted the last one and is publishing it right now.
    await ledger.admit([live])

    broker = await _started_broker(settings)
    relay = OutboxRelay(EventPublisher(broker, prefix), [db[TALLIES]], lease=lease,
                        ledgers={TALLIES: ledger})
    try:
        async with TopicReader(infra.kafka_bootstrap_servers, marked.topic(prefix)) as reader:
            assert await relay.sweep_once() == 1
            await reader.until(lambda records: len(records) >= 2, timeout=20)
            document = await db[TALLIES].find_one({"client_id": "c-9"})
            # The published one is cleared without a second copy; the live writer's stays.
            assert [entry["id"] for entry in document["outbox"]] == [live.id]
            assert document["outbox_pending"] is True

            # That writer never comes back: once its admission is a lease old, it is taken.
            await asyncio.sleep(lease.total_seconds() + 0.1)
            assert await relay.sweep_once() == 1
            await reader.until(lambda records: len(records) >= 3, timeout=20)
            assert await relay.sweep_once() == 0
            await reader.settle(1)
    finally:
        await broker.stop()
    assert sorted(headers_of(record)["ce_id"] for record in reader.records) == sorted(
        [dead.id, never.id, live.id])
    document = await db[TALLIES].find_one({"client_id": "c-9"})
    assert document["outbox"] == [] and document["outbox_pending"] is False
    marks = await db["published_events"].count_documents(
        {"event_id": {"$in": [f"published|{m.id}" for m in (marked, dead, never, live)]}})
    assert marks == 4


async def test_writer_publishes_its_outbox_at_once(settings, infra, mongo, prefix):
    db = mongo[settings.database_name]
    await ensure_indexes(db, [TALLY_INDEX, outbox_index(TALLIES)])
    broker = await _started_broker(settings)
    relay = OutboxRelay(EventPublisher(broker, prefix), [db[TALLIES]], sweep_interval=0.2,
                        lease=timedelta(seconds=0.3))
    relay.start()
    events = [tally(TallyRecorded(tenant_id="acme", client_id="c-8", amount=n))
              for n in range(1, 4)]
    try:
        document = await apply_once(db[TALLIES], {"tenant_id": "acme", "client_id": "c-8"},
                                    "cause-8", {"$inc": {"count": 6}}, outbox=events)
        await relay.relay_document(db[TALLIES], document)
        async with TopicReader(infra.kafka_bootstrap_servers, events[0].topic(prefix)) as r:
            await r.until(lambda recs: len(recs) >= 3)
            await r.settle(1.5)
    finally:
        await relay.stop()
        await broker.stop()
    assert [headers_of(rec)["ce_id"] for rec in r.records] == [e.id for e in events]
    doc = await db[TALLIES].find_one({"client_id": "c-8"})
    assert doc["outbox"] == [] and doc["outbox_pending"] is False


async def test_consumer_killed_before_ack_gets_the_event_again(settings, infra, mongo, prefix,
                                                                tmp_path):
    db = mongo[settings.database_name]
    script = Path(__file__).parent / "support" / "stuck_consumer.py"
    with (tmp_path / "stuck.log").open("wb") as log:
        stuck = subprocess.Popen([sys.executable, str(script), infra.kafka_bootstrap_servers,
                                  infra.mongodb_url, prefix, settings.database_name],
                                 stdout=log, stderr=subprocess.STDOUT)
    try:
        sent = await publish_events(infra.kafka_bootstrap_servers, prefix,
                                    [TallyRecorded(tenant_id="acme", client_id="c-5")])

        async def started():
            return await db["started"].find_one({"event_id": sent[0].id})

        await eventually(started, timeout=60)
    finally:
        stuck.kill()  # SIGKILL: no commit, no leave-group
        stuck.wait()

    async with running_consumer(settings, count_into(db)) as (consumer, _):
        await wait_assigned(consumer, timeout=60)

        async def counted():
            return await db[TALLIES].find_one({"client_id": "c-5", "count": 1})

        doc = await eventually(counted, timeout=60)
    assert doc["applied_events"] == [sent[0].id]
