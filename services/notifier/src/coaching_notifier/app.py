"""Wiring of the notifier service: broker, database, handlers, dispatcher and routes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from coaching_shared.contracts import (
    ClientEnrolled,
    CoachAssigned,
    NotificationFailed,
    NotificationSent,
)
from coaching_shared.events import utc_now
from coaching_shared.service import ServiceDefinition, ServiceRuntime, build_service, run_service
from fastapi import FastAPI

from coaching_notifier import api
from coaching_notifier.channels import EmailSender, InboxSender, WebhookSender
from coaching_notifier.dispatcher import DeliveryDispatcher
from coaching_notifier.domain import NOTIFIABLE_EVENTS, Channel, RetryPolicy
from coaching_notifier.handlers import NotifierHandlers
from coaching_notifier.repository import (
    INDEXES,
    OUTBOX_COLLECTIONS,
    PERSONAL_COLLECTIONS,
    NotifierRepository,
)
from coaching_notifier.settings import NotifierSettings

DEFINITION = ServiceDefinition(
    title="Coaching notifier service",
    description="Email, signed webhooks and an in-app inbox; preferences and quiet hours; "
                "one delivery per event, recipient and channel.",
    routers=[api.router], indexes=INDEXES, outbox_collections=OUTBOX_COLLECTIONS,
    personal_collections=PERSONAL_COLLECTIONS,
    produces=[NotificationSent, NotificationFailed], wire=lambda runtime: None)


def create_app(settings: NotifierSettings | None = None,
               clock: Callable[[], datetime] = utc_now) -> FastAPI:
    """The notifier app; `clock` is injectable so tests can move time (quiet hours)."""
    settings = settings or NotifierSettings()
    parts: dict[str, object] = {}

    def wire(runtime: ServiceRuntime) -> None:
        repository = NotifierRepository(runtime.db)
        webhooks = WebhookSender(settings, repository)
        dispatcher = DeliveryDispatcher(
            repository,
            {Channel.EMAIL: EmailSender(settings), Channel.WEBHOOK: webhooks,
             Channel.INBOX: InboxSender(repository)},
            runtime.relay_document,
            RetryPolicy(settings.delivery_max_attempts, settings.delivery_backoff_seconds,
                        settings.delivery_backoff_max_seconds),
            lease=timedelta(seconds=settings.delivery_lease_seconds),
            poll_seconds=settings.dispatcher_poll_seconds,
            concurrency=settings.dispatcher_concurrency, clock=clock,
            relay_scope=runtime.relay.deferred)
        handlers = NotifierHandlers(repository, runtime.membership, settings, clock,
                                    dispatcher.wake)
        # Each type also has a batch handler: a wave's events of the type are planned together.
        runtime.consumer.on(ClientEnrolled, handlers.client_enrolled,
                            batch=handlers.client_enrolled_together)
        runtime.consumer.on(CoachAssigned, handlers.coach_assigned,
                            batch=handlers.coach_assigned_together)
        for model in NOTIFIABLE_EVENTS:
            if model not in (ClientEnrolled, CoachAssigned):
                runtime.consumer.on(model, handlers.notify, batch=handlers.notify_together)
        runtime.run_in_background(dispatcher)
        parts["dispatcher"] = dispatcher

    app = build_service(settings, replace(DEFINITION, wire=wire))
    app.state.clock = clock
    app.state.dispatcher = parts["dispatcher"]
    return app


def main() -> None:
    settings = NotifierSettings()
    run_service(create_app(settings), settings)
