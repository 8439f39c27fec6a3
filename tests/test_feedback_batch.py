"""The feedback service applies a consumed batch of enrolments and goals together.

Events published before the service starts arrive in one fetched batch; each wave's
`ClientEnrolled`, `GoalSet` and `CheckInDue` go to the batch handlers (a few round trips
for all of them) with the same effects as one by one: each event applied once, whatever the
duplicates, a client's events in order, a goal planned before its client's enrolment gets
the coach and the timezone later, and a check-in after a missed one is opened as such.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pytest
from coaching_feedback.app import create_app
from coaching_feedback.clock import FixedClock
from coaching_feedback.domain import checkin_id_for
from coaching_feedback.handlers import FeedbackHandlers
from coaching_feedback.repository import (
    CHECKINS,
    MISSED,
    PREFERENCES,
    SCHEDULES,
    FeedbackRepository,
    checkin_key,
)
from coaching_feedback.settings import FeedbackSettings
from coaching_shared.contracts import (
    CheckInDue,
    ClientEnrolled,
    CoachContact,
    Direction,
    GoalSet,
    KpiSpec,
)
from coaching_shared.events import Event, EventMessage
from coaching_shared.membership import Membership
from coaching_shared.messaging import EventContext
from support.inprocess import running_service, service_settings
from support.kafka_tools import eventually, publish_events

pytestmark = pytest.mark.integration

TENANT = "acme"
BERLIN = "Europe/Berlin"
CLOCK = datetime(2026, 6, 3, 12, tzinfo=UTC)
KPI = KpiSpec(kpi_id="delegated", name="Tasks delegated", baseline=0, target=10,
              direction=Direction.UP)


def enrolment(client_id: str, coach_id: str = "coach-1") -> ClientEnrolled:
    return ClientEnrolled(
        tenant_id=TENANT, client_id=client_id, program_id="leaders", display_name="Ada",
        email=f"{client_id}@example.com", timezone=BERLIN,
        coach=CoachContact(coach_id=coach_id, display_name="Grace", email="g@example.com"))


def goal(client_id: str, goal_id: str) -> GoalSet:
    return GoalSet(tenant_id=TENANT, client_id=client_id, goal_id=goal_id, title="Delegate",
                   start_date=date(2026, 6, 1), due_date=date(2026, 12, 1), kpis=[KPI])


def spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Record the size of every call of a batch handler; a failed call (whose events the
    consumer would then hand to the single handler) records a negative size."""
    sizes: list[int] = []
    original = getattr(FeedbackHandlers, name)

    async def recorded(self: FeedbackHandlers, events: Sequence[tuple[Event, object]]) -> None:
        try:
            await original(self, events)
        except Exception:
            sizes.append(-len(events))
            raise
        sizes.append(len(events))

    monkeypatch.setattr(FeedbackHandlers, name, recorded)
    return sizes


async def test_a_batch_of_enrolments_and_goals_is_applied_once_each(infra, prefix, mongo,
                                                                   monkeypatch):
    settings = service_settings(FeedbackSettings, infra, prefix,
                                scheduler_interval_seconds=0.2, scheduler_lease_seconds=3)
    db = mongo[settings.mongodb_database]
    schedules, preferences = db[SCHEDULES], db[PREFERENCES]
    enrolments = spy(monkeypatch, "client_enrolled_together")
    goals = spy(monkeypatch, "goal_set_together")
    # One client stated a plan of their own before (in Tokyo).
    tokyo = settings.default_plan("Asia/Tokyo").model_dump(mode="json")
    await FeedbackRepository(db).save_preferences(TENANT, "c-03", tokyo)

    # Round one: 12 enrolled clients with a goal each (c-00 with two), an enrolment and a
    # goal delivered twice, and 3 clients whose goals come before their enrolment.
    enrolled = [f"c-{n:02d}" for n in range(12)]
    early = [f"u-{n}" for n in range(3)]
    events: list[Event] = [enrolment(client) for client in enrolled]
    ids = [f"enrol-{client}" for client in enrolled]
    events += [goal(client, f"g-{client}") for client in [*enrolled, *early]]
    ids += [f"goal-{client}" for client in [*enrolled, *early]]
    events += [goal("c-00", "g-c-00-b"), events[1], events[13]]
    ids += ["goal-c-00-b", ids[1], ids[13]]
    await publish_events(infra.kafka_bootstrap_servers, prefix, events, ids=ids)
    async with running_service(lambda s: create_app(s, FixedClock(CLOCK)), settings):

        async def all_planned():
            found = await schedules.find().to_list()
            coached = [s for s in found if s["coach_id"] is not None
                       and s["plan"]["timezone"] != "UTC"]
            return found if len(found) == 16 and len(coached) == 13 else None

        await eventually(all_planned)
    stored = {s["goal_id"]: s for s in await schedules.find().to_list()}
    assert sorted(stored) == sorted([f"g-{c}" for c in [*enrolled, *early]] + ["g-c-00-b"])
    for goal_id, schedule in stored.items():
        cause = "goal-c-00-b" if goal_id == "g-c-00-b" else f"goal-{schedule['client_id']}"
        assert schedule["applied_events"] == [cause]
        if schedule["client_id"] in early:
            assert schedule["coach_id"] is None and schedule["plan"]["timezone"] == "UTC"
            continue
        assert schedule["coach_id"] == "coach-1"
        # Planned after the enrolment from its timezone, or before and moved to it since.
        expected = "Asia/Tokyo" if schedule["client_id"] == "c-03" else BERLIN
        assert schedule["plan"]["timezone"] == expected
    assert stored["g-c-03"]["plan_source"] == "client"
    remembered = {p["client_id"]: p for p in await preferences.find().to_list()}
    assert sorted(remembered) == enrolled
    for client in enrolled:
        assert remembered[client]["applied_events"] == [f"enrol-{client}"]
    assert remembered["c-03"]["plan"] == tokyo  # a stated plan stays
    # The batch handlers did the work, none of it fell back to one by one.
    assert max(goals) > 1 and max(enrolments) > 1 and min(goals + enrolments) > 0

    # Round two: the early clients enrol (one of them twice), with new clients' goals.
    enrolments.clear()
    goals.clear()
    one_by_one: list[object] = []
    replan = FeedbackRepository.replan

    async def replan_alone(self: FeedbackRepository, *args: object) -> object:
        one_by_one.append(args)
        return await replan(self, *args)

    monkeypatch.setattr(FeedbackRepository, "replan", replan_alone)
    late = [enrolment(client, "coach-2") for client in early]
    fresh = [f"n-{n}" for n in range(4)]
    await publish_events(
        infra.kafka_bootstrap_servers, prefix,
        [*late, late[0], *(goal(client, f"g-{client}") for client in fresh)],
        ids=[*(f"enrol-{client}" for client in early), f"enrol-{early[0]}",
             *(f"goal-{client}" for client in fresh)])
    async with running_service(lambda s: create_app(s, FixedClock(CLOCK)), settings):

        async def all_adopted():
            found = await schedules.find({"client_id": {"$in": early}}).to_list()
            done = [s for s in found if s["coach_id"] == "coach-2"
                    and s["plan"]["timezone"] == BERLIN]
            planned = await schedules.count_documents({"client_id": {"$in": fresh}})
            return found if len(done) == len(early) and planned == len(fresh) else None

        adopted = await eventually(all_adopted)
    for schedule in adopted:
        assert schedule["plan_source"] == "default" and schedule["revision"] == 1
        assert schedule["applied_events"] == [f"goal-{schedule['client_id']}"]
    for client in early:
        stored_preferences = await preferences.find_one({"client_id": client})
        assert stored_preferences["applied_events"] == [f"enrol-{client}"]
    assert await schedules.count_documents({}) == 16 + len(fresh)
    assert one_by_one == []  # the plans moved together, in one bulk write
    assert max(goals) > 1 and max(enrolments) > 1 and min(goals + enrolments) > 0


def delivered(event: Event, event_id: str) -> tuple[Event, EventContext]:
    return event, EventContext(EventMessage.wrap(event, "/tests", event_id=event_id),
                               "topic", 0, 0)


async def test_a_schedule_changed_meanwhile_moves_from_a_fresh_copy(mongo, database_name,
                                                                    monkeypatch):
    """The batch of enrolments moves default plans in one guarded bulk write; a schedule
    that changed between its read and that write is moved from a fresh copy, like
    `client_enrolled` does."""
    db = mongo[database_name]
    settings = FeedbackSettings(service_name="feedback")
    repository = FeedbackRepository(db)
    membership = Membership(db, [])
    handlers = FeedbackHandlers(repository, membership, settings, FixedClock(CLOCK),
                                None)  # type: ignore[arg-type]
    clients = [(TENANT, "c-1"), (TENANT, "c-2")]
    await handlers.goal_set_together([delivered(goal("c-1", "g-1"), "goal-1"),
                                      delivered(goal("c-2", "g-2"), "goal-2")])
    enrolments = [delivered(enrolment("c-1"), "enrol-1"), delivered(enrolment("c-2"), "enrol-2")]
    for event, context in enrolments:  # the consumer admits them first
        await membership.admit(event, context.message.id, context.message.time)
    # Read by the batch, then changed (as by a sweep) before the batch writes.
    stale = await repository.schedules_of_clients(clients)
    await db[SCHEDULES].update_one({"goal_id": "g-1"}, {"$inc": {"revision": 1}})
    reads = [stale]
    read = repository.schedules_of_clients

    async def first_stale(wanted):
        return reads.pop() if reads else await read(wanted)

    monkeypatch.setattr(repository, "schedules_of_clients", first_stale)
    one_by_one: list[object] = []
    replan = repository.replan

    async def replan_alone(*args: object) -> object:
        one_by_one.append(args)
        return await replan(*args)

    monkeypatch.setattr(repository, "replan", replan_alone)
    await handlers.client_enrolled_together(enrolments)
    await handlers.client_enrolled_together(enrolments)  # redelivered: nothing more moves
    stored = {s["goal_id"]: s for s in await db[SCHEDULES].find().to_list()}
    assert {goal_id: (s["plan"]["timezone"], s["revision"], s["coach_id"])
            for goal_id, s in stored.items()} == {"g-1": (BERLIN, 2, "coach-1"),
                                                  "g-2": (BERLIN, 1, "coach-1")}
    assert len(one_by_one) == 1  # only the changed one, from its fresh copy


async def test_a_wave_of_due_check_ins_opens_each_once_in_its_context(infra, prefix, mongo,
                                                                     monkeypatch):
    settings = service_settings(FeedbackSettings, infra, prefix, scheduler_enabled=False)
    db = mongo[settings.mongodb_database]
    checkins = db[CHECKINS]
    opened_together = spy(monkeypatch, "checkin_due_together")
    clients = [f"c-{n}" for n in range(6)]
    await publish_events(infra.kafka_bootstrap_servers, prefix,
                         [enrolment(client) for client in clients]
                         + [goal(client, f"g-{client}") for client in clients])
    # c-5's second check-in follows a missed first one.
    first_of_c5 = checkin_id_for(TENANT, "g-c-5", 1)
    await checkins.insert_one({**checkin_key(TENANT, first_of_c5), "client_id": "c-5",
                               "goal_id": "g-c-5", "period": 1, "status": MISSED})

    def due(client: str, period: int, goal_id: str | None = None) -> CheckInDue:
        goal_id = goal_id or f"g-{client}"
        due_at = CLOCK + timedelta(weeks=period)
        return CheckInDue(tenant_id=TENANT, client_id=client, goal_id=goal_id, period=period,
                          checkin_id=checkin_id_for(TENANT, goal_id, period), due_at=due_at,
                          respond_by=due_at + timedelta(days=2), coach_id="coach-1")

    # Five first check-ins, c-5's second, one for a goal nobody planned (erased), and one
    # delivered twice.
    events = [due(client, 1) for client in clients[:5]]
    events += [due("c-5", 2), due("x-9", 1, goal_id="g-erased"), events[2]]
    ids = [f"due-{n}" for n in range(7)] + ["due-2"]
    async with running_service(lambda s: create_app(s, FixedClock(CLOCK)), settings):

        async def all_planned():
            return await db[SCHEDULES].count_documents({}) == len(clients)

        await eventually(all_planned)
        await publish_events(infra.kafka_bootstrap_servers, prefix, events, ids=ids)

        async def all_opened():
            found = await checkins.find({"status": "open"}).to_list()
            return found if len(found) == 6 else None

        opened = {c["client_id"]: c for c in await eventually(all_opened)}
        await asyncio.sleep(1)  # the duplicate and the erased goal's have come too
    assert max(opened_together) > 1, opened_together
    assert sorted(opened) == clients
    for client, checkin in opened.items():
        period = 2 if client == "c-5" else 1
        assert checkin["_id"] == checkin_key(TENANT, checkin_id_for(TENANT, f"g-{client}",
                                                                    period))["_id"]
        assert checkin["applied_events"] == [ids[clients.index(client)]]
        assert checkin["coach_id"] == "coach-1" and checkin["period"] == period
        expected = "after_missed" if client == "c-5" else "first_checkin"
        assert checkin["reflection_context"] == expected
        assert all(p.startswith("missed-" if client == "c-5" else "first-")
                   for p in checkin["prompt_ids"])
    assert await checkins.count_documents({}) == 7  # six opened and c-5's missed first
    assert await checkins.count_documents({"goal_id": "g-erased"}) == 0
