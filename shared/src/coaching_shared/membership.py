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
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from coaching_shared.contracts.enrolment import ClientEnrolled, ClientOffboarded, CoachAssigned
from coaching_shared.events import Event
from coaching_shared.mongo import IndexSpec, apply_once, keyed

ROSTER = "roster"
TOMBSTONES = "erased_clients"
INDEXES = [
    IndexSpec(ROSTER, [("tenant_id", 1), ("client_id", 1)], unique=True),
    IndexSpec(ROSTER, [("tenant_id", 1), ("coach_id", 1)]),
    IndexSpec(TOMBSTONES, [("tenant_id", 1), ("client_id", 1)], unique=True),
]


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
        key = member_key(event.tenant_id, event.client_id)
        if isinstance(event, ClientOffboarded):
            await self.erase(event.tenant_id, event.client_id, event_time)
            return True
        if isinstance(event, ClientEnrolled):
            # A newer enrolment lifts the tombstone; an older (replayed) one does not.
            await self._tombstones.delete_one({**key, "offboarded_at": {"$lt": event_time}})
        if await is_erased(self._db, event.tenant_id, event.client_id):
            return False
        if isinstance(event, ClientEnrolled):
            await apply_once(self._roster, key, event_id, {"$set": {
                "program_id": event.program_id, "enrolled_at": event_time,
                "coach_id": event.coach.coach_id if event.coach else None}})
        elif isinstance(event, CoachAssigned):
            await apply_once(self._roster, key, event_id,
                             {"$set": {"coach_id": event.coach.coach_id}})
        return True

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
        member = await self._roster.find_one(member_key(tenant_id, client_id), {"coach_id": 1})
        return member.get("coach_id") if member else None
