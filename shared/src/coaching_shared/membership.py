"""Program membership, kept by every service from the enrolment stream.

Each service keeps its own small roster (who is enrolled, who their coach is) because access
rules need it: a coach sees only the clients assigned to them. The consumer maintains it
before any service handler runs, so no service can forget to.

On `ClientOffboarded` every service erases the client's documents. Events about the client
can still arrive afterwards (they travel on other streams, or are replayed), so a tombstone
without personal data (tenant, client id, when) makes the service drop them, until a newer
`ClientEnrolled` re-enrols the person.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from pymongo.asynchronous.database import AsyncDatabase

from coaching_shared.contracts.enrolment import ClientEnrolled, ClientOffboarded, CoachAssigned
from coaching_shared.events import Event
from coaching_shared.mongo import Change, IndexSpec, apply_each_once, keyed

ROSTER = "roster"
TOMBSTONES = "erased_clients"
INDEXES = [
    IndexSpec(ROSTER, [("tenant_id", 1), ("client_id", 1)], unique=True),
    IndexSpec(ROSTER, [("tenant_id", 1), ("coach_id", 1)]),
    IndexSpec(TOMBSTONES, [("tenant_id", 1), ("client_id", 1)], unique=True),
]


class Admission(NamedTuple):
    """An event offered to the membership: the event, its id and its time."""

    event: Event
    event_id: str
    event_time: datetime


def member_key(tenant_id: str, client_id: str) -> dict[str, str]:
    """The filter naming one client's roster entry or tombstone (by `_id`, read on every event)."""
    return keyed(tenant_id=tenant_id, client_id=client_id)


async def is_erased(db: AsyncDatabase, tenant_id: str, client_id: str) -> bool:
    """Whether the client was offboarded (and not re-enrolled since).

    A writer that may race with an erasure writes first, then asks this, and removes what it
    wrote if the answer is yes: the erasure sets the tombstone before it deletes, so either
    its delete or the writer's own clean-up catches the write.
    """
    tombstone = await db[TOMBSTONES].find_one(member_key(tenant_id, client_id), {"_id": 1})
    return tombstone is not None


class Membership:
    """The roster and the erasure of offboarded clients, for one service's database."""

    def __init__(self, db: AsyncDatabase, personal_collections: Sequence[str]) -> None:
        self._db = db
        self._roster = db[ROSTER]
        self._tombstones = db[TOMBSTONES]
        self._personal = [ROSTER, *personal_collections]

    async def admit(self, event: Event, event_id: str, event_time: datetime) -> bool:
        """Apply the membership side of an event; False if the client's events are dropped."""
        return (await self.admit_many([Admission(event, event_id, event_time)]))[0]

    async def admit_many(self, admissions: Sequence[Admission]) -> list[bool]:
        """`admit` for events of distinct clients, in a few round trips for all of them: one
        read of their tombstones, one of their roster entries, one write of each kind."""
        admitted: list[bool | None] = [None] * len(admissions)
        for index, admission in enumerate(admissions):
            event = admission.event
            if isinstance(event, ClientOffboarded):
                await self.erase(event.tenant_id, event.client_id, admission.event_time)
                admitted[index] = True
        pending = [index for index, verdict in enumerate(admitted) if verdict is None]
        keys = [member_key(admissions[index].event.tenant_id, admissions[index].event.client_id)
                for index in pending]
        tombstones = {tombstone["_id"]: tombstone["offboarded_at"] for tombstone in
                      await self._tombstones.find({"_id": {"$in": [key["_id"] for key in keys]}},
                                                  {"offboarded_at": 1}).to_list()}
        changes: list[tuple[int, Change]] = []
        for index, key in zip(pending, keys, strict=True):
            event, event_id, event_time = admissions[index]
            if key["_id"] in tombstones:
                if not isinstance(event, ClientEnrolled):
                    admitted[index] = False
                    continue
                # A newer enrolment lifts the tombstone; an older (replayed) one does not.
                await self._tombstones.delete_one({**key, "offboarded_at": {"$lt": event_time}})
                if await is_erased(self._db, event.tenant_id, event.client_id):
                    admitted[index] = False
                    continue
            admitted[index] = True
            if isinstance(event, ClientEnrolled):
                changes.append((index, Change(key, event_id, {"$set": {
                    "program_id": event.program_id, "enrolled_at": event_time,
                    "coach_id": event.coach.coach_id if event.coach else None}})))
            elif isinstance(event, CoachAssigned):
                changes.append((index, Change(key, event_id,
                                              {"$set": {"coach_id": event.coach.coach_id}})))
        if changes:
            await apply_each_once(self._roster, [change for _, change in changes])
        return [bool(verdict) for verdict in admitted]

    async def erase(self, tenant_id: str, client_id: str, offboarded_at: datetime) -> int:
        """Delete everything of the client (idempotent); returns the documents deleted."""
        await self._tombstones.update_one(member_key(tenant_id, client_id),
                                          {"$set": {"offboarded_at": offboarded_at}}, upsert=True)
        key = {"tenant_id": tenant_id, "client_id": client_id}
        deleted = 0
        for name in self._personal:
            deleted += (await self._db[name].delete_many(key)).deleted_count
        return deleted

    async def caseload(self, tenant_id: str, coach_id: str) -> list[dict[str, Any]]:
        """The clients assigned to a coach, by client id."""
        cursor = self._roster.find({"tenant_id": tenant_id, "coach_id": coach_id},
                                   {"_id": 0, "client_id": 1, "program_id": 1, "enrolled_at": 1}
                                   ).sort("client_id", 1)
        return await cursor.to_list()

    async def coach_of(self, tenant_id: str, client_id: str) -> str | None:
        """The client's coach, or None (not enrolled here, or no coach yet)."""
        return (await self.coaches_of([(tenant_id, client_id)])).get((tenant_id, client_id))

    async def coaches_of(self, clients: Sequence[tuple[str, str]]
                         ) -> dict[tuple[str, str], str]:
        """The coaches of many (tenant, client) pairs in one read; a client not enrolled
        here, or without a coach, is left out."""
        ids = [member_key(tenant_id, client_id)["_id"] for tenant_id, client_id in clients]
        members = await self._roster.find({"_id": {"$in": ids}}, {
            "tenant_id": 1, "client_id": 1, "coach_id": 1}).to_list()
        return {(member["tenant_id"], member["client_id"]): member["coach_id"]
                for member in members if member.get("coach_id") is not None}
