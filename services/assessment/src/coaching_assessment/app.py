"""Wiring of the assessment service: broker, database, handlers and routes; nothing else."""

from __future__ import annotations

from coaching_shared.contracts import AssessmentCompleted, ClientEnrolled
from coaching_shared.service import ServiceDefinition, ServiceRuntime, build_service, run_service
from fastapi import FastAPI

from coaching_assessment import api
from coaching_assessment.handlers import AssessmentHandlers
from coaching_assessment.repository import (
    INDEXES,
    OUTBOX_COLLECTIONS,
    PERSONAL_COLLECTIONS,
    AssessmentRepository,
)
from coaching_assessment.settings import AssessmentSettings


def wire(runtime: ServiceRuntime) -> None:
    handlers = AssessmentHandlers(AssessmentRepository(runtime.db), runtime)
    runtime.consumer.on(ClientEnrolled, handlers.client_enrolled)


DEFINITION = ServiceDefinition(
    title="Coaching assessment service",
    description="Assessment instruments, responses, scoring, strengths and development areas.",
    routers=[api.router], indexes=INDEXES, outbox_collections=OUTBOX_COLLECTIONS,
    personal_collections=PERSONAL_COLLECTIONS, produces=[AssessmentCompleted], wire=wire)


def create_app(settings: AssessmentSettings | None = None) -> FastAPI:
    return build_service(settings or AssessmentSettings(), DEFINITION)


def main() -> None:
    settings = AssessmentSettings()
    run_service(create_app(settings), settings)
