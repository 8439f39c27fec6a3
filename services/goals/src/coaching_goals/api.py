"""The goals service's HTTP API."""

from __future__ import annotations

from typing import Annotated, Any

from coaching_shared.auth import CurrentPrincipal
from coaching_shared.mongo import without_internals
from coaching_shared.service import ServiceRuntime, authorize_client, runtime_of
from fastapi import APIRouter, Depends

from coaching_goals.repository import GoalsRepository

router = APIRouter(prefix="/v1", tags=["assessment results"])
Runtime = Annotated[ServiceRuntime, Depends(runtime_of)]


@router.get("/clients/{client_id}/assessment-results")
async def list_assessment_results(client_id: str, principal: CurrentPrincipal,
                                  runtime: Runtime) -> list[dict[str, Any]]:
    """The completed assessments goal suggestions build on, oldest first."""
    await authorize_client(principal, client_id, runtime)
    results = await GoalsRepository(runtime.db).assessments_of(principal.tenant_id, client_id)
    return [without_internals(result) for result in results]
