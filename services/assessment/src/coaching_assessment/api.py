"""The assessment service's HTTP API."""

from __future__ import annotations

from typing import Annotated, Any

from coaching_shared.auth import CurrentPrincipal
from coaching_shared.mongo import without_internals
from coaching_shared.service import ServiceRuntime, authorize_client, runtime_of
from fastapi import APIRouter, Depends

from coaching_assessment.repository import AssessmentRepository

router = APIRouter(prefix="/v1", tags=["assessments"])
Runtime = Annotated[ServiceRuntime, Depends(runtime_of)]


@router.get("/clients/{client_id}/assessments")
async def list_assessments(client_id: str, principal: CurrentPrincipal,
                           runtime: Runtime) -> list[dict[str, Any]]:
    """The client's completed assessments, oldest first."""
    await authorize_client(principal, client_id, runtime)
    found = await AssessmentRepository(runtime.db).assessments_of(principal.tenant_id, client_id)
    return [without_internals(assessment) for assessment in found]
