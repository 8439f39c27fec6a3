"""Every MongoDB query of the feedback service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from coaching_shared.events import EventMessage, utc_now
from coaching_shared.mongo import (
    Change,
    IndexSpec,
    apply_each_once,
    apply_once,
    chunks,
    insert_new,
    keyed,
)
from coaching_shared.outbox_batch import PublishOnce
from pymongo import ReturnDocument, UpdateMany, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from coaching_feedback.domain import checkin_id_for

PREFERENCES = "checkin_preferences"
SCHEDULES = "checkin_schedules"
CHECKINS = "checkins"
REFLECTIONS = "reflections"
REVIEWS = "progress_reviews"
FEEDBACK = "coach_feedback"
PUBLISHED = "published_events"
RISK_SIGNALS = "risk_signals"
ROUNDS = "multirater_rounds"
RATERS = "multirater_raters"
RESPONSES = "multirater_responses"

ACTIVE = "active"
ENDED = "ended"
OPEN = "open"
COMPLETED = "completed"
MISSED = "missed"
CANCELLED = "cancelled"
CLOSED = "closed"
INVITED = "invited"
ANSWERED = "answered"
# What a rater record holds besides its key, status and token hash.
RATER_FACTS = ("client_id", "name", "email", "group")
SETTLED = (COMPLETED, MISSED)
# "Never leased": a real instant, because a missing field would not compare with $lte.
NO_LEASE = datetime(1970, 1, 1, tzinfo=UTC)

INDEXES = [
    IndexSpec(PREFERENCES, [("tenant_id", 1), ("client_id", 1)], unique=True),
    IndexSpec(SCHEDULES, [("tenant_id", 1), ("goal_id", 1)], unique=True),
    IndexSpec(SCHEDULES, [("tenant_id", 1), ("client_id", 1)]),
    # The due sweep looks across tenants: platform work, like the outbox sweep.
    IndexSpec(SCHEDULES, [("status", 1), ("next_due_at", 1)], system=True),
    IndexSpec(SCHEDULES, [("status", 1), ("next_review_at", 1)], system=True),
    IndexSpec(CHECKINS, [("tenant_id", 1), ("checkin_id", 1)], unique=True),
    IndexSpec(CHECKINS, [("tenant_id", 1), ("client_id", 1), ("due_at", 1)]),
    IndexSpec(CHECKINS, [("tenant_id", 1), ("goal_id", 1), ("period", 1)]),
    IndexSpec(CHECKINS, [("status", 1), ("respond_by", 1)], system=True),
    IndexSpec(REFLECTIONS, [("tenant_id", 1), ("reflection_id", 1)], unique=True),
    IndexSpec(REFLECTIONS, [("tenant_id", 1), ("client_id", 1), ("created_at", 1)]),
    IndexSpec(REVIEWS, [("tenant_id", 1), ("review_id", 1)], unique=True),
    IndexSpec(REVIEWS, [("tenant_id", 1), ("client_id", 1), ("period_end", 1)]),
    IndexSpec(REVIEWS, [("tenant_id", 1), ("goal_id", 1), ("to_period", 1)]),
    IndexSpec(FEEDBACK, [("tenant_id", 1), ("feedback_id", 1)], unique=True),
    IndexSpec(FEEDBACK, [("tenant_id", 1), ("client_id", 1), ("given_at", 1)]),
    IndexSpec(RISK_SIGNALS, [("tenant_id", 1), ("signal_id", 1)], unique=True),
    IndexSpec(RISK_SIGNALS, [("tenant_id", 1), ("client_id", 1), ("detected_at", 1)]),
    IndexSpec(ROUNDS, [("tenant_id", 1), ("round_id", 1)], unique=True),
    IndexSpec(ROUNDS, [("tenant_id", 1), ("client_id", 1), ("created_at", 1)]),
    # The deadline sweep looks across tenants, like the due sweep.
    IndexSpec(ROUNDS, [("status", 1), ("closes_at", 1)], system=True),
    IndexSpec(RATERS, [("tenant_id", 1), ("round_id", 1), ("rater_id", 1)], unique=True),
    IndexSpec(RATERS, [("tenant_id", 1), ("token_hash", 1)], unique=True),
    IndexSpec(RESPONSES, [("tenant_id", 1), ("round_id", 1)]),
    *PublishOnce.indexes(PUBLISHED),
]
# Each outbox collection's documents carry one kind of outgoing event, so a writer relaying a
# document never publishes another writer's fresh entries (the schedules' CheckInDue go through
# the scheduler's publish-once relay only).
OUTBOX_COLLECTIONS = [SCHEDULES, CHECKINS, REVIEWS, FEEDBACK, RISK_SIGNALS, ROUNDS]
# The scheduler's transitions publish through the publish-once ledger; so does the outbox
# sweep over the same collections.
PUBLISHED_ONCE = {SCHEDULES: PUBLISHED, CHECKINS: PUBLISHED}
# Rater names and e-mails belong to the client's round and go with it.
PERSONAL_COLLECTIONS = [PREFERENCES, SCHEDULES, CHECKINS, REFLECTIONS, REVIEWS, FEEDBACK,
                        RISK_SIGNALS, ROUNDS, RATERS, RESPONSES, PUBLISHED]


@dataclass(frozen=True)
class Transition:
    """One due document's guarded change plus the events it emits (a sweep's output)."""

    document_id: Any
    guard: Mapping[str, Any]
    update: Mapping[str, Any]
    outbox: Sequence[EventMessage]


# The documents read on every event are stored under their natural key as `_id` (see
# coaching_shared.mongo.key_id), so each lookup uses the `_id` index.
def preferences_key(tenant_id: str, client_id: str) -> dict[str, str]:
    return keyed(tenant_id=tenant_id, client_id=client_id)


def schedule_key(tenant_id: str, goal_id: str) -> dict[str, str]:
    return keyed(tenant_id=tenant_id, goal_id=goal_id)


def checkin_key(tenant_id: str, checkin_id: str) -> dict[str, str]:
    return keyed(tenant_id=tenant_id, checkin_id=checkin_id)


# A client of a tenant, as the batch reads and writes name them.
ClientRef = tuple[str, str]


# What `replan` takes: the schedule as read, the new plan, its source, the next due and review.
Replan = tuple[Mapping[str, Any], Mapping[str, Any], str, datetime, datetime | None]


def replan_update(schedule: Mapping[str, Any], plan: Mapping[str, Any], plan_source: str,
                  next_due_at: datetime, next_review_at: datetime | None = None
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The guarded filter and the update of `FeedbackRepository.replan`."""
    guard = {"_id": schedule["_id"], "revision": schedule["revision"],
             "next_period": schedule["next_period"], "status": ACTIVE}
    update = {"$set": {"plan": dict(plan), "plan_source": plan_source,
                       "next_due_at": next_due_at, "lease_until": NO_LEASE,
                       **({"next_review_at": next_review_at} if next_review_at else {})},
              "$inc": {"revision": 1}}
    return guard, update


def timezone_change(tenant_id: str, client_id: str, cause_id: str, timezone: str) -> Change:
    """The client's timezone from their enrolment, the base of their check-in times."""
    return Change(preferences_key(tenant_id, client_id), cause_id,
                  {"$set": {"timezone": timezone}})


def schedule_change(tenant_id: str, goal_id: str, cause_id: str, goal: Mapping[str, Any],
                    schedule: Mapping[str, Any]) -> Change:
    """Create the goal's schedule once; a repeated GoalSet refreshes the goal's facts."""
    return Change(schedule_key(tenant_id, goal_id), cause_id,
                  {"$set": dict(goal), "$setOnInsert": dict(schedule)})


class FeedbackRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.preferences = db[PREFERENCES]
        self.schedules = db[SCHEDULES]
        self.checkins = db[CHECKINS]
        self.reflections = db[REFLECTIONS]
        self.reviews = db[REVIEWS]
        self.feedback = db[FEEDBACK]
        self.risk_signals = db[RISK_SIGNALS]
        self.rounds = db[ROUNDS]
        self.raters = db[RATERS]
        self.responses = db[RESPONSES]
        self.publish_once = PublishOnce(db[PUBLISHED])

    # -- preferences -----------------------------------------------------------------------

    async def remember_timezones(self, changes: Sequence[Change]) -> None:
        """Keep the clients' timezones from their enrolments (`timezone_change`s), the base
        of their check-in times, once per event, in a few round trips for all."""
        await apply_each_once(self.preferences, changes)

    async def preferences_of(self, tenant_id: str, client_id: str) -> dict[str, Any] | None:
        return await self.preferences.find_one(preferences_key(tenant_id, client_id))

    async def preferences_of_clients(self, clients: Sequence[ClientRef]
                                     ) -> dict[ClientRef, dict[str, Any]]:
        """`preferences_of` for many clients in one read; clients without any are left out."""
        ids = [preferences_key(tenant_id, client_id)["_id"] for tenant_id, client_id in clients]
        found = await self.preferences.find({"_id": {"$in": ids}}).to_list()
        return {(document["tenant_id"], document["client_id"]): document for document in found}

    async def save_preferences(self, tenant_id: str, client_id: str,
                               plan: Mapping[str, Any]) -> None:
        await self.preferences.update_one(
            preferences_key(tenant_id, client_id),
            {"$set": {"plan": dict(plan), "timezone": plan["timezone"]}}, upsert=True)

    # -- schedules -------------------------------------------------------------------------

    async def plan_schedules(self, changes: Sequence[Change]) -> None:
        """Create each goal's schedule once (`schedule_change`s; a repeated GoalSet refreshes
        the goal's facts), in a few round trips for all."""
        await apply_each_once(self.schedules, changes)

    async def end_schedule(self, tenant_id: str, goal_id: str, reason: str,
                           ended_at: datetime) -> bool:
        """Stop a goal's check-ins (no upsert: a goal without schedule has nothing to end)."""
        result = await self.schedules.update_one(
            {**schedule_key(tenant_id, goal_id), "status": ACTIVE},
            {"$set": {"status": ENDED, "ended_reason": reason, "ended_at": ended_at,
                      "lease_until": NO_LEASE}})
        return result.modified_count == 1

    async def reassign_coach(self, tenant_id: str, client_id: str, coach_id: str) -> None:
        """Later check-in events name the client's new coach."""
        await self.schedules.update_many({"tenant_id": tenant_id, "client_id": client_id},
                                         {"$set": {"coach_id": coach_id}})

    async def give_unassigned(self, schedule_ids: Mapping[str, Sequence[Any]]) -> None:
        """Give each coach the schedules named for them (by `_id`) that still have none,
        in one bulk write (schedules planned before their client's coach was known: goals and
        enrolments travel on different streams, so a GoalSet may come first)."""
        operations = [UpdateMany({"_id": {"$in": list(ids)}, "coach_id": None},
                                 {"$set": {"coach_id": coach_id}})
                      for coach_id, ids in schedule_ids.items() if ids]
        for part in chunks(operations):
            await self.schedules.bulk_write(list(part), ordered=False)

    async def schedule(self, tenant_id: str, goal_id: str) -> dict[str, Any] | None:
        return await self.schedules.find_one(schedule_key(tenant_id, goal_id))

    async def schedules_of_goals(self, goals: Sequence[tuple[str, str]]
                                 ) -> dict[tuple[str, str], dict[str, Any]]:
        """The schedules of these (tenant, goal) that exist, in one read by key."""
        ids = [schedule_key(tenant_id, goal_id)["_id"] for tenant_id, goal_id in goals]
        return {(schedule["tenant_id"], schedule["goal_id"]): schedule
                for schedule in await self.schedules.find({"_id": {"$in": ids}}).to_list()}

    async def schedules_of(self, tenant_id: str, client_id: str,
                           status: str | None = None) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"tenant_id": tenant_id, "client_id": client_id}
        if status:
            query["status"] = status
        return await self.schedules.find(query).sort("goal_id", 1).to_list()

    async def schedules_of_clients(self, clients: Sequence[ClientRef]
                                   ) -> dict[ClientRef, list[dict[str, Any]]]:
        """Every schedule (any status) of each of the clients, by goal id, in one read."""
        wanted = set(clients)
        found = await self.schedules.find(
            {"tenant_id": {"$in": sorted({tenant_id for tenant_id, _ in wanted})},
             "client_id": {"$in": sorted({client_id for _, client_id in wanted})}}
        ).sort("goal_id", 1).to_list()
        schedules: dict[ClientRef, list[dict[str, Any]]] = {client: [] for client in clients}
        for document in found:
            client = (document["tenant_id"], document["client_id"])
            if client in wanted:
                schedules[client].append(document)
        return schedules

    async def replan(self, schedule: Mapping[str, Any], plan: Mapping[str, Any],
                     plan_source: str, next_due_at: datetime,
                     next_review_at: datetime | None = None) -> dict[str, Any] | None:
        """Change an active schedule's plan unless it changed meanwhile (optimistic revision).

        The revision bump makes a sweep that claimed the schedule before the change give up
        its advance; the period guard makes a change computed before an advance give up; the
        lease is dropped so the next sweep sees the new plan at once.
        """
        guard, update = replan_update(schedule, plan, plan_source, next_due_at, next_review_at)
        return await self.schedules.find_one_and_update(guard, update,
                                                        return_document=ReturnDocument.AFTER)

    async def replan_each(self, replans: Sequence[Replan]) -> bool:
        """`replan` for many schedules in one bulk write; True if every one of them was
        changed, False if some changed meanwhile (their guard missed; see `replan`)."""
        operations = [UpdateOne(*replan_update(*replan)) for replan in replans]
        modified = 0
        for part in chunks(operations):
            modified += (await self.schedules.bulk_write(list(part), ordered=False)
                         ).modified_count
        return modified == len(operations)

    async def flag_risk(self, tenant_id: str, signal_id: str, cause_id: str,
                        risk: Mapping[str, Any], event: EventMessage) -> dict[str, Any] | None:
        """Record an at-risk signal with its ClientAtRisk, once per cause."""
        return await apply_once(self.risk_signals,
                                {"tenant_id": tenant_id, "signal_id": signal_id}, cause_id,
                                {"$setOnInsert": dict(risk)}, outbox=[event])

    async def record_standing_risk(self, tenant_id: str, goal_id: str, period: int,
                                   reasons: Sequence[str]) -> None:
        """The goal's current at-risk reasons, as of a settled check-in; never overwritten
        by an older one."""
        await self.schedules.update_one(
            {**schedule_key(tenant_id, goal_id),
             "$or": [{"risk_period": {"$exists": False}}, {"risk_period": {"$lte": period}}]},
            {"$set": {"risk_reasons": list(reasons), "risk_period": period}})

    async def risk_signals_of(self, tenant_id: str, client_id: str) -> list[dict[str, Any]]:
        return await self.risk_signals.find({"tenant_id": tenant_id, "client_id": client_id}
                                            ).sort("detected_at", -1).limit(50).to_list()

    # -- leased sweeps (due check-ins, missed check-ins) -------------------------------------

    async def claim(self, collection: AsyncCollection, due: Mapping[str, Any], owner: str,
                    lease: timedelta, batch: int) -> list[dict[str, Any]]:
        """Lease up to `batch` documents matching `due` whose lease has run out.

        Each document is claimed by its own atomic single-document update whose filter repeats
        the due condition and the lease expiry, so of several replicas racing for a document
        exactly one gets it; one `update_many` does a whole batch in one round trip.
        """
        now = utc_now()
        claimable = {**due, "lease_until": {"$lte": now}}
        ids = [candidate["_id"] for candidate in
               await self.due(collection, due, batch, {"_id": 1})]
        if not ids:
            return []
        await collection.update_many({**claimable, "_id": {"$in": ids}},
                                     {"$set": {"lease_owner": owner, "lease_until": now + lease}})
        return await collection.find({"_id": {"$in": ids}, "lease_owner": owner}).to_list()

    async def due(self, collection: AsyncCollection, due: Mapping[str, Any], batch: int,
                  projection: Mapping[str, Any] | None = None, *, after: Any = None
                  ) -> list[dict[str, Any]]:
        """Up to `batch` documents matching `due` that nobody holds a lease on, with keys
        greater than `after` if given.

        In no stated order: every round takes the next batch until none is left, so a
        backlog is worked off within one burst of rounds whatever the order. FerretDB would
        read and sort every due document for each batch to give them earliest first (100,000
        falling due at once: 200 reads of up to 100,000 documents); unsorted, it stops at
        the batch's last one, and reads the keys after `after` through the `_id` index.
        """
        query = {**due, "lease_until": {"$lte": utc_now()}}
        if after is not None:
            query["_id"] = {"$gt": after}
        return await collection.find(query, projection).limit(batch).to_list()

    async def take_transitions(self, collection: AsyncCollection,
                               transitions: Sequence[Transition], owner: str,
                               outbox_lease: timedelta) -> int:
        """Write each due document's change and outgoing events in one single-document
        update per document, all in one bulk round trip; returns how many were written.

        The write is the claim: its guards (no lease held, and the transition's own: revision,
        period, status) let one writer of several that read the same document through, and
        it marks the document `owner`'s, so each writer relays only what it wrote.
        """
        if not transitions:
            return 0
        now = utc_now()
        outbox_until = now + outbox_lease
        operations = []
        for transition in transitions:
            update = {operator: dict(fields) for operator, fields in transition.update.items()}
            changes = update.setdefault("$set", {})
            changes.update(lease_owner=owner, lease_until=NO_LEASE)
            if transition.outbox:
                changes.update(outbox_pending=True, outbox_lease_until=outbox_until)
                # $addToSet: two writers racing with the same (deterministic) event add
                # one entry, not two.
                update["$addToSet"] = {"outbox": {"$each": [m.to_document()
                                                            for m in transition.outbox]}}
            operations.append(UpdateOne({"_id": transition.document_id, **transition.guard,
                                         "lease_until": {"$lte": now}}, update))
        result = await collection.bulk_write(operations, ordered=False)
        return result.modified_count

    # -- check-ins -------------------------------------------------------------------------

    async def open_checkins(self, openings: Sequence[Change]) -> None:
        """Record check-ins that fell due (each once, whatever the redeliveries): changes
        keyed by `checkin_key`, one per check-in."""
        await apply_each_once(self.checkins, openings)

    async def checkin(self, tenant_id: str, checkin_id: str) -> dict[str, Any] | None:
        return await self.checkins.find_one(checkin_key(tenant_id, checkin_id))

    async def checkins_of_periods(self, wanted: Sequence[tuple[str, str, int]]
                                  ) -> dict[tuple[str, str, int], dict[str, Any]]:
        """The check-ins of these (tenant, goal, period) that exist, in one read by key:
        check-ins are stored under the id the scheduler derives from goal and period. (Asked
        by goal and period, FerretDB read every check-in, for each CheckInDue.)"""
        ids = [checkin_key(tenant_id, checkin_id_for(tenant_id, goal_id, period))["_id"]
               for tenant_id, goal_id, period in wanted]
        if not ids:
            return {}
        return {(checkin["tenant_id"], checkin["goal_id"], checkin["period"]): checkin
                for checkin in await self.checkins.find({"_id": {"$in": ids}}).to_list()}

    async def complete_checkin(self, tenant_id: str, checkin_id: str, cause_id: str,
                               fields: Mapping[str, Any],
                               event: EventMessage) -> dict[str, Any] | None:
        """Close an open check-in with the client's submission and CheckInCompleted.

        Only an open check-in matches; a missed or completed one makes the guarded upsert
        collide with the unique index, so nothing changes and None comes back.
        """
        return await apply_once(
            self.checkins, {**checkin_key(tenant_id, checkin_id), "status": OPEN},
            cause_id, {"$set": {**fields, "status": COMPLETED}}, outbox=[event])

    async def cancel_open_checkins(self, tenant_id: str, goal_id: str) -> int:
        result = await self.checkins.update_many(
            {"tenant_id": tenant_id, "goal_id": goal_id, "status": OPEN},
            {"$set": {"status": CANCELLED}})
        return result.modified_count

    async def checkins_of(self, tenant_id: str, client_id: str, status: str | None = None,
                          limit: int = 100) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"tenant_id": tenant_id, "client_id": client_id}
        if status:
            query["status"] = status
        return await self.checkins.find(query).sort("due_at", -1).limit(limit).to_list()

    async def settled_checkins(self, tenant_id: str, goal_id: str, from_period: int = 1,
                               to_period: int | None = None) -> list[dict[str, Any]]:
        period: dict[str, Any] = {"$gte": from_period}
        if to_period is not None:
            period["$lte"] = to_period
        return await self.checkins.find(
            {"tenant_id": tenant_id, "goal_id": goal_id, "period": period,
             "status": {"$in": list(SETTLED)}}).sort("period", 1).to_list()

    async def settled_checkins_due_between(self, tenant_id: str, goal_id: str,
                                           start: datetime,
                                           end: datetime) -> list[dict[str, Any]]:
        """The goal's settled check-ins that fell due in [start, end)."""
        return await self.checkins.find(
            {"tenant_id": tenant_id, "goal_id": goal_id, "due_at": {"$gte": start, "$lt": end},
             "status": {"$in": list(SETTLED)}}).sort("period", 1).to_list()

    async def advance_monthly_review(self, schedule: Mapping[str, Any], owner: str,
                                     next_review_at: datetime) -> bool:
        """Move a claimed schedule's monthly review on and release it (if still ours)."""
        result = await self.schedules.update_one(
            {"_id": schedule["_id"], "lease_owner": owner,
             "next_review_at": schedule["next_review_at"]},
            {"$set": {"next_review_at": next_review_at, "lease_until": NO_LEASE}})
        return result.modified_count == 1

    # -- reflections -----------------------------------------------------------------------

    async def store_reflections(self, reflections: Sequence[Mapping[str, Any]]) -> None:
        """Insert answers once: their ids derive from the command, so a retry adds nothing."""
        await insert_new(self.reflections, [dict(r) for r in reflections])

    async def reflection(self, tenant_id: str, reflection_id: str) -> dict[str, Any] | None:
        return await self.reflections.find_one(
            {"tenant_id": tenant_id, "reflection_id": reflection_id})

    async def reflections_of(self, tenant_id: str, client_id: str,
                             checkin_id: str | None = None) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"tenant_id": tenant_id, "client_id": client_id}
        if checkin_id:
            query["checkin_id"] = checkin_id
        return await self.reflections.find(query).sort("created_at", 1).to_list()

    async def share_reflection(self, tenant_id: str, reflection_id: str,
                               shared_with: Sequence[str]) -> dict[str, Any] | None:
        return await self.reflections.find_one_and_update(
            {"tenant_id": tenant_id, "reflection_id": reflection_id},
            {"$set": {"shared_with": list(shared_with)}}, return_document=ReturnDocument.AFTER)

    # -- reviews and feedback --------------------------------------------------------------

    async def record_review(self, tenant_id: str, review_id: str, cause_id: str,
                            review: Mapping[str, Any],
                            event: EventMessage) -> dict[str, Any] | None:
        return await apply_once(self.reviews, {"tenant_id": tenant_id, "review_id": review_id},
                                cause_id, {"$setOnInsert": dict(review)}, outbox=[event])

    async def review(self, tenant_id: str, review_id: str) -> dict[str, Any] | None:
        return await self.reviews.find_one({"tenant_id": tenant_id, "review_id": review_id})

    async def reviews_of(self, tenant_id: str, client_id: str) -> list[dict[str, Any]]:
        return await self.reviews.find({"tenant_id": tenant_id, "client_id": client_id}).sort(
            "period_end", 1).to_list()

    async def last_reviewed_period(self, tenant_id: str, goal_id: str) -> int:
        """The latest check-in period any review of the goal covered (0 before any)."""
        latest = await self.reviews.find({"tenant_id": tenant_id, "goal_id": goal_id},
                                         {"to_period": 1}).sort("to_period", -1).limit(1
                                                                                     ).to_list()
        return latest[0]["to_period"] if latest else 0

    async def annotate_review(self, tenant_id: str, review_id: str,
                              notes: str, noted_at: datetime) -> dict[str, Any] | None:
        return await self.reviews.find_one_and_update(
            {"tenant_id": tenant_id, "review_id": review_id},
            {"$set": {"coach_notes": notes, "noted_at": noted_at}},
            return_document=ReturnDocument.AFTER)

    async def record_feedback(self, tenant_id: str, feedback_id: str, cause_id: str,
                              feedback: Mapping[str, Any],
                              event: EventMessage) -> dict[str, Any] | None:
        return await apply_once(self.feedback, {"tenant_id": tenant_id,
                                                "feedback_id": feedback_id},
                                cause_id, {"$setOnInsert": dict(feedback)}, outbox=[event])

    async def feedback_of(self, tenant_id: str, client_id: str) -> list[dict[str, Any]]:
        return await self.feedback.find({"tenant_id": tenant_id, "client_id": client_id}).sort(
            "given_at", 1).to_list()

    # -- program metrics (aggregates only) -------------------------------------------------

    async def checkin_counts(self, tenant_id: str) -> dict[str, int]:
        """How many check-ins are in each status."""
        counts = {}
        for status in (OPEN, COMPLETED, MISSED, CANCELLED):
            counts[status] = await self.checkins.count_documents(
                {"tenant_id": tenant_id, "status": status})
        return counts

    async def engaged_clients(self, tenant_id: str, since: datetime, until: datetime) -> int:
        """Distinct clients who completed a check-in in [since, until)."""
        cursor = await self.checkins.aggregate([
            {"$match": {"tenant_id": tenant_id, "status": COMPLETED,
                        "completed_at": {"$gte": since, "$lt": until}}},
            {"$group": {"_id": "$client_id"}},
            {"$count": "clients"}])
        rows = await cursor.to_list()
        return rows[0]["clients"] if rows else 0

    async def review_count(self, tenant_id: str) -> int:
        return await self.reviews.count_documents({"tenant_id": tenant_id})

    # -- multi-rater (360) feedback --------------------------------------------------------

    async def open_round(self, tenant_id: str, round_id: str, cause_id: str,
                         feedback_round: Mapping[str, Any]) -> dict[str, Any] | None:
        return await apply_once(self.rounds, {"tenant_id": tenant_id, "round_id": round_id},
                                cause_id, {"$setOnInsert": dict(feedback_round)})

    async def feedback_round(self, tenant_id: str, round_id: str) -> dict[str, Any] | None:
        return await self.rounds.find_one({"tenant_id": tenant_id, "round_id": round_id})

    async def rounds_of(self, tenant_id: str, client_id: str) -> list[dict[str, Any]]:
        return await self.rounds.find({"tenant_id": tenant_id, "client_id": client_id}).sort(
            "created_at", -1).limit(100).to_list()

    async def invite_rater(self, tenant_id: str, round_id: str, rater_id: str,
                           token_hash: str, rater: Mapping[str, Any]) -> bool:
        """Give a rater who has not answered a (new) link token, creating the rater if new.

        An earlier token of the rater stops working. False if the rater already answered:
        the guarded upsert then collides with the existing rater on the unique index.
        """
        key = {"tenant_id": tenant_id, "round_id": round_id, "rater_id": rater_id}
        facts = {name: rater[name] for name in RATER_FACTS}
        try:
            await self.raters.update_one({**key, "status": INVITED},
                                         {"$set": {"token_hash": token_hash},
                                          "$setOnInsert": facts}, upsert=True)
        except DuplicateKeyError:
            return False
        return True

    async def raters_of(self, tenant_id: str, round_id: str) -> list[dict[str, Any]]:
        return await self.raters.find({"tenant_id": tenant_id, "round_id": round_id}).sort(
            "rater_id", 1).to_list()

    async def rater_by_token(self, tenant_id: str, token_hash: str) -> dict[str, Any] | None:
        return await self.raters.find_one({"tenant_id": tenant_id, "token_hash": token_hash})

    async def record_response(self, response: Mapping[str, Any]) -> bool:
        """Store a rater's answer under its key; False if that key answered already."""
        try:
            await self.responses.insert_one(dict(response))
        except DuplicateKeyError:
            return False
        return True

    async def mark_answered(self, tenant_id: str, round_id: str, rater_id: str) -> None:
        # No timestamp: it could be matched with the order of the stored answers.
        await self.raters.update_one(
            {"tenant_id": tenant_id, "round_id": round_id, "rater_id": rater_id},
            {"$set": {"status": ANSWERED}})

    async def responses_of(self, tenant_id: str, round_id: str) -> list[dict[str, Any]]:
        return await self.responses.find({"tenant_id": tenant_id, "round_id": round_id}
                                         ).to_list()

    async def save_self_rating(self, tenant_id: str, round_id: str,
                               self_rating: Mapping[str, Any]) -> dict[str, Any] | None:
        """The client's own ratings, while the round is open (None once it closed)."""
        return await self.rounds.find_one_and_update(
            {"tenant_id": tenant_id, "round_id": round_id, "status": OPEN},
            {"$set": {"self_rating": dict(self_rating)}}, return_document=ReturnDocument.AFTER)

    async def close_round(self, tenant_id: str, round_id: str, cause_id: str,
                          fields: Mapping[str, Any],
                          event: EventMessage) -> dict[str, Any] | None:
        """Close an open round with its frozen results and event; None if it was not open."""
        return await apply_once(
            self.rounds, {"tenant_id": tenant_id, "round_id": round_id, "status": OPEN},
            cause_id, {"$set": {**fields, "status": CLOSED, "lease_until": NO_LEASE}},
            outbox=[event], create=False)

    async def forget_responses(self, tenant_id: str, round_id: str) -> None:
        """Individual answers are not kept once the anonymised results are frozen."""
        await self.responses.delete_many({"tenant_id": tenant_id, "round_id": round_id})
