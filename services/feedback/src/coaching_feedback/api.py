"""The feedback service's HTTP API."""

from __future__ import annotations

from typing import Annotated, Any

from coaching_shared.auth import CurrentPrincipal, Role, require
from coaching_shared.service import ServiceRuntime, runtime_of
from fastapi import APIRouter, Depends

router = APIRouter(prefix="/v1", tags=["caseload"])
Runtime = Annotated[ServiceRuntime, Depends(runtime_of)]


@router.get("/caseload")
async def my_caseload(principal: CurrentPrincipal, runtime: Runtime) -> list[dict[str, Any]]:
    """The clients assigned to the calling coach."""
    require(principal, Role.COACH)
    return await runtime.membership.caseload(principal.tenant_id, principal.subject)
