"""Batch handling keeps the delivery rules, proven against the real broker and database.

A consumed batch is applied in waves (each client's first event, then each client's second,
...): a type with a batch handler gets a wave's events of that type in one call, and its
writes go through `apply_each_once` (a few round trips for all of them). The rules still
hold: each event applied once, each client's events in order, a bad event dead-lettered
alone while the rest of its batch is applied, erased clients' events dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import pytest
from coaching_shared.contracts import ClientEnrolled, ClientOffboarded, CoachAssigned, CoachContact
from coaching_shared.events import EventMessage, dead_letter_topic, utc_now
from coaching_shared.membership import ROSTER, Admission, Membership, member_key
from coaching_shared.messaging import EventContext
from coaching_shared.mongo import (
    APPLIED_EVENTS_KEPT,
    APPLIED_TRIM_SLACK,
    Change,
    apply_each_once,
    clear_outboxes,
    keyed,
)
from support.kafka_tools import TopicReader, eventually, headers_of, publish_events
from support.probe import TALLIES, TallyRecorded, probe_settings, running_consumer

pytestmark = pytest.mark.integration


def tally_key(client_id: str) -> dict[str, str]:
    return keyed(tenant_id="acme", client_id=client_id)


async def test_apply_each_once_creates_updates_and_refuses_duplicates(mongo, database_name):
    tallies = mongo[database_name][TALLIES]
    message = EventMessage.wrap(TallyRecorded(tenant_id="acme", client_id="c-1"), "/tests")
    first = await apply_each_once(tallies, [
        Change(tally_key("c-1"), "e-1", {"$set": {"label": "one"}}, outbox=[message]),
        Change(tally_key("c-2"), "e-2", {"$set": {"label": "two"},
                                         "$setOnInsert": {"created": True}}),
        Change(tally_key("c-3"), "e-3", {"$inc": {"count": 3}})])
    assert [written is not None for written in first] == [True, True, True]
    assert first[0]["outbox"][0]["id"] == message.id
    again = await apply_each_once(tallies, [
        Change(tally_key("c-1"), "e-1", {"$set": {"label": "changed"}}),
        Change(tally_key("c-2"), "e-4", {"$set": {"label": "second"},
                                         "$setOnInsert": {"created": False}}),
        Change(tally_key("c-3"), "e-5", {"$inc": {"count": 4}}),
        Change(tally_key("c-4"), "e-6", {"$set": {"label": "absent"}})], create=False)
    assert [written is not None for written in again] == [False, True, True, False]
    stored = {document["client_id"]: document
              for document in await tallies.find({}).to_list()}
    assert sorted(stored) == ["c-1", "c-2", "c-3"]
    assert stored["c-1"]["label"] == "one" and stored["c-1"]["outbox_pending"] is True
    assert stored["c-1"]["applied_events"] == ["e-1"]
    assert stored["c-2"]["label"] == "second" and stored["c-2"]["created"] is True
    assert stored["c-2"]["applied_events"] == ["e-2", "e-4"]
    assert stored["c-3"]["count"] == 7
    with pytest.raises(ValueError):
        await apply_each_once(tallies, [Change(tally_key("c-1"), "x", {"$set": {}}),
                                        Change(tally_key("c-1"), "y", {"$set": {}})])


async def test_apply_each_once_keeps_the_applied_list_bounded(mongo, database_name):
    tallies = mongo[database_name][TALLIES]
    full = [f"old-{number}" for number in range(APPLIED_EVENTS_KEPT + APPLIED_TRIM_SLACK)]
    await tallies.insert_one({**tally_key("c-1"), "count": 0, "applied_events": full})
    await apply_each_once(tallies, [Change(tally_key("c-1"), "new", {"$inc": {"count": 1}})])
    stored = await tallies.find_one(tally_key("c-1"))
    assert stored["count"] == 1
    assert len(stored["applied_events"]) == APPLIED_EVENTS_KEPT
    assert stored["applied_events"][-1] == "new"


def enrolled(client_id: str, coach_id: str | None = "coach-1") -> ClientEnrolled:
    coach = CoachContact(coach_id=coach_id, display_name="Grace",
                         email="g@example.com") if coach_id else None
    return ClientEnrolled(tenant_id="acme", client_id=client_id, program_id="leaders",
                          display_name="Ada", email=f"{client_id}@example.com", coach=coach)


async def test_admitting_many_keeps_the_roster_and_honours_tombstones(mongo, database_name):
    db = mongo[database_name]
    membership = Membership(db, [TALLIES])
    now = utc_now()
    await membership.admit(enrolled("gone"), "enrol-gone", now - timedelta(days=3))
    await membership.admit(enrolled("back"), "enrol-back", now - timedelta(days=3))
    await membership.admit(ClientOffboarded(tenant_id="acme", client_id="gone"), "off-gone",
                           now - timedelta(days=2))
    await membership.admit(ClientOffboarded(tenant_id="acme", client_id="back"), "off-back",
                           now - timedelta(days=2))
    verdicts = await membership.admit_many([
        Admission(enrolled("new", "coach-7"), "enrol-new", now),
        Admission(TallyRecorded(tenant_id="acme", client_id="gone"), "tally-gone", now),
        Admission(enrolled("back", "coach-2"), "enrol-back-again", now),
        Admission(enrolled("old"), "enrol-old", now)])
    assert verdicts == [True, False, True, True]
    assert await membership.coach_of("acme", "new") == "coach-7"
    assert await membership.coach_of("acme", "back") == "coach-2"
    assert await membership.coach_of("acme", "gone") is None
    # A replayed enrolment older than the offboarding does not lift the tombstone.
    assert await membership.admit_many([
        Admission(enrolled("gone"), "enrol-gone", now - timedelta(days=3)),
        Admission(CoachAssigned(tenant_id="acme", client_id="old", coach=CoachContact(
            coach_id="coach-3", display_name="Alan", email="a@example.com")), "assign", now),
    ]) == [False, True]
    assert await membership.coach_of("acme", "old") == "coach-3"
    # Redelivered: nothing changes, the causes are recorded once.
    assert await membership.admit_many([Admission(enrolled("new", "coach-9"), "enrol-new",
                                                  now)]) == [True]
    roster = await db[ROSTER].find_one(member_key("acme", "new"))
    assert roster["coach_id"] == "coach-7" and roster["applied_events"] == ["enrol-new"]


def tally_batch(db, calls: list[int], poisoned: list[int], order: list[tuple[str, int]]):
    """A batch handler counting each event's amount into its client's tally, once per event;
    it refuses a whole wave that holds a poison event."""

    async def handle(events: Sequence[tuple[TallyRecorded, EventContext]]) -> None:
        calls.append(len(events))
        if any(event.client_id == "poison" for event, _ in events):
            poisoned.append(len(events))
            raise RuntimeError("a poison tally in the wave")
        order.extend((event.client_id, event.amount) for event, _ in events)
        await apply_each_once(db[TALLIES], [
            Change(tally_key(event.client_id), context.message.id,
                   {"$inc": {"count": event.amount}}) for event, context in events])

    return handle


def tally_one(db, order: list[tuple[str, int]]):
    async def handle(event: TallyRecorded, context: EventContext) -> None:
        if event.client_id == "poison":
            raise RuntimeError("tally service cannot count poison")
        order.append((event.client_id, event.amount))
        await apply_each_once(db[TALLIES], [Change(tally_key(event.client_id), context.message.id,
                                                   {"$inc": {"count": event.amount}})])

    return handle


async def test_a_batch_is_applied_in_waves_once_in_order_and_a_poison_event_alone(
        infra, mongo, prefix, database_name):
    settings = probe_settings(infra.kafka_bootstrap_servers, infra.mongodb_url, prefix,
                              database_name, handler_retries=1)
    db = mongo[database_name]
    # 30 clients with one tally each, one client with five in a row, one poison, and one
    # event delivered twice: all published before the consumer starts, so they come in one
    # fetched batch.
    events = [TallyRecorded(tenant_id="acme", client_id=f"c-{n:02d}", amount=n)
              for n in range(30)]
    events += [TallyRecorded(tenant_id="acme", client_id="steady", amount=step)
               for step in range(1, 6)]
    events.append(TallyRecorded(tenant_id="acme", client_id="poison"))
    events.append(events[3])
    ids = [f"evt-{n}" for n in range(len(events) - 1)] + ["evt-3"]
    sent = await publish_events(infra.kafka_bootstrap_servers, prefix, events, ids=ids)
    calls: list[int] = []
    poisoned: list[int] = []
    order: list[tuple[str, int]] = []
    async with running_consumer(settings, tally_one(db, order),
                                batch=tally_batch(db, calls, poisoned, order)), \
            TopicReader(infra.kafka_bootstrap_servers, dead_letter_topic("probe", prefix)) as dlq:
        dead = await dlq.until(lambda records: len(records) >= 1)

        async def all_counted():
            total = sum(document["count"] for document in await db[TALLIES].find().to_list())
            return total if total >= sum(range(30)) + 15 else None

        await eventually(all_counted)
        await asyncio.sleep(1.0)
    tallies = {document["client_id"]: document for document in await db[TALLIES].find().to_list()}
    assert {client: tallies[client]["count"] for client in tallies} == {
        **{f"c-{n:02d}": n for n in range(30)}, "steady": 15}
    assert [amount for client, amount in order if client == "steady"] == [1, 2, 3, 4, 5]
    assert len(dead) == 1 and headers_of(dead[0])["ce_id"] == sent[35].id
    assert headers_of(dead[0])["dlq_reason"] == "tally service cannot count poison"
    # The wave holding the poison event was refused as a whole and handled one by one
    # (its healthy events counted once all the same); other waves went together.
    assert poisoned and max(calls) > 1


async def test_clearing_outboxes_takes_out_only_the_published_entries(mongo, database_name):
    tallies = mongo[database_name][TALLIES]
    published, later = (EventMessage.wrap(TallyRecorded(tenant_id="acme", client_id="c-1"),
                                          "/tests").to_document() for _ in range(2))
    await tallies.insert_many([
        {**tally_key("just"), "outbox": [published], "outbox_pending": True},
        {**tally_key("more"), "outbox": [published, later], "outbox_pending": True}])
    await clear_outboxes(tallies, [(tally_key("just")["_id"], [published]),
                                   (tally_key("more")["_id"], [published])])
    just = await tallies.find_one(tally_key("just"))
    more = await tallies.find_one(tally_key("more"))
    assert just["outbox"] == [] and just["outbox_pending"] is False
    assert [entry["id"] for entry in more["outbox"]] == [later["id"]]
    assert more["outbox_pending"] is True
