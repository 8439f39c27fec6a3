"""The durable check-in scheduler on real Kafka and FerretDB: once per goal and period.

Several replicas (in-process apps sharing database, topics and a fixed clock), restarts,
a replica that dies holding claims, and cadence changes mid-period; the proof is the count
of CheckInDue records on the real topic.
"""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

import pytest
from coaching_feedback.app import create_app
from coaching_feedback.clock import FixedClock
from coaching_feedback.repository import ACTIVE
from support.inprocess import bearer, running_service
from support.kafka_tools import TopicReader, eventually, headers_of, publish_events
from test_feedback_checkins import (
    MONDAY_JUNE_8,
    TENANT,
    enrolment,
    feedback_settings,
    goal_set,
)

pytestmark = pytest.mark.integration

WEEK = timedelta(weeks=1)


def due_records(records) -> list[dict]:
    return [json.loads(r.value) for r in records
            if headers_of(r)["ce_type"] == "coaching.CheckInDue.v1"]


async def plan_goals(infra, prefix, db, count: int) -> None:
    clients = [f"c-{number:03d}" for number in range(count)]
    # Enrolled first, so every goal is planned in the client's timezone from the start.
    await publish_events(infra.kafka_bootstrap_servers, prefix, [enrolment(c) for c in clients])

    async def all_enrolled():
        return await db.checkin_preferences.count_documents({}) == count

    await eventually(all_enrolled, timeout=60)
    await publish_events(infra.kafka_bootstrap_servers, prefix,
                         [goal_set(c, f"g-{c}") for c in clients])

    async def all_planned():
        return await db.checkin_schedules.count_documents({"status": ACTIVE}) == count

    await eventually(all_planned, timeout=60)


async def test_two_replicas_and_restarts_publish_each_due_check_in_once(infra, prefix, mongo):
    clock = FixedClock(datetime(2026, 6, 3, 12, tzinfo=UTC))
    # Small batches and short leases make the replicas interleave and take over from each
    # other, and their outbox sweeps look at the schedules while rounds are relaying them.
    settings = feedback_settings(infra, prefix, scheduler_batch_size=7,
                                 scheduler_lease_seconds=2, outbox_lease_seconds=2)
    db = mongo[settings.database_name]
    goals = 60

    def app(s):
        return create_app(s, clock)

    async with AsyncExitStack() as replicas, \
            TopicReader(infra.kafka_bootstrap_servers, f"{prefix}coaching.feedback") as topic:
        replica_b = await replicas.enter_async_context(running_service(app, settings))
        replica_a = AsyncExitStack()
        await replica_a.enter_async_context(running_service(app, settings))
        await plan_goals(infra, prefix, db, goals)

        # A replica dies holding claims on some due schedules: after its lease, others finish.
        clock.set(MONDAY_JUNE_8 + timedelta(minutes=1))
        repository = replica_b.app.state.feedback_repository
        crashed = await repository.claim(
            repository.schedules, {"status": ACTIVE, "next_due_at": {"$lte": clock.now()}},
            "crashed-replica", timedelta(seconds=2), 10)
        assert crashed, "the dead replica should have claimed something"
        await topic.until(lambda records: len(due_records(records)) >= goals, timeout=60)

        # Week two falls due while replica A restarts.
        await replica_a.aclose()
        clock.advance(WEEK)
        replica_a = AsyncExitStack()
        await replica_a.enter_async_context(running_service(app, settings))
        await topic.until(lambda records: len(due_records(records)) >= 2 * goals, timeout=60)

        # Week three with both replicas up, competing for the same batches.
        clock.advance(WEEK)
        await topic.until(lambda records: len(due_records(records)) >= 3 * goals, timeout=60)
        await topic.settle(3)
        await replica_a.aclose()

    # Each check-in falls due under one event id, whichever replica published it, so readers
    # apply it once. The sweeps go through the rounds' publish-once ledger; the same id can
    # still reach the topic twice if a replica stops between publishing and marking it
    # published (at-least-once on the wire, README "Event rules").
    ids_of: dict[tuple[str, int], set[str]] = {}
    for record in topic.records:
        if headers_of(record)["ce_type"] == "coaching.CheckInDue.v1":
            due = json.loads(record.value)
            ids_of.setdefault((due["goal_id"], due["period"]), set()).add(
                headers_of(record)["ce_id"])
    assert len(ids_of) == 3 * goals
    assert all(len(ids) == 1 for ids in ids_of.values()), [
        due for due, ids in ids_of.items() if len(ids) > 1][:5]


async def test_a_restart_catches_up_on_what_fell_due_meanwhile(infra, prefix, mongo):
    clock = FixedClock(datetime(2026, 6, 3, 12, tzinfo=UTC))
    settings = feedback_settings(infra, prefix)
    db = mongo[settings.database_name]
    async with TopicReader(infra.kafka_bootstrap_servers, f"{prefix}coaching.feedback") as topic:
        async with running_service(lambda s: create_app(s, clock), settings):
            await plan_goals(infra, prefix, db, 5)
        # The service is down for three weeks and a bit.
        clock.set(MONDAY_JUNE_8 + 2 * WEEK + timedelta(days=2))
        async with running_service(lambda s: create_app(s, clock), settings):
            await topic.until(lambda records: len(due_records(records)) >= 15)
            await topic.settle(2)
    due = due_records(topic.records)
    assert len(due) == 15
    assert sorted({(d["period"], d["due_at"]) for d in due}) == [
        (1, "2026-06-08T07:00:00Z"), (2, "2026-06-15T07:00:00Z"), (3, "2026-06-22T07:00:00Z")]
    schedule = await db.checkin_schedules.find_one({"goal_id": "g-c-000"})
    assert schedule["next_period"] == 4
    assert schedule["next_due_at"] == datetime(2026, 6, 29, 7, tzinfo=UTC)


async def test_a_cadence_change_mid_period_neither_duplicates_nor_drops(infra, prefix):
    clock = FixedClock(datetime(2026, 6, 3, 12, tzinfo=UTC))
    # The test runs the sweeps itself, so it decides what happens between them.
    settings = feedback_settings(infra, prefix, scheduler_enabled=False)
    token = bearer(TENANT, "c-1", "client")
    async with running_service(lambda s: create_app(s, clock), settings) as client, \
            TopicReader(infra.kafka_bootstrap_servers, f"{prefix}coaching.feedback") as topic:
        scheduler = client.app.state.scheduler
        await publish_events(infra.kafka_bootstrap_servers, prefix,
                             [enrolment("c-1"), goal_set("c-1", "g-1")])

        async def planned():
            response = await client.get("/v1/goals/g-1/schedule", headers=token)
            return response.status_code == 200

        await eventually(planned)

        async def change(plan: dict) -> dict:
            response = await client.put("/v1/goals/g-1/schedule", headers=token, json={
                "timezone": "Europe/Berlin", "weekday": 0, "hour": 9, **plan})
            assert response.status_code == 200, response.text
            return response.json()

        clock.set(MONDAY_JUNE_8 + timedelta(minutes=30))
        assert await scheduler.publish_due_checkins() == 1                        # period 1, 8 June
        clock.set(datetime(2026, 6, 10, 12, tzinfo=UTC))              # Wednesday
        moved = await change({"cadence": "biweekly"})
        assert moved["next_period"] == 2
        assert moved["next_due_at"].startswith("2026-06-22T07:00")
        clock.set(datetime(2026, 6, 15, 8, tzinfo=UTC))               # the old weekly slot
        assert await scheduler.publish_due_checkins() == 0
        clock.set(datetime(2026, 6, 22, 7, 30, tzinfo=UTC))           # period 2 is due ...
        kept = await change({"cadence": "every_n_days", "every_days": 2})
        assert kept["next_due_at"].startswith("2026-06-22T07:00")    # ... and keeps its time
        assert await scheduler.publish_due_checkins() == 1
        assert await scheduler.publish_due_checkins() == 0                        # nothing twice
        clock.set(datetime(2026, 6, 24, 8, tzinfo=UTC))
        assert await scheduler.publish_due_checkins() == 1                        # two days later
        await topic.until(lambda records: len(due_records(records)) >= 3)
        await topic.settle(1.5)
    assert [(d["period"], d["due_at"]) for d in due_records(topic.records)] == [
        (1, "2026-06-08T07:00:00Z"), (2, "2026-06-22T07:00:00Z"), (3, "2026-06-24T07:00:00Z")]


async def test_schedules_are_private_and_plans_are_validated(infra, prefix):
    clock = FixedClock(datetime(2026, 6, 3, 12, tzinfo=UTC))
    settings = feedback_settings(infra, prefix, scheduler_enabled=False)
    async with running_service(lambda s: create_app(s, clock), settings) as client:
        await publish_events(infra.kafka_bootstrap_servers, prefix,
                             [enrolment("c-1"), goal_set("c-1", "g-1")])
        token = bearer(TENANT, "c-1", "client")

        async def planned():
            return (await client.get("/v1/goals/g-1/schedule", headers=token)).status_code == 200

        await eventually(planned)
        invalid = await client.put("/v1/goals/g-1/schedule", headers=token,
                                   json={"cadence": "every_n_days", "timezone": "Nowhere/X"})
        assert invalid.status_code == 422
        assert invalid.headers["content-type"] == "application/problem+json"
        fields = {error["field"] for error in invalid.json()["errors"]}
        assert any("timezone" in field for field in fields)
        stranger = await client.put("/v1/goals/g-1/schedule", json={"cadence": "weekly"},
                                    headers=bearer(TENANT, "coach-2", "coach"))
        assert stranger.status_code == 404
        # Holidays as skip windows on the client's preferences move the active goal too.
        preferences = await client.put("/v1/clients/c-1/checkin-preferences", headers=token,
                                       json={"timezone": "Europe/Berlin", "weekday": 0,
                                             "hour": 9, "skip_windows": [
                                                 {"start": "2026-06-08", "end": "2026-06-14",
                                                  "label": "holiday"}]})
        assert preferences.status_code == 200, preferences.text
        assert preferences.json()["schedules"][0]["next_due_at"].startswith("2026-06-15")


async def test_a_goal_planned_before_the_enrolment_moves_to_the_clients_timezone(infra, prefix):
    clock = FixedClock(datetime(2026, 6, 3, 12, tzinfo=UTC))
    settings = feedback_settings(infra, prefix, scheduler_enabled=False)
    token = bearer(TENANT, "c-9", "client")
    async with running_service(lambda s: create_app(s, clock), settings) as client:
        # The goals stream overtook the enrolment stream: the timezone is not known yet.
        await publish_events(infra.kafka_bootstrap_servers, prefix, [goal_set("c-9", "g-9")])

        async def due_at(expected: str):
            response = await client.get("/v1/goals/g-9/schedule", headers=token)
            return response.status_code == 200 and response.json()["next_due_at"] == expected

        await eventually(lambda: due_at("2026-06-08T09:00:00Z"))
        await publish_events(infra.kafka_bootstrap_servers, prefix, [enrolment("c-9")])
        await eventually(lambda: due_at("2026-06-08T07:00:00Z"))
