"""Every MongoDB query of the assessment service."""

from __future__ import annotations

from typing import Any

from coaching_shared.events import EventMessage
from coaching_shared.mongo import IndexSpec, apply_once
from pymongo.asynchronous.database import AsyncDatabase

ASSESSMENTS = "assessments"

INDEXES = [
    IndexSpec(ASSESSMENTS, [("tenant_id", 1), ("client_id", 1), ("assessment_id", 1)],
              unique=True),
]
OUTBOX_COLLECTIONS = [ASSESSMENTS]
PERSONAL_COLLECTIONS = [ASSESSMENTS]


class AssessmentRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.assessments = db[ASSESSMENTS]

    async def record_completion(self, tenant_id: str, client_id: str, assessment_id: str,
                                cause_id: str, fields: dict[str, Any],
                                outbox: list[EventMessage]) -> dict[str, Any] | None:
        """Store a completed assessment and its outgoing events, once per cause."""
        return await apply_once(
            self.assessments,
            {"tenant_id": tenant_id, "client_id": client_id, "assessment_id": assessment_id},
            cause_id, {"$set": fields}, outbox=outbox)

    async def assessments_of(self, tenant_id: str, client_id: str) -> list[dict[str, Any]]:
        cursor = self.assessments.find(
            {"tenant_id": tenant_id, "client_id": client_id}).sort("completed_at", 1)
        return await cursor.to_list()
