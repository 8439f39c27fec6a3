"""The load driver: a cohort moved through the platform by its public APIs and event streams.

Like a front end and an HRIS would, while processes crash under it: every HTTP command
carries an Idempotency-Key and is retried (on another replica, after a wait) until it is
answered, and every event is published with a fixed id and re-sent until the broker
acknowledges it. What the driver was told (submissions accepted, goals accepted, check-ins
submitted) is the record the invariant checker compares the platform's state against.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from coaching_shared.auth import mint_token
from coaching_shared.contracts import ClientEnrolled, CoachContact
from coaching_shared.events import EventMessage
from coaching_shared.settings import ServiceSettings

TENANT = "chaos"
PROGRAM = "resilience-2027"
COACHES = ("coach-ada", "coach-bo", "coach-cy")
WEBHOOK_EVENTS = ["AssessmentCompleted", "GoalSet", "CheckInDue", "CheckInMissed"]
RETRYABLE = {408, 425, 429, 500, 502, 503, 504}


class Unanswered(RuntimeError):
    """A command got no definite answer within the driver's deadline."""


@dataclass
class LoadRecord:
    """What the platform acknowledged to the driver: the effects that must exist."""

    coach_of: dict[str, str] = field(default_factory=dict)
    enrolment_ids: dict[str, str] = field(default_factory=dict)
    submissions: dict[str, str] = field(default_factory=dict)  # assessment id -> client
    accepted_goals: dict[str, str] = field(default_factory=dict)  # goal id -> client
    checkins_submitted: dict[str, str] = field(default_factory=dict)  # check-in id -> goal
    abandoned_goals: set[str] = field(default_factory=set)
    webhook_subscription: str | None = None
    http_retries: int = 0
    checkins_refused: Counter = field(default_factory=Counter)  # status code -> count
    publish_retries: int = 0


class PlatformClient:
    """HTTP calls to a service, spread over its replicas, retried until answered."""

    def __init__(self, urls: dict[str, list[str]], record: LoadRecord,
                 deadline_seconds: float) -> None:
        self._urls = {service: itertools.cycle(found) for service, found in urls.items()}
        self._record = record
        self._deadline_seconds = deadline_seconds
        self._http = httpx.AsyncClient(timeout=10)
        settings = ServiceSettings(service_name="chaos")
        self._settings = settings

    async def close(self) -> None:
        await self._http.aclose()

    def headers(self, subject: str, *roles: str) -> dict[str, str]:
        token = mint_token(self._settings, TENANT, subject, list(roles))
        return {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, service: str, path: str, *, subject: str, role: str,
                   key: str | None = None, json: Any = None,
                   params: dict[str, Any] | None = None) -> httpx.Response:
        """The first definite answer (not a 5xx, not a connection failure) to one request."""
        headers = self.headers(subject, role)
        if key is not None:
            headers["Idempotency-Key"] = key
        deadline = time.monotonic() + self._deadline_seconds
        attempt = 0
        while True:
            url = next(self._urls[service])
            try:
                response = await self._http.request(method, f"{url}/v1{path}", json=json,
                                                    params=params, headers=headers)
                if response.status_code not in RETRYABLE:
                    return response
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as error:
                problem = type(error).__name__
            attempt += 1
            self._record.http_retries += 1
            if time.monotonic() > deadline:
                raise Unanswered(f"{method} {service}{path}: no answer ({problem})")
            await asyncio.sleep(min(2.0, 0.1 * 2 ** min(attempt, 5)) * random.uniform(0.5, 1))

    async def poll(self, fetch: Callable[[], Awaitable[Any]], within: float,
                   what: str) -> Any:
        """Await fetch() until it returns something truthy."""
        deadline = time.monotonic() + within
        while True:
            found = await fetch()
            if found:
                return found
            if time.monotonic() > deadline:
                raise Unanswered(f"{what}: not within {within:.0f}s")
            await asyncio.sleep(0.5)


async def publish_until_acknowledged(bootstrap: str, messages: Sequence[EventMessage],
                                     record: LoadRecord, deadline_seconds: float) -> None:
    """Publish as the HRIS would: resend (same ids) until the broker acknowledged each one."""
    deadline = time.monotonic() + deadline_seconds
    pending = list(messages)
    while pending:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True,
                                    request_timeout_ms=10_000)
        try:
            await producer.start()
            while pending:
                message = pending[0]
                await producer.send_and_wait(
                    message.topic(), message.body(), key=message.key(),
                    headers=[(n, v.encode()) for n, v in message.headers().items()])
                pending.pop(0)
        except KafkaError:
            record.publish_retries += 1
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)
        finally:
            await producer.stop()


def cohort(size: int) -> list[EventMessage]:
    """ClientEnrolled for each client of the cohort, coaches round-robin, fixed event ids."""
    messages = []
    for number in range(1, size + 1):
        client_id = f"client-{number:03d}"
        coach_id = COACHES[number % len(COACHES)]
        event = ClientEnrolled(
            tenant_id=TENANT, client_id=client_id, program_id=PROGRAM,
            display_name=f"Client {number}", email=f"{client_id}@chaos.example",
            timezone="UTC", locale="en",
            coach=CoachContact(coach_id=coach_id, display_name=f"Coach {coach_id[6:]}",
                               email=f"{coach_id}@chaos.example"))
        messages.append(EventMessage.wrap(event, "/hris/chaos",
                                          event_id=f"chaos-enrolment-{number:03d}"))
    return messages


@dataclass
class LoadPlan:
    clients: int
    instruments: int  # assessments each client completes
    checkins: int  # check-in periods each client sees through (answered or missed)
    submit_share: float  # share of due check-ins answered (the rest are missed)
    seed: int
    wait_seconds: float = 240  # how long to wait for one step of the flow under faults


class LoadDriver:
    """Runs the cohort: enrol, assess, accept a goal, answer check-ins, then stop the goals."""

    def __init__(self, client: PlatformClient, bootstrap: str, plan: LoadPlan,
                 record: LoadRecord) -> None:
        self.client = client
        self.bootstrap = bootstrap
        self.plan = plan
        self.record = record

    async def subscribe_webhook(self, url: str) -> None:
        """An integrator's webhook for a few event types, before anything happens."""
        response = await self.client.call(
            "POST", "notifier", "/webhooks", subject="chaos-connector", role="integration",
            key="chaos-webhook", json={"url": url, "event_types": WEBHOOK_EVENTS,
                                       "description": "chaos run receiver"})
        response.raise_for_status()
        self.record.webhook_subscription = response.json()["subscription_id"]

    async def run(self) -> None:
        messages = cohort(self.plan.clients)
        for message in messages:
            self.record.coach_of[message.subject] = message.data["coach"]["coach_id"]
            self.record.enrolment_ids[message.subject] = message.id
        await publish_until_acknowledged(self.bootstrap, messages, self.record,
                                         self.plan.wait_seconds)
        await asyncio.gather(*(self.client_journey(message.subject) for message in messages))

    async def client_journey(self, client_id: str) -> None:
        rng = random.Random(f"{self.plan.seed}|{client_id}")
        await asyncio.sleep(rng.uniform(0, 3))  # not the whole cohort in one instant
        assessment_ids = [await self.complete(client_id, assignment, rng)
                          for assignment in await self.assignments(client_id)]
        goal_id = await self.accept_goal(client_id, assessment_ids)
        await self.answer_checkins(client_id, goal_id, rng)
        response = await self.client.call(
            "POST", "goals", f"/clients/{client_id}/goals/{goal_id}/abandon", subject=client_id,
            role="client", key=f"chaos-abandon-{goal_id}",
            json={"reason": "the chaos run is over"})
        if response.status_code == 200:
            self.record.abandoned_goals.add(goal_id)

    async def assignments(self, client_id: str) -> list[dict[str, Any]]:
        async def fetch() -> list[dict[str, Any]]:
            response = await self.client.call("GET", "assessment",
                                              f"/clients/{client_id}/assignments",
                                              subject=client_id, role="client")
            found = response.json() if response.status_code == 200 else []
            return found if len(found) >= self.plan.instruments else []

        found = await self.client.poll(fetch, self.plan.wait_seconds,
                                       f"assignments of {client_id}")
        return sorted(found, key=lambda a: a["instrument_id"])[:self.plan.instruments]

    async def complete(self, client_id: str, assignment: dict[str, Any],
                       rng: random.Random) -> str:
        """Read every item page and submit answers; the result's assessment id."""
        base = f"/clients/{client_id}/assignments/{assignment['assignment_id']}"
        answers: dict[str, int] = {}
        offset = 0
        while offset < assignment["item_count"]:
            page = await self.client.call("GET", "assessment", f"{base}/items",
                                          subject=client_id, role="client",
                                          params={"offset": offset, "limit": 100})
            page.raise_for_status()
            body = page.json()
            for item in body["items"]:
                options = body["response_scales"][item["response_scale"]]["options"]
                answers[item["item_id"]] = rng.choice([o["value"] for o in options])
            offset += len(body["items"])
        submitted = await self.client.call(
            "POST", "assessment", f"{base}/submission", subject=client_id, role="client",
            key=f"chaos-submit-{assignment['assignment_id']}",
            json={"instrument_version": assignment["instrument_version"], "answers": answers})
        submitted.raise_for_status()
        assessment_id = submitted.json()["assessment_id"]
        self.record.submissions[assessment_id] = client_id
        return assessment_id

    async def accept_goal(self, client_id: str, assessment_ids: list[str]) -> str:
        """Accept the first suggestion; one the SMART check refuses, the coach overrides."""
        async def suggestions() -> list[dict[str, Any]]:
            response = await self.client.call("GET", "goals", f"/clients/{client_id}/goals",
                                              subject=client_id, role="client")
            found = response.json() if response.status_code == 200 else []
            return [g for g in found if g.get("source_assessment_id") in assessment_ids]

        goal_id = (await self.client.poll(suggestions, self.plan.wait_seconds,
                                          f"suggestions for {client_id}"))[0]["goal_id"]
        path = f"/clients/{client_id}/goals/{goal_id}/accept"
        response = await self.client.call("POST", "goals", path, subject=client_id,
                                          role="client", key=f"chaos-accept-{goal_id}", json={})
        if response.status_code == 422:
            response = await self.client.call(
                "POST", "goals", path, subject=self.record.coach_of[client_id], role="coach",
                key=f"chaos-override-{goal_id}",
                json={"override_reason": "agreed in the coaching session"})
        response.raise_for_status()
        self.record.accepted_goals[goal_id] = client_id
        return goal_id

    async def answer_checkins(self, client_id: str, goal_id: str, rng: random.Random) -> None:
        """Answer (or leave to be missed) each check-in as it opens, for the plan's periods.

        KPI readings rise period by period, so the goal's progress may only go up.
        """
        seen: set[str] = set()
        deadline = time.monotonic() + self.plan.wait_seconds
        while len(seen) < self.plan.checkins and time.monotonic() < deadline:
            response = await self.client.call("GET", "feedback",
                                              f"/clients/{client_id}/checkins",
                                              subject=client_id, role="client",
                                              params={"status": "open"})
            opened = [c for c in (response.json() if response.status_code == 200 else [])
                      if c["goal_id"] == goal_id and c["checkin_id"] not in seen]
            for checkin in sorted(opened, key=lambda c: c["period"]):
                seen.add(checkin["checkin_id"])
                if rng.random() < self.plan.submit_share:
                    await self.submit_checkin(client_id, goal_id, checkin, rng)
            await asyncio.sleep(rng.uniform(0.5, 1.5))

    async def submit_checkin(self, client_id: str, goal_id: str, checkin: dict[str, Any],
                             rng: random.Random) -> None:
        schedule = await self.client.call("GET", "feedback", f"/goals/{goal_id}/schedule",
                                          subject=client_id, role="client")
        kpis = schedule.json().get("kpis", []) if schedule.status_code == 200 else []
        # A tenth of the way from baseline to target per period: steady progress.
        body = {"confidence": rng.randint(2, 5), "progress_notes": "steady",
                "kpi_readings": [{"kpi_id": kpi["kpi_id"], "value": kpi["baseline"] + (
                    kpi["target"] - kpi["baseline"]) * min(1.0, checkin["period"] / 10)}
                    for kpi in kpis[:1]]}
        response = await self.client.call(
            "POST", "feedback", f"/checkins/{checkin['checkin_id']}/submission",
            subject=client_id, role="client", key=f"chaos-{checkin['checkin_id']}", json=body)
        if response.status_code == 201:
            self.record.checkins_submitted[checkin["checkin_id"]] = goal_id
        else:  # e.g. answered after its grace period while a service was down
            self.record.checkins_refused[str(response.status_code)] += 1
