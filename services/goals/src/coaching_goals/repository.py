"""Every MongoDB query of the goals service.

A goal is one document: its KPIs, action plan, recent measurements, roll-up links and its
embedded outbox, so every change of a goal and the events it raises are one write. Changes
are guarded by the goal's `revision` (optimistic concurrency): a write based on a stale read
does not match, and is retried on a fresh read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import Enum
from typing import Any

from coaching_shared.events import Event, EventMessage, derived_event_id
from coaching_shared.mongo import (
    Change,
    IndexSpec,
    apply_each_once,
    apply_once,
    insert_new,
    keyed,
    keyed_under,
    new_document,
)
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from coaching_goals.domain import OPEN, Goal, GoalStateConflict, GoalStatus, Outcome

SOURCE = "/coaching/goals"
ASSESSMENT_RESULTS = "assessment_results"
GOALS = "goals"
TENANT_SETTINGS = "tenant_settings"

INDEXES = [
    IndexSpec(ASSESSMENT_RESULTS, [("tenant_id", 1), ("client_id", 1), ("assessment_id", 1)],
              unique=True),
    IndexSpec(GOALS, [("tenant_id", 1), ("goal_id", 1)], unique=True),
    IndexSpec(GOALS, [("tenant_id", 1), ("client_id", 1), ("status", 1)]),
    IndexSpec(GOALS, [("tenant_id", 1), ("status", 1)]),
    IndexSpec(TENANT_SETTINGS, [("tenant_id", 1)], unique=True),
]
OUTBOX_COLLECTIONS = [GOALS]
PERSONAL_COLLECTIONS = [ASSESSMENT_RESULTS, GOALS]

# Concurrent writers to one goal are rare (a person and a check-in at the same moment);
# a handful of re-reads settles them.
CHANGE_ATTEMPTS = 8
# Fields the key or the delivery bookkeeping owns; a goal's $set never touches them.
_NOT_SET = {"tenant_id", "client_id", "goal_id"}

Relay = Callable[[AsyncCollection, dict[str, Any] | None], Awaitable[None]]


@dataclass(frozen=True)
class GoalChange:
    """A goal after a change; `duplicate` when the cause had been applied before."""

    goal: Goal
    outcome: Outcome
    duplicate: bool


def _storable(value: Any) -> Any:
    """BSON has datetimes but no dates: dates are stored as ISO strings (they sort)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {key: _storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(item) for item in value]
    return value


def goal_key(tenant_id: str, client_id: str, goal_id: str) -> dict[str, str]:
    """The filter naming one goal (its `_id` is the natural key: lookups use the `_id` index)."""
    return keyed(tenant_id=tenant_id, client_id=client_id, goal_id=goal_id)


def goal_fields(goal: Goal) -> dict[str, Any]:
    """A goal as stored (without the key fields)."""
    return {name: value for name, value in _storable(goal.model_dump()).items()
            if name not in _NOT_SET}


class GoalsRepository:
    def __init__(self, db: AsyncDatabase, relay: Relay | None = None) -> None:
        self.assessment_results = db[ASSESSMENT_RESULTS]
        self.goals = db[GOALS]
        self.tenant_settings = db[TENANT_SETTINGS]
        self._relay = relay

    # -- assessment results ----------------------------------------------------------------

    async def store_assessments(self, stored: Sequence[tuple[str, str, str, dict[str, Any]]]
                                ) -> None:
        """Keep what suggestions need from completed assessments (tenant, client, cause,
        basis; each of another assessment), once per event, in one write of each kind."""
        await apply_each_once(self.assessment_results, [
            Change(keyed(tenant_id=tenant_id, client_id=client_id,
                         assessment_id=basis["assessment_id"]), cause_id, {"$set": basis})
            for tenant_id, client_id, cause_id, basis in stored])

    async def assessments_of(self, tenant_id: str, client_id: str) -> list[dict[str, Any]]:
        cursor = self.assessment_results.find(
            keyed_under(tenant_id=tenant_id, client_id=client_id)).sort("completed_at", 1)
        return await cursor.to_list()

    # -- goals -----------------------------------------------------------------------------

    async def goal(self, tenant_id: str, client_id: str, goal_id: str) -> Goal | None:
        document = await self.goals.find_one(goal_key(tenant_id, client_id, goal_id))
        return Goal.model_validate(document) if document else None

    async def goals_of(self, tenant_id: str, client_id: str,
                       statuses: Iterable[GoalStatus] | None = None) -> list[Goal]:
        """A client's goals, oldest first."""
        query = keyed_under(tenant_id=tenant_id, client_id=client_id)
        if statuses is not None:
            query["status"] = {"$in": [status.value for status in statuses]}
        cursor = self.goals.find(query, {"applied_events": 0, "outbox": 0}).sort(
            [("created_at", 1), ("goal_id", 1)])
        return [Goal.model_validate(document) async for document in cursor]

    async def open_development_areas(self, tenant_id: str, client_id: str,
                                     except_assessment: str) -> set[str]:
        """Development areas the client already has an open goal for (from elsewhere)."""
        cursor = self.goals.find(
            {**keyed_under(tenant_id=tenant_id, client_id=client_id),
             "status": {"$in": [status.value for status in OPEN]}},
            {"relevant_to": 1, "development_area": 1, "source_assessment_id": 1})
        areas = set()
        async for document in cursor:
            if document.get("source_assessment_id") == except_assessment:
                continue
            relevance = document.get("relevant_to") or {}
            if relevance.get("kind") == "development_area":
                areas.add(relevance["ref"])
            if document.get("development_area"):
                areas.add(document["development_area"])
        return areas

    def _outbox(self, cause_id: str, goal_id: str, events: Sequence[Event]) -> list[EventMessage]:
        # Ids derive from the cause and the goal: a redelivered cause yields the same ids.
        return [EventMessage.wrap(event, SOURCE, event_id=derived_event_id(
            cause_id, f"{event.type_name}|{goal_id}")) for event in events]

    async def _relayed(self, document: dict[str, Any] | None) -> None:
        if self._relay is not None:
            await self._relay(self.goals, document)

    async def create_goals(self, created: Sequence[tuple[Outcome, str]]
                           ) -> list[tuple[Goal, bool]]:
        """Store new goals and their events once, in one write.

        `created` pairs each new goal (with its events) with its cause; returns each stored
        goal and whether it is new (a redelivered cause finds its goal stored already).
        """
        documents = [new_document(
            goal_key(outcome.goal.tenant_id, outcome.goal.client_id, outcome.goal.goal_id),
            cause_id, {**goal_fields(outcome.goal), "revision": 1},
            outbox=self._outbox(cause_id, outcome.goal.goal_id, outcome.events))
            for outcome, cause_id in created]
        inserted = {document["_id"] for document in await insert_new(self.goals, documents)}
        stored = []
        for document, (outcome, _) in zip(documents, created, strict=True):
            if document["_id"] in inserted:
                await self._relayed(document)
                stored.append((Goal.model_validate(document), True))
                continue
            goal = outcome.goal
            existing = await self.goal(goal.tenant_id, goal.client_id, goal.goal_id)
            if existing is None:  # the id is another client's goal
                raise GoalStateConflict(f"goal id {goal.goal_id} is taken")
            stored.append((existing, False))
        return stored

    async def create_goal(self, outcome: Outcome, cause_id: str) -> tuple[Goal, bool]:
        """Store a new goal and its events once; (the stored goal, whether it is new)."""
        return (await self.create_goals([(outcome, cause_id)]))[0]

    async def change_goal(self, tenant_id: str, client_id: str, goal_id: str, cause_id: str,
                          decide: Callable[[Goal], Outcome]) -> GoalChange | None:
        """Apply `decide` to the goal once per cause; None if the client has no such goal.

        `decide` gets the goal as stored and returns the changed goal and its events; it may
        raise to refuse. Its result is written only if nobody changed the goal meanwhile;
        otherwise it runs again on the fresh goal.
        """
        query = goal_key(tenant_id, client_id, goal_id)
        for _ in range(CHANGE_ATTEMPTS):
            document = await self.goals.find_one(query)
            if document is None:
                return None
            goal = Goal.model_validate(document)
            if cause_id in document.get("applied_events", []):
                return GoalChange(goal, Outcome(goal), duplicate=True)
            outcome = decide(goal)
            if outcome.goal == goal and not outcome.events:
                return GoalChange(goal, outcome, duplicate=False)
            stored = await apply_once(
                self.goals, {**query, "revision": goal.revision},
                cause_id, {"$set": {**goal_fields(outcome.goal), "revision": goal.revision + 1}},
                outbox=self._outbox(cause_id, goal_id, outcome.events))
            if stored is not None:
                await self._relayed(stored)
                return GoalChange(Goal.model_validate(stored), outcome, duplicate=False)
        raise GoalStateConflict("the goal kept changing while this change was applied; retry")

    async def parent_chain_length(self, tenant_id: str, client_id: str, goal_id: str) -> int:
        """How many ancestors the goal has (bounded, in case of a broken chain)."""
        length, current = 0, await self.goal(tenant_id, client_id, goal_id)
        while current is not None and current.parent_goal_id and length < 10:
            length += 1
            current = await self.goal(tenant_id, client_id, current.parent_goal_id)
        return length

    async def status_counts(self, tenant_id: str) -> dict[str, int]:
        """How many goals the tenant has per status (one $sum per $group: FerretDB)."""
        cursor = await self.goals.aggregate([
            {"$match": {"tenant_id": tenant_id}},
            {"$group": {"_id": "$status", "count": {"$sum": 1}}},
        ])
        return {row["_id"]: row["count"] async for row in cursor}

    async def clients_with_goals(self, tenant_id: str) -> int:
        cursor = await self.goals.aggregate([
            {"$match": {"tenant_id": tenant_id}},
            {"$group": {"_id": "$client_id"}},
            {"$count": "clients"},
        ])
        rows = await cursor.to_list()
        return rows[0]["clients"] if rows else 0

    # -- tenant settings -------------------------------------------------------------------

    async def tenant_smart_limits(self, tenant_id: str) -> dict[str, Any]:
        """The limits a tenant's admin set (only those; the rest are the defaults)."""
        document = await self.tenant_settings.find_one({"tenant_id": tenant_id},
                                                       {"smart_limits": 1})
        return dict(document.get("smart_limits") or {}) if document else {}

    async def set_tenant_smart_limits(self, tenant_id: str, cause_id: str,
                                      values: dict[str, Any], by: str) -> None:
        await apply_once(self.tenant_settings, {"tenant_id": tenant_id}, cause_id,
                         {"$set": {"smart_limits": values, "smart_limits_changed_by": by}})
