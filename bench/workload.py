"""The events the benchmark pushes through: realistic AssessmentCompleted for distinct clients.

Every scenario (raw limits, the baseline, the services) reads the very same pre-filled topic,
so they all handle the same payloads. The shape is what the assessment service publishes for a
skills instrument: four scored scales, one strength, three development areas (so the goals
service drafts three goals per event, its real work).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from coaching_shared.contracts import (
    AssessmentCompleted,
    ClientEnrolled,
    GoalSet,
    GoalSuggested,
)
from coaching_shared.contracts.assessment import ScaleScore
from coaching_shared.contracts.enrolment import CoachContact
from coaching_shared.contracts.examples import EXAMPLES
from coaching_shared.events import EventMessage, derived_event_id, topic_name, utc_now

TENANT = "bench"
SOURCE = "/bench/assessment"
PARTITIONS = 6

_SCALES = (("time_management", "Time Management"), ("negotiation", "Negotiation"),
           ("stakeholder_management", "Stakeholder management"), ("writing", "Writing"))


def assessment_completed(index: int) -> AssessmentCompleted:
    """The index-th client's completed skills assessment (scores vary with the client)."""
    scores = [ScaleScore(scale_id=scale_id, label=label, minimum=1, maximum=5,
                         score=round(1 + ((index * 7 + position * 13) % 40) / 10, 1))
              for position, (scale_id, label) in enumerate(_SCALES)]
    ranked = sorted(scores, key=lambda score: score.score)
    return AssessmentCompleted(
        tenant_id=TENANT, client_id=client_id(index), assessment_id=f"asm-{index:07d}",
        instrument_id="skills", instrument_version=1, instrument_title="Skills self-assessment",
        completed_at=utc_now() - timedelta(minutes=index % 600),
        scores=scores, strengths=[ranked[-1].scale_id],
        development_areas=[score.scale_id for score in ranked[:3]])


def assessment_messages(count: int) -> list[EventMessage]:
    """`count` enveloped events, one per client, as the assessment service would emit them."""
    return [EventMessage.wrap(assessment_completed(index), SOURCE) for index in range(count)]


COACHES = 200  # a coach per 100 clients at 20,000 clients


def client_id(index: int) -> str:
    return f"client-{index:07d}"


def enrolment(index: int) -> ClientEnrolled:
    """The index-th client's enrolment, as the HR system's integration publishes it."""
    coach = index % COACHES
    return ClientEnrolled(
        tenant_id=TENANT, client_id=client_id(index), program_id="leaders-2027",
        display_name=f"Client {index}", email=f"client-{index:07d}@bench.example",
        timezone="Europe/Stockholm", locale="en",
        coach=CoachContact(coach_id=f"coach-{coach:03d}", display_name=f"Coach {coach}",
                       email=f"coach-{coach:03d}@bench.example"))


_GOAL_SET = next(event for event in EXAMPLES if isinstance(event, GoalSet))


def goal_set(index: int) -> GoalSet:
    """The index-th client's first goal, accepted (what the feedback service schedules)."""
    return _GOAL_SET.model_copy(update={
        "tenant_id": TENANT, "client_id": client_id(index), "goal_id": f"goal-{index:07d}",
        "coach_id": f"coach-{index % COACHES:03d}"})


def enrolment_messages(count: int) -> list[EventMessage]:
    return [EventMessage.wrap(enrolment(index), "/bench/hris") for index in range(count)]


def goal_set_messages(count: int) -> list[EventMessage]:
    return [EventMessage.wrap(goal_set(index), "/bench/goals") for index in range(count)]


@dataclass(frozen=True)
class Encoded:
    """A message as Kafka carries it: key, value and binary-mode headers."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def encode(message: EventMessage) -> Encoded:
    return Encoded(message.key(), message.body(),
                   [(name, value.encode()) for name, value in message.headers().items()])


def input_topic(prefix: str) -> str:
    """The topic the services read AssessmentCompleted from (the platform's naming rule)."""
    return topic_name(AssessmentCompleted.stream, prefix)


_SUGGESTION = next(event for event in EXAMPLES if isinstance(event, GoalSuggested))
_SUGGESTION_DATA = _SUGGESTION.model_dump(mode="json")


def outgoing_suggestion(cause: EventMessage) -> EventMessage:
    """One GoalSuggested caused by an incoming event, with an id derived from the cause.

    The raw pipeline and the baseline emit this (one per input) so their outgoing payloads
    are the size and shape of what the goals service publishes.
    """
    goal_id = derived_event_id(cause.id, "suggested")
    data = {**_SUGGESTION_DATA, "tenant_id": cause.tenant, "client_id": cause.subject,
            "goal_id": goal_id, "source_assessment_id": cause.data.get("assessment_id")}
    return EventMessage(id=goal_id, type=GoalSuggested.ce_type(), source="/bench/goals",
                        time=cause.time, subject=cause.subject, tenant=cause.tenant,
                        stream=GoalSuggested.stream, data=data)
