"""The notifier service's HTTP API: contacts, preferences, inbox, tenant defaults,
templates, webhook subscriptions and the delivery log."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

from coaching_shared.auth import CurrentPrincipal, Principal, Role, require
from coaching_shared.commands import IdempotencyKey, command_id
from coaching_shared.mongo import without_internals
from coaching_shared.problems import InvalidField, problem_responses
from coaching_shared.service import ServiceRuntime, runtime_of
from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from coaching_notifier.domain import (
    NOTIFIABLE_TYPES,
    Channel,
    DeliveryStatus,
    Preferences,
    TenantDefaults,
    WebhookSubscriptionRequest,
    new_webhook_secret,
    rotated_secrets,
    valid_secrets,
    webhook_url_problem,
)
from coaching_notifier.messages import BUILT_IN, TemplateOverride, check_override
from coaching_notifier.repository import NotifierRepository
from coaching_notifier.settings import NotifierSettings

router = APIRouter(prefix="/v1")
Runtime = Annotated[ServiceRuntime, Depends(runtime_of)]
LOCALE = Path(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$", description="e.g. en, de, de-AT")


def repository_of(request: Request) -> NotifierRepository:
    return NotifierRepository(runtime_of(request).db)


def clock_of(request: Request) -> Callable[[], datetime]:
    return request.app.state.clock


Repository = Annotated[NotifierRepository, Depends(repository_of)]
Clock = Annotated[Callable[[], datetime], Depends(clock_of)]


def _settings(request: Request) -> NotifierSettings:
    return request.app.state.settings


# -- contacts ---------------------------------------------------------------------------------


@router.get("/people/me/contact", responses=problem_responses(404), tags=["contacts"])
async def my_contact(principal: CurrentPrincipal, repository: Repository) -> dict[str, Any]:
    """How the platform reaches the caller (from their enrolment or coach assignment)."""
    found = await repository.contact(principal.tenant_id, principal.subject)
    if found is None:
        raise HTTPException(404, "no contact details known for you yet")
    return without_internals(found)


@router.get("/people/{person_id}/contact", responses=problem_responses(403, 404), tags=["contacts"])
async def person_contact(person_id: str, principal: CurrentPrincipal,
                         repository: Repository) -> dict[str, Any]:
    """A person's contact details, for integrations (e.g. an HRIS reconciling its data)."""
    if not principal.has(Role.INTEGRATION):
        raise HTTPException(404, f"no person {person_id!r} visible to you")
    found = await repository.contact(principal.tenant_id, person_id)
    if found is None:
        raise HTTPException(404, f"no person {person_id!r} visible to you")
    return without_internals(found)


# -- preferences ------------------------------------------------------------------------------


@router.get("/people/me/preferences", tags=["preferences"])
async def my_preferences(principal: CurrentPrincipal, repository: Repository) -> Preferences:
    """The caller's notification preferences (defaults until they set any)."""
    stored = await repository.preferences(principal.tenant_id, principal.subject)
    return Preferences.model_validate((stored or {}).get("preferences", {}))


@router.put("/people/me/preferences", tags=["preferences"])
async def set_my_preferences(preferences: Preferences, principal: CurrentPrincipal,
                             repository: Repository, clock: Clock,
                             idempotency_key: IdempotencyKey = None) -> Preferences:
    """Replace the caller's preferences: channels per event type, quiet hours, opt-out."""
    cause = command_id(principal, idempotency_key, "set-preferences")
    await repository.save_preferences(
        principal.tenant_id, principal.subject, cause, preferences.model_dump(mode="json"),
        client_id=principal.subject if principal.has(Role.CLIENT) else None, now=clock())
    return preferences


# -- inbox ------------------------------------------------------------------------------------


@router.get("/inbox", tags=["inbox"])
async def my_inbox(principal: CurrentPrincipal, repository: Repository,
                   unread_only: bool = False, limit: Annotated[int, Query(ge=1, le=200)] = 50,
                   before: datetime | None = None) -> list[dict[str, Any]]:
    """The caller's notifications, newest first; page with `before` (a `created_at`)."""
    return await repository.inbox_items(principal.tenant_id, principal.subject,
                                        unread_only=unread_only, limit=limit, before=before)


@router.get("/inbox/unread-count", tags=["inbox"])
async def my_unread_count(principal: CurrentPrincipal, repository: Repository) -> dict[str, int]:
    """How many of the caller's notifications are unread (for a badge)."""
    return {"unread": await repository.unread_count(principal.tenant_id, principal.subject)}


@router.post("/inbox/{notification_id}/read", responses=problem_responses(404), tags=["inbox"])
async def mark_read(notification_id: str, principal: CurrentPrincipal, repository: Repository,
                    clock: Clock) -> dict[str, int]:
    """Mark one notification read (again is fine); answers the new unread count."""
    if not await repository.mark_read(principal.tenant_id, principal.subject, notification_id,
                                      clock()):
        raise HTTPException(404, f"no notification {notification_id!r} in your inbox")
    return {"unread": await repository.unread_count(principal.tenant_id, principal.subject)}


@router.post("/inbox/read-all", tags=["inbox"])
async def mark_all_read(principal: CurrentPrincipal, repository: Repository,
                        clock: Clock) -> dict[str, int]:
    """Mark every notification of the caller read."""
    marked = await repository.mark_all_read(principal.tenant_id, principal.subject, clock())
    return {"marked": marked, "unread": 0}


# -- tenant defaults and templates (tenant admins) ---------------------------------------------


@router.get("/notification-defaults", responses=problem_responses(403), tags=["tenant settings"])
async def tenant_defaults(principal: CurrentPrincipal, repository: Repository
                          ) -> TenantDefaults:
    """The tenant's default channels per event type and audience, and quiet hours."""
    require(principal, Role.ADMIN)
    stored = await repository.tenant_defaults(principal.tenant_id)
    return TenantDefaults.model_validate((stored or {}).get("defaults", {}))


@router.put("/notification-defaults", responses=problem_responses(403), tags=["tenant settings"])
async def set_tenant_defaults(defaults: TenantDefaults, principal: CurrentPrincipal,
                              repository: Repository, clock: Clock,
                              idempotency_key: IdempotencyKey = None) -> TenantDefaults:
    """Replace the tenant's defaults (a person's own preferences still win)."""
    require(principal, Role.ADMIN)
    cause = command_id(principal, idempotency_key, "set-notification-defaults")
    await repository.save_tenant_defaults(principal.tenant_id, cause,
                                          defaults.model_dump(mode="json"), clock())
    return defaults


@router.get("/templates", responses=problem_responses(403), tags=["tenant settings"])
async def templates(principal: CurrentPrincipal, repository: Repository) -> dict[str, Any]:
    """The built-in texts (event type, audience, locales) and the tenant's overrides."""
    require(principal, Role.ADMIN)
    built_in = [{"event_type": event_type, "audience": audience.value,
                 "locales": sorted(texts)}
                for (event_type, audience), texts in sorted(BUILT_IN.items())]
    overrides = await repository.template_overrides(principal.tenant_id)
    return {"built_in": built_in, "overrides": overrides}


def _known_event_type(event_type: str) -> None:
    if event_type not in NOTIFIABLE_TYPES:
        raise HTTPException(404, f"no notifications for event type {event_type!r}")


@router.put("/templates/{event_type}/{locale}", tags=["tenant settings"],
            responses=problem_responses(403, 404))
async def set_template(event_type: str, locale: Annotated[str, LOCALE],
                       template: TemplateOverride, principal: CurrentPrincipal,
                       repository: Repository, clock: Clock,
                       idempotency_key: IdempotencyKey = None) -> TemplateOverride:
    """The tenant's own wording for an event type in a locale (Jinja2, sandboxed).

    Variables: recipient.name, client.name, coach.name, event.<field>, link, local(time).
    """
    require(principal, Role.ADMIN)
    _known_event_type(event_type)
    problem = check_override(template)
    if problem:
        raise InvalidField("template", problem)
    cause = command_id(principal, idempotency_key, f"set-template|{event_type}|{locale}")
    await repository.save_template(principal.tenant_id, event_type, locale, cause,
                                   template.model_dump(mode="json"), clock())
    return template


@router.delete("/templates/{event_type}/{locale}", tags=["tenant settings"], status_code=204,
               responses=problem_responses(403, 404))
async def delete_template(event_type: str, locale: Annotated[str, LOCALE],
                          principal: CurrentPrincipal, repository: Repository) -> None:
    """Go back to the built-in text."""
    require(principal, Role.ADMIN)
    if not await repository.delete_template(principal.tenant_id, event_type, locale):
        raise HTTPException(404, f"no override for {event_type!r} in {locale!r}")


# -- webhook subscriptions (tenant admins and integrations) -----------------------------------


def _subscription_view(document: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A subscription without its secrets (they are shown once, when issued)."""
    view = {name: document.get(name) for name in
            ("subscription_id", "url", "event_types", "description", "created_at")}
    view["valid_secrets"] = len(valid_secrets(document.get("secrets", []), now))
    return view


def _may_manage_webhooks(principal: Principal) -> None:
    require(principal, Role.ADMIN, Role.INTEGRATION)


@router.post("/webhooks", responses=problem_responses(403, 409), tags=["webhooks"], status_code=201)
async def subscribe_webhook(request: WebhookSubscriptionRequest, principal: CurrentPrincipal,
                            repository: Repository, clock: Clock, http: Request,
                            idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """Subscribe a URL to event types; the answer carries the signing secret, once.

    Retried with the same Idempotency-Key, it answers the same subscription and secret.
    """
    _may_manage_webhooks(principal)
    problem = webhook_url_problem(request.url, _settings(http).webhook_allow_http_loopback)
    if problem:
        raise InvalidField("url", problem)
    cause = command_id(principal, idempotency_key, "subscribe-webhook")
    subscription_id = f"wh-{cause}"
    now = clock()
    await repository.create_webhook(principal.tenant_id, subscription_id, cause, {
        "url": request.url, "event_types": request.event_types,
        "description": request.description, "created_at": now, "created_by": principal.subject,
        "secrets": [{"secret": new_webhook_secret(), "created_at": now, "retires_at": None}]})
    stored = await repository.webhook(principal.tenant_id, subscription_id)
    if stored is None:
        raise HTTPException(409, "the subscription was removed meanwhile")
    return {**_subscription_view(stored, now), "secret": stored["secrets"][0]["secret"]}


@router.get("/webhooks", responses=problem_responses(403), tags=["webhooks"])
async def list_webhooks(principal: CurrentPrincipal, repository: Repository,
                        clock: Clock) -> list[dict[str, Any]]:
    """The tenant's webhook subscriptions (without secrets)."""
    _may_manage_webhooks(principal)
    now = clock()
    return [_subscription_view(s, now) for s in await repository.webhooks_of(principal.tenant_id)]


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_hours: float | None = Field(
        default=None, ge=0, le=24 * 30,
        description="how long the previous secret stays valid; the service default if absent")


@router.post("/webhooks/{subscription_id}/rotate-secret", tags=["webhooks"],
             responses=problem_responses(403, 404, 409))
async def rotate_webhook_secret(subscription_id: str, principal: CurrentPrincipal,
                                repository: Repository, clock: Clock, http: Request,
                                rotation: Annotated[Rotation | None, Body()] = None
                                ) -> dict[str, Any]:
    """Issue a new secret; the previous one keeps verifying until the overlap ends.

    During the overlap every call carries two signatures, so receivers can switch secrets
    at their own pace.
    """
    _may_manage_webhooks(principal)
    stored = await repository.webhook(principal.tenant_id, subscription_id)
    if stored is None:
        raise HTTPException(404, f"no webhook subscription {subscription_id!r}")
    hours = (rotation.overlap_hours if rotation and rotation.overlap_hours is not None
             else _settings(http).webhook_secret_overlap_hours)
    now = clock()
    secrets = rotated_secrets(stored["secrets"], new_webhook_secret(), now,
                              timedelta(hours=hours))
    if not await repository.rotate_webhook_secrets(principal.tenant_id, subscription_id,
                                                   str(uuid.uuid4()), secrets,
                                                   stored["secrets"]):
        raise HTTPException(409, "the secret was rotated concurrently; fetch and retry")
    previous_until = secrets[1]["retires_at"] if len(secrets) > 1 else None
    return {"subscription_id": subscription_id, "secret": secrets[0]["secret"],
            "previous_secret_valid_until": previous_until}


@router.delete("/webhooks/{subscription_id}", tags=["webhooks"], status_code=204,
               responses=problem_responses(403, 404))
async def unsubscribe_webhook(subscription_id: str, principal: CurrentPrincipal,
                              repository: Repository) -> None:
    """Stop calling the URL; deliveries still queued for it fail as 'subscription removed'."""
    _may_manage_webhooks(principal)
    if not await repository.delete_webhook(principal.tenant_id, subscription_id):
        raise HTTPException(404, f"no webhook subscription {subscription_id!r}")


# -- the delivery log -------------------------------------------------------------------------


@router.get("/deliveries", responses=problem_responses(403), tags=["delivery log"])
async def delivery_log(principal: CurrentPrincipal, repository: Repository,
                       cause_event_id: str | None = None, recipient_id: str | None = None,
                       client_id: str | None = None, channel: Channel | None = None,
                       status: DeliveryStatus | None = None,
                       limit: Annotated[int, Query(ge=1, le=500)] = 100
                       ) -> list[dict[str, Any]]:
    """Deliveries with their attempts and outcome, newest first (integrations, e.g. support
    tooling). Message content is never shown here."""
    require(principal, Role.INTEGRATION)
    criteria = {name: value for name, value in
                (("cause_event_id", cause_event_id), ("recipient_id", recipient_id),
                 ("client_id", client_id), ("channel", channel.value if channel else None),
                 ("status", status.value if status else None))
                if value is not None}
    return await repository.delivery_log(principal.tenant_id, criteria, limit)


@router.get("/deliveries/summary", responses=problem_responses(403), tags=["delivery log"])
async def delivery_summary(principal: CurrentPrincipal,
                           repository: Repository) -> dict[str, dict[str, int]]:
    """Counts per channel and status: how well notifications reach people (admins)."""
    require(principal, Role.ADMIN, Role.INTEGRATION)
    return await repository.delivery_counts(principal.tenant_id)


@router.post("/deliveries/{notification_id}/retry", tags=["delivery log"],
             responses=problem_responses(403, 404, 409))
async def retry_delivery(notification_id: str, principal: CurrentPrincipal,
                         repository: Repository, clock: Clock, http: Request
                         ) -> dict[str, Any]:
    """Queue a failed delivery again, e.g. once a webhook receiver is fixed."""
    require(principal, Role.INTEGRATION)
    requeued = await repository.retry_failed(principal.tenant_id, notification_id, clock())
    if requeued is None:
        # 404 for a delivery this tenant does not have (like every other unknown id), 409
        # for one of its own that is not failed.
        known = await repository.delivery_log(principal.tenant_id,
                                              {"notification_id": notification_id}, 1)
        raise HTTPException(409 if known else 404, f"no failed delivery {notification_id!r}")
    http.app.state.dispatcher.wake()
    return requeued
