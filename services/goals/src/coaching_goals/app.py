"""Wiring of the goals service: broker, database, handlers and routes; nothing else."""

from __future__ import annotations

from coaching_shared.contracts import (
    AssessmentCompleted,
    CheckInCompleted,
    GoalAbandoned,
    GoalAchieved,
    GoalProgressUpdated,
    GoalSet,
    GoalSuggested,
)
from coaching_shared.service import ServiceDefinition, ServiceRuntime, build_service, run_service
from fastapi import FastAPI

from coaching_goals import api
from coaching_goals.handlers import GoalsHandlers
from coaching_goals.repository import (
    INDEXES,
    OUTBOX_COLLECTIONS,
    PERSONAL_COLLECTIONS,
    GoalsRepository,
)
from coaching_goals.settings import GoalsSettings


def wire(runtime: ServiceRuntime) -> None:
    handlers = GoalsHandlers(GoalsRepository(runtime.db, runtime.relay_document),
                             runtime.settings, runtime.membership)  # type: ignore[arg-type]
    runtime.consumer.on(AssessmentCompleted, handlers.assessment_completed,
                        batch=handlers.assessments_completed)
    runtime.consumer.on(CheckInCompleted, handlers.checkin_completed)


DEFINITION = ServiceDefinition(
    title="Coaching goals service",
    description="SMART goals, KPIs, action plans that put high-impact work first, progress.",
    routers=[api.router], indexes=INDEXES, outbox_collections=OUTBOX_COLLECTIONS,
    personal_collections=PERSONAL_COLLECTIONS,
    produces=[GoalSuggested, GoalSet, GoalProgressUpdated, GoalAchieved, GoalAbandoned],
    wire=wire)


def create_app(settings: GoalsSettings | None = None) -> FastAPI:
    return build_service(settings or GoalsSettings(), DEFINITION)


def main() -> None:
    settings = GoalsSettings()
    run_service(create_app(settings), settings)
