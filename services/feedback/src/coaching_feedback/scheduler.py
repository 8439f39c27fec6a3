"""The durable check-in scheduler: publishes CheckInDue and CheckInMissed from the database.

No timer in memory decides anything: the schedules and check-ins in MongoDB are the truth,
and every replica runs the same sweep over them.

One sweep round, for a batch of due documents:
1. read: a batch of due documents that nobody holds a lease on (review rounds and a crashed
   replica's claims hold leases);
2. transition, which is also the claim: one bulk write of single-document updates, each
   advancing the schedule to its next period (or marking the check-in missed) *and* pushing
   the outgoing events into the document's outbox, guarded by "no lease held" and the
   revision and period it was computed from, so of replicas that read the same document one
   writes and the others miss; the winner marks the document as its own;
3. relay: the outboxes this round wrote are published pipelined and cleared (the publish-once
   ledger, which the outbox sweep of these collections goes through too, keeps anyone else
   from publishing an entry at the same time).

Event ids derive from goal and period (or check-in), so a crash between steps 2 and 3 (the
outbox sweep relays later, taking over what the dead round admitted) or a replayed batch
never yields a second, different event. After downtime the first rounds find everything that
fell due meanwhile and catch up.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from coaching_shared.contracts import CheckInDue, CheckInMissed
from coaching_shared.events import EventMessage, derived_event_id, utc_now
from coaching_shared.messaging import EventPublisher, background_round
from coaching_shared.mongo import chunks
from coaching_shared.outbox_batch import relay_documents
from coaching_shared.tasks import cancel_and_wait
from pymongo.asynchronous.collection import AsyncCollection

from coaching_feedback.clock import Clock
from coaching_feedback.domain import (
    CheckInPlan,
    CheckInWindow,
    NoSlotAvailable,
    checkin_due_event_id,
    checkin_id_for,
    fallen_due,
    month_start_after,
)
from coaching_feedback.handlers import SOURCE, Relay, close_feedback_round, review_month
from coaching_feedback.repository import (
    ACTIVE,
    ENDED,
    MISSED,
    OPEN,
    FeedbackRepository,
    Transition,
)
from coaching_feedback.settings import FeedbackSettings

log = logging.getLogger(__name__)
LEDGER_KEPT = timedelta(days=1)
LEDGER_TRIM_SECONDS = 3600.0


def schedule_advance(schedule: dict[str, Any], now: datetime,
                     settings: FeedbackSettings) -> Transition:
    """The due schedule's move past every period due by `now`, with its CheckInDue events;
    guarded by the revision and period it was computed from."""
    guard = {"revision": schedule["revision"], "next_period": schedule["next_period"],
             "status": ACTIVE}
    try:
        plan = CheckInPlan.model_validate(schedule["plan"])
        due_times, next_due = fallen_due(plan, schedule["next_due_at"], now,
                                         settings.scheduler_max_catch_up)
    except NoSlotAvailable:
        log.warning("schedule has no slot left; ending it")
        return Transition(schedule["_id"], guard, {"$set": {
            "status": ENDED, "ended_reason": "no_slot"}}, [])
    tenant_id, goal_id = schedule["tenant_id"], schedule["goal_id"]
    events = []
    for offset, due_at in enumerate(due_times):
        period = schedule["next_period"] + offset
        window = CheckInWindow.of(due_at, settings.on_time, settings.grace)
        due = CheckInDue(tenant_id=tenant_id, client_id=schedule["client_id"],
                         checkin_id=checkin_id_for(tenant_id, goal_id, period),
                         goal_id=goal_id, period=period, due_at=due_at,
                         respond_by=window.respond_by, coach_id=schedule.get("coach_id"))
        # Id and time derive from goal and period: every computation of it is the same entry.
        events.append(EventMessage.wrap(
            due, SOURCE, event_id=checkin_due_event_id(tenant_id, goal_id, period),
            time=due_at))
    changes: dict[str, Any] = {"next_due_at": next_due,
                               "next_period": schedule["next_period"] + len(due_times)}
    if due_times:
        changes["previous_due_at"] = due_times[-1]
    return Transition(schedule["_id"], guard, {"$set": changes}, events)


def checkin_missed(checkin: dict[str, Any], now: datetime) -> Transition:
    """The open check-in's grace period is over: it is missed, with CheckInMissed."""
    missed = CheckInMissed(tenant_id=checkin["tenant_id"], client_id=checkin["client_id"],
                           checkin_id=checkin["checkin_id"], goal_id=checkin["goal_id"],
                           period=checkin["period"], due_at=checkin["due_at"],
                           coach_id=checkin.get("coach_id"))
    message = EventMessage.wrap(missed, SOURCE,
                                event_id=derived_event_id(checkin["checkin_id"], "missed"),
                                time=checkin["respond_by"])
    return Transition(checkin["_id"], {"status": OPEN},
                      {"$set": {"status": MISSED, "missed_at": now}}, [message])


class CheckInScheduler:
    """Runs the due and missed sweeps in the background of every replica."""

    def __init__(self, repository: FeedbackRepository, publisher: EventPublisher,
                 settings: FeedbackSettings, clock: Clock, relay: Relay) -> None:
        self.repository = repository
        self.publisher = publisher
        self.relay = relay
        self.settings = settings
        self.clock = clock
        self._lease = timedelta(seconds=settings.scheduler_lease_seconds)
        self._outbox_lease = timedelta(seconds=settings.outbox_lease_seconds)
        self._task: asyncio.Task[None] | None = None
        self._resume: dict[str, Any] = {}  # collection -> the greatest key the last round read

    async def publish_due_checkins(self) -> int:
        """One round of the due sweep; returns how many schedules were due."""
        now = self.clock.now()
        return await self._sweep(
            self.repository.schedules, {"status": ACTIVE, "next_due_at": {"$lte": now}},
            lambda document: schedule_advance(document, now, self.settings))

    async def publish_missed_checkins(self) -> int:
        """One round of the missed sweep; returns how many check-ins were due."""
        now = self.clock.now()
        return await self._sweep(
            self.repository.checkins, {"status": OPEN, "respond_by": {"$lt": now}},
            lambda document: checkin_missed(document, now))

    async def close_due_rounds(self) -> int:
        """Close the 360 rounds whose deadline passed; returns how many were claimed.

        The lease only spares replicas duplicate work: closing is idempotent by itself.
        """
        claimed = await self.repository.claim(
            self.repository.rounds, {"status": OPEN, "closes_at": {"$lte": self.clock.now()}},
            uuid.uuid4().hex, self._lease, self.settings.scheduler_batch_size)
        for feedback_round in claimed:
            await close_feedback_round(self.repository, self.relay, feedback_round, "deadline",
                                       feedback_round["closes_at"])
        return len(claimed)

    async def review_months(self) -> int:
        """Monthly progress reviews of the goals whose local month ended; returns how many
        schedules were claimed. After downtime each round catches up one month per goal.

        Reviews are recorded by id (goal and month), so a replica that lost its lease
        meanwhile repeats nothing.
        """
        if not self.settings.review_monthly:
            return 0
        now = self.clock.now()
        owner = uuid.uuid4().hex
        claimed = await self.repository.claim(
            self.repository.schedules, {"status": ACTIVE, "next_review_at": {"$lte": now}},
            owner, self._lease, self.settings.scheduler_batch_size)
        for schedule in claimed:
            month_end = schedule["next_review_at"]
            await review_month(self.repository, self.relay, schedule, month_end, now)
            timezone = CheckInPlan.model_validate(schedule["plan"]).timezone
            await self.repository.advance_monthly_review(
                schedule, owner, month_start_after(month_end, timezone))
        return len(claimed)

    async def _sweep(self, collection: AsyncCollection, due: dict[str, Any],
                     transition_of: Callable[[dict[str, Any]], Transition]) -> int:
        """Read a batch of due documents, write their transitions (the write is the claim),
        relay what this round wrote; returns how many were due."""
        owner = uuid.uuid4().hex
        # Rounds walk the due documents in passes: each resumes after the greatest key the
        # previous round read, so a burst of 100,000 is read once rather than from the start
        # for every batch. A short batch ends the pass; the next round starts a new one.
        batch = self.settings.scheduler_batch_size
        documents = await self.repository.due(collection, due, batch,
                                              after=self._resume.pop(collection.name, None))
        if len(documents) == batch:
            self._resume[collection.name] = max(document["_id"] for document in documents)
        if not documents:
            return 0
        transitions = [transition_of(document) for document in documents]
        written = 0
        for part in chunks(transitions):
            written += await self.repository.take_transitions(collection, part, owner,
                                                              self._outbox_lease)
        # Only what this round wrote: a document another replica took meanwhile is that
        # replica's to relay.
        published = await relay_documents(self.publisher, collection,
                                          [t.document_id for t in transitions],
                                          still={"lease_owner": owner},
                                          once=self.repository.publish_once)
        log.info("sweep of %s: due %d, changed %d, published %d event(s)",
                 collection.name, len(documents), written, published)
        return len(documents)

    async def run_once(self) -> int:
        """Every sweep once; returns the documents claimed (0 when nothing was due).

        While check-ins fall due by full batches (Friday morning for a whole cohort), the
        round does nothing else: the missed, review and deadline sweeps, whose clocks run in
        hours and days, wait until the burst is worked off. Each of them reads the whole
        collection on FerretDB, which at 100,000 schedules cost more than the batch itself.
        """
        due = await self.publish_due_checkins()
        if due >= self.settings.scheduler_batch_size:
            return due
        return (due + await self.publish_missed_checkins() + await self.review_months()
                + await self.close_due_rounds())

    async def forget_published(self) -> int:
        """Trim the publish-once ledger: a day covers any relay still in flight."""
        return await self.repository.publish_once.forget(utc_now() - LEDGER_KEPT)

    async def run(self, ready: asyncio.Event) -> None:
        """Sweep until cancelled: back to back while work is waiting, else every interval."""
        await ready.wait()
        last_trim = 0.0
        while True:
            claimed = await background_round("scheduler round", self.run_once) or 0
            if time.monotonic() - last_trim > LEDGER_TRIM_SECONDS:
                await background_round("scheduler ledger trim", self.forget_published)
                last_trim = time.monotonic()
            if claimed < self.settings.scheduler_batch_size:
                await asyncio.sleep(self.settings.scheduler_interval_seconds)

    def start(self, ready: asyncio.Event) -> None:
        if self._task is None and self.settings.scheduler_enabled:
            self._task = asyncio.create_task(self.run(ready), name="checkin-scheduler")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
