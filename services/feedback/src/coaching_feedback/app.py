"""Wiring of the feedback service: broker, database, handlers and routes; nothing else."""

from __future__ import annotations

from coaching_shared.service import ServiceDefinition, ServiceRuntime, build_service, run_service
from fastapi import FastAPI

from coaching_feedback import api
from coaching_feedback.settings import FeedbackSettings


def wire(runtime: ServiceRuntime) -> None:
    """Membership events only so far; check-in scheduling arrives with its issue."""


DEFINITION = ServiceDefinition(
    title="Coaching feedback service",
    description="Check-in schedules and CheckInDue, check-ins, progress reviews, reflective "
                "exercises and coach feedback.",
    routers=[api.router], indexes=[], outbox_collections=[], personal_collections=[],
    produces=[], wire=wire)


def create_app(settings: FeedbackSettings | None = None) -> FastAPI:
    return build_service(settings or FeedbackSettings(), DEFINITION)


def main() -> None:
    settings = FeedbackSettings()
    run_service(create_app(settings), settings)
