"""API fuzzing: schemathesis cases against each service's own OpenAPI (issue 8).

Each service runs in-process against the real Kafka and FerretDB with some seeded data (an
enrolled client with a coach, a goal, assignments, a check-in, a notification), so path
parameters hit existing resources part of the time and the handlers run, not only the token
check. Every operation gets EXAMPLES_PER_OPERATION derandomized cases, valid and invalid
(FUZZ_EXAMPLES=<n> runs a larger, still reproducible campaign), sent by a client on their own
id, their coach, an admin and an integration. Checks: no 5xx, status codes and bodies as
documented, every 4xx problem details, every 422 naming the fields at fault.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from coaching_assessment.app import create_app as assessment_app
from coaching_assessment.settings import AssessmentSettings
from coaching_feedback.app import create_app as feedback_app
from coaching_feedback.clock import FixedClock
from coaching_feedback.settings import FeedbackSettings
from coaching_goals.app import create_app as goals_app
from coaching_goals.settings import GoalsSettings
from coaching_notifier.app import create_app as notifier_app
from coaching_notifier.settings import NotifierSettings
from coaching_notifier.sinks import SmtpSink
from coaching_shared.contracts import ClientEnrolled, CoachContact, Direction, GoalSet, KpiSpec
from support.api_fuzzing import FuzzTarget, fuzz_service
from support.infra import Infrastructure
from support.inprocess import bearer, running_service, service_settings
from support.kafka_tools import eventually, publish_events

pytestmark = [pytest.mark.integration,
              # schemathesis' strategies draw from `random`; hypothesis warns about it
              pytest.mark.filterwarnings(
                  "ignore::hypothesis.errors.HypothesisDeprecationWarning")]

TENANT = "acme"
CLIENT, COACH, ADMIN, INTEGRATION = "client-ada", "coach-grace", "admin-ops", "hris"
AS_CLIENT = bearer(TENANT, CLIENT, "client")
AS_COACH = bearer(TENANT, COACH, "coach")
AS_INTEGRATION = bearer(TENANT, INTEGRATION, "integration")
CALLERS = [AS_CLIENT, AS_COACH, bearer(TENANT, ADMIN, "admin"), AS_INTEGRATION]


async def enrol(infra: Infrastructure, prefix: str) -> None:
    """Publish the enrolment of the client every service is fuzzed around."""
    await publish_events(infra.kafka_bootstrap_servers, prefix, [ClientEnrolled(
        tenant_id=TENANT, client_id=CLIENT, program_id="leaders", display_name="Ada",
        email=f"{CLIENT}@example.com", timezone="Europe/Berlin",
        coach=CoachContact(coach_id=COACH, display_name="Grace", email="grace@example.com"))])


async def listed(client: httpx.AsyncClient, url: str, headers: Mapping[str, str],
                 enough: Callable[[Any], bool] = bool) -> Any:
    """Wait until `url` answers 200 with a body that is `enough`."""
    async def answered() -> httpx.Response | None:
        response = await client.get(url, headers=headers)
        return response if response.status_code == 200 and enough(response.json()) else None

    return (await eventually(answered, timeout=60)).json()


def assert_survived(target: FuzzTarget) -> None:
    """No failed check, and the cases got past the token check into the handlers."""
    assert not target.failures, "\n\n".join(f"== {label}\n{failure}"
                                            for label, failure in target.failures.items())
    statuses = {label: dict(seen) for label, seen in target.statuses.items()}
    assert all(set(seen) - {401} for seen in statuses.values()), statuses
    succeeded = [label for label, seen in statuses.items() if any(s < 300 for s in seen)]
    assert len(succeeded) >= len(statuses) // 2, statuses


async def fuzzed(client: httpx.AsyncClient, known_ids: Mapping[str, Sequence[str]]) -> None:
    """Fuzz the service behind `client` with the seeded ids and check what it answered."""
    assert_survived(await fuzz_service(client, CALLERS, known_ids))


async def test_assessment_api_survives_fuzzing(infra, prefix):
    settings = service_settings(AssessmentSettings, infra, prefix)
    async with running_service(assessment_app, settings) as client:
        await enrol(infra, prefix)
        assignments = await listed(client, f"/v1/clients/{CLIENT}/assignments", AS_CLIENT,
                                   lambda found: len(found) >= 3)
        await fuzzed(client, {
            "client_id": [CLIENT], "program_id": ["leaders"], "version": ["1"],
            "assignment_id": [a["assignment_id"] for a in assignments],
            "instrument_id": sorted({a["instrument_id"] for a in assignments})})


async def test_goals_api_survives_fuzzing(infra, prefix):
    async with running_service(goals_app, service_settings(GoalsSettings, infra, prefix)) as client:
        await enrol(infra, prefix)
        await listed(client, f"/v1/clients/{CLIENT}/goals", AS_COACH, lambda _: True)
        today = date.today()
        draft = {"title": "Close more renewals with existing clients",
                 "description": "Run a structured renewal conversation with every client "
                                "whose contract ends this half-year",
                 "kpis": [{"kpi_id": "renewals", "name": "Renewals closed", "unit": "per month",
                           "baseline": 2, "target": 4, "direction": "up",
                           "frequency": "monthly"}],
                 "start_date": today.isoformat(),
                 "due_date": (today + timedelta(weeks=12)).isoformat(),
                 "relevant_to": {"kind": "aspiration",
                                 "ref": "become an account lead within two years"}}
        goal = await client.post(f"/v1/clients/{CLIENT}/goals", json=draft, headers=AS_COACH)
        goal_id = goal.json()["goal_id"]
        action = await client.post(f"/v1/clients/{CLIENT}/goals/{goal_id}/actions",
                                   json={"title": "Book the renewal calls", "impact": 5,
                                         "effort": 2}, headers=AS_CLIENT)
        await fuzzed(client, {"client_id": [CLIENT], "goal_id": [goal_id],
                              "action_id": [a["action_id"] for a in action.json()["actions"]]})


async def test_feedback_api_survives_fuzzing(infra, prefix):
    clock = FixedClock(datetime(2026, 6, 3, 12, tzinfo=UTC))
    settings = service_settings(FeedbackSettings, infra, prefix, scheduler_interval_seconds=0.2,
                                scheduler_lease_seconds=3)
    async with running_service(lambda s: feedback_app(s, clock), settings) as client:
        await enrol(infra, prefix)
        await publish_events(infra.kafka_bootstrap_servers, prefix, [GoalSet(
            tenant_id=TENANT, client_id=CLIENT, goal_id="goal-retros",
            title="Lead weekly team retrospectives", start_date=date(2026, 6, 1),
            due_date=date(2026, 12, 1), kpis=[KpiSpec(
                kpi_id="retros", name="Retrospectives held", baseline=0, target=20,
                direction=Direction.UP)])], source="/coaching/goals")
        await listed(client, "/v1/goals/goal-retros/schedule", AS_CLIENT)
        clock.set(datetime(2026, 6, 8, 7, 5, tzinfo=UTC))  # the first check-in falls due
        checkins = await listed(client, f"/v1/clients/{CLIENT}/checkins", AS_CLIENT)
        await fuzzed(client, {"client_id": [CLIENT], "goal_id": ["goal-retros"],
                              "checkin_id": [c["checkin_id"] for c in checkins],
                              "tenant_id": [TENANT]})


async def test_notifier_api_survives_fuzzing(infra, prefix):
    smtp = SmtpSink().start()
    settings = service_settings(NotifierSettings, infra, prefix, smtp_port=smtp.port,
                                dispatcher_poll_seconds=0.2)
    try:
        async with running_service(notifier_app, settings) as client:
            await enrol(infra, prefix)
            inbox = await listed(client, "/v1/inbox", AS_CLIENT)
            hook = await client.post("/v1/webhooks", headers=AS_INTEGRATION, json={
                "url": "https://hooks.example.com/coaching", "event_types": ["CheckInDue"]})
            await fuzzed(client, {
                "person_id": [CLIENT, COACH], "event_type": ["CheckInDue", "GoalSet"],
                "locale": ["en", "de"], "notification_id": [n["notification_id"] for n in inbox],
                "subscription_id": [hook.json()["subscription_id"]]})
    finally:
        smtp.stop()
