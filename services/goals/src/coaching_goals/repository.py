"""Every MongoDB query of the goals service."""

from __future__ import annotations

from typing import Any

from coaching_shared.mongo import IndexSpec, apply_once
from pymongo.asynchronous.database import AsyncDatabase

ASSESSMENT_RESULTS = "assessment_results"

INDEXES = [
    IndexSpec(ASSESSMENT_RESULTS, [("tenant_id", 1), ("client_id", 1), ("assessment_id", 1)],
              unique=True),
]
OUTBOX_COLLECTIONS: list[str] = []
PERSONAL_COLLECTIONS = [ASSESSMENT_RESULTS]


class GoalsRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.assessment_results = db[ASSESSMENT_RESULTS]

    async def store_assessment(self, tenant_id: str, client_id: str, cause_id: str,
                               basis: dict[str, Any]) -> None:
        """Keep what suggestions need from a completed assessment, once per event."""
        await apply_once(
            self.assessment_results,
            {"tenant_id": tenant_id, "client_id": client_id,
             "assessment_id": basis["assessment_id"]},
            cause_id, {"$set": basis})

    async def assessments_of(self, tenant_id: str, client_id: str) -> list[dict[str, Any]]:
        cursor = self.assessment_results.find(
            {"tenant_id": tenant_id, "client_id": client_id}).sort("completed_at", 1)
        return await cursor.to_list()
