"""Wiring of the feedback service: broker, database, handlers, scheduler, routes; nothing else."""

from __future__ import annotations

from coaching_shared.contracts import (
    CheckInCompleted,
    CheckInDue,
    CheckInMissed,
    ClientAtRisk,
    ClientEnrolled,
    CoachAssigned,
    FeedbackGiven,
    GoalAbandoned,
    GoalAchieved,
    GoalSet,
    MultiRaterFeedbackCompleted,
    ProgressReviewed,
)
from coaching_shared.service import ServiceDefinition, ServiceRuntime, build_service, run_service
from fastapi import FastAPI

from coaching_feedback import api
from coaching_feedback.clock import Clock
from coaching_feedback.handlers import FeedbackHandlers
from coaching_feedback.repository import (
    INDEXES,
    OUTBOX_COLLECTIONS,
    PERSONAL_COLLECTIONS,
    PUBLISHED_ONCE,
    FeedbackRepository,
)
from coaching_feedback.scheduler import CheckInScheduler
from coaching_feedback.settings import FeedbackSettings


def create_app(settings: FeedbackSettings | None = None, clock: Clock | None = None) -> FastAPI:
    """The feedback service; `clock` replaces the settings' clock (tests walk the calendar)."""
    settings = settings or FeedbackSettings()
    clock = clock or settings.clock()
    parts: dict[str, object] = {}

    def wire(runtime: ServiceRuntime) -> None:
        repository = FeedbackRepository(runtime.db)
        handlers = FeedbackHandlers(repository, runtime.membership, settings, clock, runtime)
        consumer = runtime.consumer
        consumer.on(ClientEnrolled, handlers.client_enrolled,
                    batch=handlers.client_enrolled_together)
        consumer.on(CoachAssigned, handlers.coach_assigned)
        consumer.on(GoalSet, handlers.goal_set, batch=handlers.goal_set_together)
        consumer.on(GoalAchieved, handlers.goal_achieved)
        consumer.on(GoalAbandoned, handlers.goal_abandoned)
        consumer.on(CheckInDue, handlers.checkin_due, batch=handlers.checkin_due_together)
        consumer.on(CheckInCompleted, handlers.checkin_settled)
        consumer.on(CheckInMissed, handlers.checkin_settled)
        parts["repository"] = repository
        scheduler = CheckInScheduler(repository, runtime.publisher, settings, clock,
                                     runtime.relay_document)
        runtime.run_in_background(scheduler)
        parts["scheduler"] = scheduler

    definition = ServiceDefinition(
        title="Coaching feedback service",
        description="Check-in schedules and CheckInDue, check-ins, progress reviews, reflective "
                    "exercises, coach feedback and multi-rater (360) feedback.",
        routers=[api.router], indexes=INDEXES, outbox_collections=OUTBOX_COLLECTIONS,
        publish_once=PUBLISHED_ONCE, personal_collections=PERSONAL_COLLECTIONS,
        produces=[CheckInDue, CheckInCompleted, CheckInMissed, ProgressReviewed, FeedbackGiven,
                  ClientAtRisk, MultiRaterFeedbackCompleted],
        wire=wire)
    app = build_service(settings, definition)
    app.state.feedback_repository = parts["repository"]
    app.state.feedback_clock = clock
    app.state.scheduler = parts["scheduler"]
    return app


def main() -> None:
    settings = FeedbackSettings()
    run_service(create_app(settings), settings)
