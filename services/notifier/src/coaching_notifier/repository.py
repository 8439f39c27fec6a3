"""Every MongoDB query of the notifier service."""

from __future__ import annotations

from typing import Any

from coaching_shared.mongo import IndexSpec, apply_once
from pymongo.asynchronous.database import AsyncDatabase

CONTACTS = "contacts"

INDEXES = [IndexSpec(CONTACTS, [("tenant_id", 1), ("person_id", 1)], unique=True)]
OUTBOX_COLLECTIONS: list[str] = []
# A client's contact document carries client_id (erased on offboarding); a coach's does not.
PERSONAL_COLLECTIONS = [CONTACTS]


class NotifierRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.contacts = db[CONTACTS]

    async def save_contact(self, tenant_id: str, person_id: str, cause_id: str,
                           contact: dict[str, Any], *, client_id: str | None) -> None:
        fields = {**contact, "client_id": client_id} if client_id else contact
        await apply_once(self.contacts, {"tenant_id": tenant_id, "person_id": person_id},
                         cause_id, {"$set": fields})

    async def contact(self, tenant_id: str, person_id: str) -> dict[str, Any] | None:
        return await self.contacts.find_one({"tenant_id": tenant_id, "person_id": person_id})
