"""One client's coaching journey through all four services, through their public doors.

Enrolment (as the HRIS publishes it), an assessment answered and submitted, goals drafted,
accepted and acted on, a check-in falling due and submitted with a reflection, the coach's
feedback and a progress review, a 360 round, notifications in the inbox and a webhook
subscription. Security tests use what it leaves behind: ids that exist in every path, and
personal strings to look for where they must not be.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from coaching_feedback.app import create_app as feedback_app
from coaching_feedback.clock import FixedClock
from coaching_notifier.sinks import SmtpSink, WebhookSink
from coaching_shared.contracts import ClientEnrolled, CoachContact

from support.infra import Infrastructure
from support.inprocess import bearer
from support.kafka_tools import eventually, publish_events
from support.whole_platform import running_platform


@dataclass(frozen=True)
class Person:
    """Someone who calls the APIs: a subject and the roles their token carries."""

    subject: str
    roles: tuple[str, ...]

    def headers(self, tenant_id: str) -> dict[str, str]:
        return bearer(tenant_id, self.subject, *self.roles)


@dataclass
class Cast:
    """The people of one tenant's program; subjects are unique to the run."""

    tenant_id: str
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    def __post_init__(self) -> None:
        self.client = Person(f"c-ava-{self.run}", ("client",))
        self.coach = Person(f"coach-kim-{self.run}", ("coach",))
        self.other_client = Person(f"c-ben-{self.run}", ("client",))
        self.other_coach = Person(f"coach-lee-{self.run}", ("coach",))
        self.admin = Person(f"admin-{self.run}", ("admin",))
        self.integration = Person(f"hris-{self.run}", ("integration",))
        self.email = f"ava.{self.run}@example.com"
        self.display_name = f"Ava Quartermaine {self.run}"
        self.reflection = f"I freeze when my manager asks about deadlines ({self.run})"
        self.feedback_text = f"You handled the renewal call with real calm ({self.run})"
        self.goal_title = f"Close more renewals with the northern accounts {self.run}"

    def enrolments(self) -> list[ClientEnrolled]:
        def enrolment(person: Person, coach: Person, name: str, email: str) -> ClientEnrolled:
            return ClientEnrolled(
                tenant_id=self.tenant_id, client_id=person.subject, program_id="leaders",
                display_name=name, email=email, timezone="Europe/Berlin",
                coach=CoachContact(coach_id=coach.subject, display_name="Kim Coach",
                                   email=f"{coach.subject}@example.com"))

        return [enrolment(self.client, self.coach, self.display_name, self.email),
                enrolment(self.other_client, self.other_coach, f"Ben {self.run}",
                          f"ben.{self.run}@example.com")]


@dataclass
class Journey:
    """What the journey left behind: ids by name, and the Idempotency-Keys it used."""

    cast: Cast
    ids: dict[str, Any] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    bodies: dict[str, Any] = field(default_factory=dict)

    def personal_strings(self) -> list[str]:
        """What identifies the client or is their content: must never leak."""
        cast = self.cast
        return [cast.client.subject, cast.email, cast.display_name, cast.reflection,
                cast.feedback_text, cast.goal_title]


async def _ok(client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str],
              **kwargs: Any) -> Any:
    response = await client.request(method, url, headers=headers, **kwargs)
    assert response.is_success, (method, url, response.status_code, response.text)
    return response.json() if response.content else None


async def _when_ok(client: httpx.AsyncClient, url: str, headers: dict[str, str],
                   accept=lambda body: True, timeout: float = 60) -> Any:
    async def ready():
        response = await client.get(url, headers=headers)
        if response.status_code == 200 and accept(response.json()):
            return response.json()
        return None

    return await eventually(ready, timeout=timeout)


def goal_draft(title: str) -> dict[str, Any]:
    today = date.today()
    return {"title": title,
            "description": "Hold a structured renewal conversation with each account whose "
                           "contract ends this half-year",
            "kpis": [{"kpi_id": "renewals", "name": "Renewals closed", "unit": "per month",
                      "baseline": 2, "target": 4, "direction": "up", "frequency": "monthly"}],
            "start_date": today.isoformat(), "due_date": (today + timedelta(weeks=12)).isoformat(),
            "relevant_to": {"kind": "aspiration", "ref": "become an account lead"}}


async def walk(platform: dict[str, httpx.AsyncClient], bootstrap: str, prefix: str,
               cast: Cast, clock: FixedClock, webhook_url: str) -> Journey:
    """Take the cast's client through every service; returns what it left behind."""
    journey = Journey(cast)
    tenant = cast.tenant_id
    as_client, as_coach = cast.client.headers(tenant), cast.coach.headers(tenant)
    client_id = cast.client.subject
    await publish_events(bootstrap, prefix, cast.enrolments())
    await _assess(platform["assessment"], journey, as_client)
    await _set_goals(platform["goals"], journey, as_client)
    await _check_in(platform["feedback"], journey, clock, as_client, as_coach)
    await _ask_for_360(platform["feedback"], journey, as_client)

    notifier = platform["notifier"]
    as_integration = cast.integration.headers(tenant)
    inbox = await _when_ok(notifier, "/v1/inbox", as_client, accept=bool)
    journey.ids["notification_id"] = inbox[0]["notification_id"]
    for name in ("subscription_id", "spare_subscription_id"):
        hook = await _ok(notifier, "POST", "/v1/webhooks", as_integration,
                         json={"url": webhook_url, "event_types": ["FeedbackGiven"]})
        journey.ids[name] = hook["subscription_id"]
    journey.ids["secret"] = hook["secret"]
    await _ok(notifier, "PUT", "/v1/templates/CheckInDue/en", cast.admin.headers(tenant),
              json={"subject": "Check-in time", "text": "Hello {{ display_name }}"})
    await _ok(notifier, "PUT", "/v1/people/me/preferences", as_client,
              json={"quiet_hours": {"start": "22:00", "end": "07:00"}})
    journey.ids.update(client_id=client_id, person_id=client_id, event_type="CheckInDue",
                       locale="en", tenant_id=tenant)
    return journey


async def _assess(assessment: httpx.AsyncClient, journey: Journey,
                  as_client: dict[str, str]) -> None:
    client_id = journey.cast.client.subject
    base = f"/v1/clients/{client_id}/assignments"
    assignments = await _when_ok(assessment, base, as_client, accept=lambda a: len(a) >= 3)
    by_instrument = {a["instrument_id"]: a for a in assignments}
    riasec, open_one = by_instrument["riasec"], by_instrument["big-five"]
    page = await _ok(assessment, "GET", f"{base}/{riasec['assignment_id']}/items", as_client,
                     params={"limit": 100})
    answers = {item["item_id"]: 1 + index % 5 for index, item in enumerate(page["items"])}
    sheet = {"instrument_version": riasec["instrument_version"], "answers": answers}
    journey.keys["assessment"] = f"submit-{journey.cast.run}"
    result = await _ok(assessment, "POST", f"{base}/{riasec['assignment_id']}/submission",
                       {**as_client, "Idempotency-Key": journey.keys["assessment"]}, json=sheet)
    open_page = await _ok(assessment, "GET", f"{base}/{open_one['assignment_id']}/items",
                          as_client, params={"limit": 1})
    journey.ids.update(assignment_id=riasec["assignment_id"],
                       open_assignment_id=open_one["assignment_id"],
                       assessment_id=result["assessment_id"], instrument_id="riasec",
                       version=riasec["instrument_version"], program_id="leaders")
    journey.bodies["submission"] = sheet
    journey.bodies["partial_answers"] = {
        "instrument_version": open_one["instrument_version"],
        "answers": {open_page["items"][0]["item_id"]: 3}}


async def _set_goals(goals: httpx.AsyncClient, journey: Journey,
                     as_client: dict[str, str]) -> None:
    cast = journey.cast
    base = f"/v1/clients/{cast.client.subject}/goals"
    await _when_ok(goals, f"/v1/clients/{cast.client.subject}/assessment-results", as_client,
                   accept=bool)
    created = {}
    for name, title in (("goal_id", cast.goal_title), ("draft_goal_id", "Draft " + cast.run),
                        ("abandoned_goal_id", "Spare " + cast.run)):
        goal = await _ok(goals, "POST", base, as_client, json=goal_draft(f"{title} plan"))
        created[name] = goal["goal_id"]
    journey.keys["accept"] = f"accept-{cast.run}"
    await _ok(goals, "POST", f"{base}/{created['goal_id']}/accept",
              {**as_client, "Idempotency-Key": journey.keys["accept"]}, json={})
    action = await _ok(goals, "POST", f"{base}/{created['goal_id']}/actions", as_client,
                       json={"title": "Book the renewal calls", "impact": 4, "effort": 2})
    await _ok(goals, "POST", f"{base}/{created['goal_id']}/measurements", as_client,
              json={"kpi_id": "renewals", "value": 3})
    journey.ids.update(created, action_id=action["actions"][-1]["action_id"])


async def _check_in(feedback: httpx.AsyncClient, journey: Journey, clock: FixedClock,
                    as_client: dict[str, str], as_coach: dict[str, str]) -> None:
    cast = journey.cast
    goal_id = journey.ids["goal_id"]
    schedule = await _when_ok(feedback, f"/v1/goals/{goal_id}/schedule", as_client)
    clock.set(datetime.fromisoformat(schedule["next_due_at"]) + timedelta(minutes=5))
    checkins = await _when_ok(feedback, f"/v1/clients/{cast.client.subject}/checkins",
                              as_client, accept=bool)
    checkin_id = checkins[0]["checkin_id"]
    journey.keys["checkin"] = f"checkin-{cast.run}"
    submission = {"confidence": 4, "kpi_readings": [{"kpi_id": "renewals", "value": 3}],
                  "progress_notes": "Two calls booked.", "reflections": [
                      {"prompt_id": "regular-next", "answer": cast.reflection}]}
    submitted = await _ok(feedback, "POST", f"/v1/checkins/{checkin_id}/submission",
                          {**as_client, "Idempotency-Key": journey.keys["checkin"]},
                          json=submission)
    await _ok(feedback, "POST", f"/v1/checkins/{checkin_id}/feedback", as_coach,
              json={"text": cast.feedback_text})
    journey.keys["review"] = f"review-{cast.run}"
    review = await _ok(feedback, "POST", f"/v1/goals/{goal_id}/reviews",
                       {**as_coach, "Idempotency-Key": journey.keys["review"]})
    journey.ids.update(checkin_id=checkin_id,
                       reflection_id=submitted["reflections"][0]["reflection_id"],
                       review_id=review["review_id"])
    journey.bodies["checkin"] = submission


async def _ask_for_360(feedback: httpx.AsyncClient, journey: Journey,
                       as_client: dict[str, str]) -> None:
    cast = journey.cast
    raters = [{"name": f"Peer {n}", "email": f"peer{n}.{cast.run}@example.com", "group": "peer"}
              for n in range(3)]
    request = {"competencies": ["active_listening"], "raters": raters}
    rounds = {}
    for name in ("round_id", "closed_round_id"):
        started = await _ok(feedback, "POST", f"/v1/clients/{cast.client.subject}/"
                            "feedback-rounds", {**as_client, "Idempotency-Key": name + cast.run},
                            json=request)
        rounds[name] = started
    await _ok(feedback, "POST", f"/v1/feedback-rounds/{rounds['closed_round_id']['round_id']}"
              "/close", as_client)
    # One rater's link stays as sent; another rater's is the one to send again.
    answering, reinvited = rounds["round_id"]["invitations"][:2]
    journey.ids.update(round_id=rounds["round_id"]["round_id"],
                       closed_round_id=rounds["closed_round_id"]["round_id"],
                       rater_id=reinvited["rater_id"],
                       token=answering["link"].rsplit("/", 1)[1])
    journey.bodies["round"] = request


@dataclass
class Platform:
    """The four services after a journey, with the receivers the notifier delivered to."""

    services: dict[str, httpx.AsyncClient]
    journey: Journey
    smtp: SmtpSink
    webhooks: WebhookSink


@asynccontextmanager
async def platform_after_journey(infra: Infrastructure, prefix: str, tenant_id: str,
                                 notifier: dict[str, Any] | None = None,
                                 log_handler: logging.Handler | None = None,
                                 ) -> AsyncIterator[Platform]:
    """The four services, a real SMTP server and webhook receiver, and one journey walked.

    `notifier` adds settings of the notifier (e.g. SMTP credentials); `log_handler` gets
    every log record of the services from the journey on (next to their own handler).
    """
    clock = FixedClock(datetime.now(UTC))
    smtp = SmtpSink().start()
    webhooks = await WebhookSink().start()
    per_service = {
        "feedback": {"scheduler_interval_seconds": 0.2, "scheduler_lease_seconds": 3},
        "notifier": {"smtp_port": smtp.port, "dispatcher_poll_seconds": 0.2,
                     "delivery_backoff_seconds": 0.2, "delivery_backoff_max_seconds": 0.5,
                     **(notifier or {})}}
    try:
        async with running_platform(infra, prefix, per_service,
                                    apps={"feedback": lambda s: feedback_app(s, clock)}
                                    ) as services:
            if log_handler is not None:  # now: each service's start resets the root logger
                logging.getLogger().addHandler(log_handler)
            journey = await walk(services, infra.kafka_bootstrap_servers, prefix,
                                 Cast(tenant_id), clock, webhooks.url)
            yield Platform(services, journey, smtp, webhooks)
    finally:
        if log_handler is not None:
            logging.getLogger().removeHandler(log_handler)
        await webhooks.stop()
        smtp.stop()
