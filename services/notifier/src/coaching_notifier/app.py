"""Wiring of the notifier service: broker, database, handlers and routes; nothing else."""

from __future__ import annotations

from coaching_shared.contracts import ClientEnrolled, CoachAssigned
from coaching_shared.service import ServiceDefinition, ServiceRuntime, build_service, run_service
from fastapi import FastAPI

from coaching_notifier import api
from coaching_notifier.handlers import NotifierHandlers
from coaching_notifier.repository import (
    INDEXES,
    OUTBOX_COLLECTIONS,
    PERSONAL_COLLECTIONS,
    NotifierRepository,
)
from coaching_notifier.settings import NotifierSettings


def wire(runtime: ServiceRuntime) -> None:
    handlers = NotifierHandlers(NotifierRepository(runtime.db))
    runtime.consumer.on(ClientEnrolled, handlers.client_enrolled)
    runtime.consumer.on(CoachAssigned, handlers.coach_assigned)


DEFINITION = ServiceDefinition(
    title="Coaching notifier service",
    description="Email, signed webhooks and an in-app inbox; preferences and quiet hours.",
    routers=[api.router], indexes=INDEXES, outbox_collections=OUTBOX_COLLECTIONS,
    personal_collections=PERSONAL_COLLECTIONS, produces=[], wire=wire)


def create_app(settings: NotifierSettings | None = None) -> FastAPI:
    return build_service(settings or NotifierSettings(), DEFINITION)


def main() -> None:
    settings = NotifierSettings()
    run_service(create_app(settings), settings)
