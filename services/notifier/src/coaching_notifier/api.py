"""The notifier service's HTTP API."""

from __future__ import annotations

from typing import Annotated, Any

from coaching_shared.auth import CurrentPrincipal, Role
from coaching_shared.mongo import without_internals
from coaching_shared.service import ServiceRuntime, runtime_of
from fastapi import APIRouter, Depends, HTTPException

from coaching_notifier.repository import NotifierRepository

router = APIRouter(prefix="/v1", tags=["contacts"])
Runtime = Annotated[ServiceRuntime, Depends(runtime_of)]


@router.get("/people/me/contact")
async def my_contact(principal: CurrentPrincipal, runtime: Runtime) -> dict[str, Any]:
    """How the platform reaches the caller (from their enrolment or coach assignment)."""
    found = await NotifierRepository(runtime.db).contact(principal.tenant_id, principal.subject)
    if found is None:
        raise HTTPException(404, "no contact details known for you yet")
    return without_internals(found)


@router.get("/people/{person_id}/contact")
async def person_contact(person_id: str, principal: CurrentPrincipal,
                         runtime: Runtime) -> dict[str, Any]:
    """A person's contact details, for integrations (e.g. an HRIS reconciling its data)."""
    if not principal.has(Role.INTEGRATION):
        raise HTTPException(404, f"no person {person_id!r} visible to you")
    found = await NotifierRepository(runtime.db).contact(principal.tenant_id, person_id)
    if found is None:
        raise HTTPException(404, f"no person {person_id!r} visible to you")
    return without_internals(found)
