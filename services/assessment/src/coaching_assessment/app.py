"""Wiring of the assessment service: broker, database, handlers and routes; nothing else."""

from __future__ import annotations

from coaching_shared.contracts import AssessmentAssigned, AssessmentCompleted, ClientEnrolled
from coaching_shared.service import ServiceDefinition, ServiceRuntime, build_service, run_service
from fastapi import FastAPI

from coaching_assessment import api
from coaching_assessment.domain.instruments import builtin_instruments
from coaching_assessment.handlers import AssessmentHandlers
from coaching_assessment.repository import (
    INDEXES,
    OUTBOX_COLLECTIONS,
    PERSONAL_COLLECTIONS,
    AssessmentRepository,
)
from coaching_assessment.settings import AssessmentSettings


def definition(settings: AssessmentSettings) -> ServiceDefinition:
    def wire(runtime: ServiceRuntime) -> None:
        handlers = AssessmentHandlers(AssessmentRepository(runtime.db), runtime, settings)
        runtime.consumer.on(ClientEnrolled, handlers.client_enrolled,
                            batch=handlers.clients_enrolled)

    return ServiceDefinition(
        title="Coaching assessment service",
        description="Assessment instruments (skills, Big Five, RIASEC and tenants' own), "
                    "assignments, answers, scoring, norms, reliability, strengths and "
                    "development areas.",
        routers=[api.router], indexes=INDEXES, outbox_collections=OUTBOX_COLLECTIONS,
        personal_collections=PERSONAL_COLLECTIONS,
        produces=[AssessmentAssigned, AssessmentCompleted], wire=wire)


def create_app(settings: AssessmentSettings | None = None) -> FastAPI:
    settings = settings or AssessmentSettings()
    builtin_instruments()  # a faulty built-in definition stops the start, with the reason
    app = build_service(settings, definition(settings))
    app.state.repository = AssessmentRepository(app.state.runtime.db)
    return app


def main() -> None:
    settings = AssessmentSettings()
    run_service(create_app(settings), settings)
