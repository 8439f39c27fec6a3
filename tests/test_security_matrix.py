"""Every operation of every service, against every kind of caller: the security matrix.

The operations come from each running service's own OpenAPI document, so an endpoint added
tomorrow fails `test_every_operation_is_in_the_matrix` until it is given its callers here
(or declared public, like health, metrics and docs). Tenant `acme` has walked a whole
coaching journey first (support.journey), so every id in every path exists. Then, per
operation:

- no token: 401;
- a token of another tenant with the same subject and roles (so the same ids): 404 or 403;
  a success only for operations on the caller's own tenant (its inbox, its settings) or on
  the caller's own data under their own subject (a client of globex named like acme's
  client sees globex's data of that name), and never with any of acme's data in it;
- a caller the operation is not for (another client of the same tenant, another coach, or a
  role the operation does not allow): 403 or 404;
- the right caller: 2xx, which shows the refusals above are not an endpoint refusing all.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from support.infra import Infrastructure
from support.journey import Journey, Person, Platform, platform_after_journey
from support.kafka_tools import eventually
from support.whole_platform import SERVICES

pytestmark = pytest.mark.integration

TENANT, OTHER_TENANT = "acme", "globex"
PREFIX = f"sm{uuid.uuid4().hex[:8]}."
PUBLIC_PREFIXES = ("/health/", "/metrics", "/asyncapi", "/docs", "/openapi", "/redoc")


@dataclass(frozen=True)
class Rule:
    """Who may call an operation, who may not, and what a proper call carries.

    `allowed` and `refused` name people of the journey's cast (see support.journey.Cast);
    `refused` is None when every signed-in role may call it. `ids` renames path parameters
    to journey ids; `body` and `key` name a journey body and Idempotency-Key (a retried
    command answers 2xx where a new one would find the state moved on). `own_tenant`: the
    operation works on the caller's own tenant, so another tenant's caller may succeed.
    """

    allowed: str
    refused: str | None
    body: Any = None
    ids: dict[str, str] = field(default_factory=dict)
    key: str | None = None
    own_tenant: bool = False


C, OC, K, OK_, AD, IN = ("client", "other_client", "coach", "other_coach", "admin",
                         "integration")
ROUND = {"text": "Thank you for the open conversation."}
TEMPLATE = {"subject": "Check-in time", "text": "Hello {{ display_name }}"}

RULES: dict[str, dict[tuple[str, str], Rule]] = {
    "assessment": {
        ("GET", "/v1/clients/{client_id}/assessments"): Rule(C, OC),
        ("GET", "/v1/clients/{client_id}/assessments/{assessment_id}"): Rule(C, OC),
        ("GET", "/v1/clients/{client_id}/assignments"): Rule(K, OK_),
        ("POST", "/v1/clients/{client_id}/assignments"): Rule(
            K, C, body={"instrument_id": "riasec"}),
        ("GET", "/v1/clients/{client_id}/assignments/{assignment_id}"): Rule(C, OC),
        ("PUT", "/v1/clients/{client_id}/assignments/{assignment_id}/answers"): Rule(
            C, K, body="partial_answers", ids={"assignment_id": "open_assignment_id"}),
        ("GET", "/v1/clients/{client_id}/assignments/{assignment_id}/items"): Rule(C, K),
        ("POST", "/v1/clients/{client_id}/assignments/{assignment_id}/submission"): Rule(
            C, K, body="submission", key="assessment"),
        ("GET", "/v1/clients/{client_id}/profile"): Rule(C, OC),
        ("GET", "/v1/instruments"): Rule(C, None, own_tenant=True),
        ("POST", "/v1/instruments"): Rule(AD, K, body="instrument", own_tenant=True),
        ("GET", "/v1/instruments/{instrument_id}/versions/{version}"): Rule(
            C, None, own_tenant=True),
        ("GET", "/v1/instruments/{instrument_id}/versions/{version}/quality"): Rule(
            AD, K, own_tenant=True),
        ("GET", "/v1/programs/{program_id}/enrolment-instruments"): Rule(
            K, C, own_tenant=True),
        ("PUT", "/v1/programs/{program_id}/enrolment-instruments"): Rule(
            AD, K, body={"instruments": ["riasec"]}, own_tenant=True),
    },
    "goals": {
        ("GET", "/v1/clients/{client_id}/assessment-results"): Rule(C, OC),
        ("GET", "/v1/clients/{client_id}/goals"): Rule(K, OK_),
        ("POST", "/v1/clients/{client_id}/goals"): Rule(C, OC, body="goal"),
        ("GET", "/v1/clients/{client_id}/goals/{goal_id}"): Rule(C, OC),
        ("PATCH", "/v1/clients/{client_id}/goals/{goal_id}"): Rule(
            C, OC, body={"weight": 2}, ids={"goal_id": "draft_goal_id"}),
        ("POST", "/v1/clients/{client_id}/goals/{goal_id}/abandon"): Rule(
            C, OC, body={"reason": "priorities changed"},
            ids={"goal_id": "abandoned_goal_id"}),
        ("POST", "/v1/clients/{client_id}/goals/{goal_id}/accept"): Rule(
            C, OC, body={}, key="accept"),
        ("POST", "/v1/clients/{client_id}/goals/{goal_id}/actions"): Rule(
            C, OC, body={"title": "Ask a peer to role-play", "impact": 3, "effort": 1}),
        ("PATCH", "/v1/clients/{client_id}/goals/{goal_id}/actions/{action_id}"): Rule(
            K, OK_, body={"status": "in_progress"}),
        ("POST", "/v1/clients/{client_id}/goals/{goal_id}/measurements"): Rule(
            C, OC, body={"kpi_id": "renewals", "value": 3}),
        ("GET", "/v1/clients/{client_id}/goals/{goal_id}/smart-check"): Rule(K, OK_),
        ("GET", "/v1/clients/{client_id}/next-actions"): Rule(C, OC),
        ("GET", "/v1/goals/summary"): Rule(AD, K, own_tenant=True),
        ("GET", "/v1/smart-limits"): Rule(C, None, own_tenant=True),
        ("PUT", "/v1/smart-limits"): Rule(AD, K, body={}, own_tenant=True),
    },
    "feedback": {
        ("GET", "/v1/caseload"): Rule(K, C, own_tenant=True),
        ("GET", "/v1/checkins/{checkin_id}"): Rule(C, OC),
        ("POST", "/v1/checkins/{checkin_id}/feedback"): Rule(K, C, body=ROUND),
        ("POST", "/v1/checkins/{checkin_id}/submission"): Rule(
            C, K, body="checkin", key="checkin"),
        ("GET", "/v1/clients/{client_id}/checkin-preferences"): Rule(C, OC),
        ("PUT", "/v1/clients/{client_id}/checkin-preferences"): Rule(
            C, OC, body={"timezone": "Europe/Berlin", "apply_to_active_goals": False}),
        ("GET", "/v1/clients/{client_id}/checkins"): Rule(K, OK_),
        ("GET", "/v1/clients/{client_id}/feedback"): Rule(C, OC),
        ("GET", "/v1/clients/{client_id}/feedback-rounds"): Rule(C, OK_),
        ("POST", "/v1/clients/{client_id}/feedback-rounds"): Rule(C, K, body="round"),
        ("GET", "/v1/clients/{client_id}/reflections"): Rule(K, OC),
        ("POST", "/v1/clients/{client_id}/reflections"): Rule(
            C, K, body={"prompt_id": "regular-next", "answer": "One call a day."}),
        ("GET", "/v1/clients/{client_id}/reviews"): Rule(C, OK_),
        ("GET", "/v1/clients/{client_id}/risk-signals"): Rule(K, OC),
        ("GET", "/v1/clients/{client_id}/schedules"): Rule(C, OC),
        ("GET", "/v1/competencies"): Rule(C, None, own_tenant=True),
        ("GET", "/v1/feedback-rounds/{round_id}"): Rule(K, OC),
        ("POST", "/v1/feedback-rounds/{round_id}/close"): Rule(
            C, OC, ids={"round_id": "closed_round_id"}),
        ("POST", "/v1/feedback-rounds/{round_id}/raters/{rater_id}/invitation"): Rule(C, K),
        ("GET", "/v1/feedback-rounds/{round_id}/results"): Rule(
            K, OK_, ids={"round_id": "closed_round_id"}),
        ("PUT", "/v1/feedback-rounds/{round_id}/self-rating"): Rule(
            C, K, body={"ratings": {"active_listening": 4}}),
        ("POST", "/v1/goals/{goal_id}/feedback"): Rule(K, C, body=ROUND),
        ("POST", "/v1/goals/{goal_id}/reviews"): Rule(K, C, key="review"),
        ("GET", "/v1/goals/{goal_id}/schedule"): Rule(C, OC),
        ("PUT", "/v1/goals/{goal_id}/schedule"): Rule(K, OK_, body={"hour": 10}),
        ("GET", "/v1/program-metrics"): Rule(AD, K, own_tenant=True),
        ("GET", "/v1/reflection-prompts"): Rule(C, None, own_tenant=True),
        ("GET", "/v1/reflections/{reflection_id}"): Rule(K, OC),
        ("PUT", "/v1/reflections/{reflection_id}/sharing"): Rule(
            C, K, body={"shared_with": []}),
        ("PUT", "/v1/reviews/{review_id}/notes"): Rule(K, C, body={"notes": "Keep going."}),
    },
    "notifier": {
        ("GET", "/v1/deliveries"): Rule(IN, AD, own_tenant=True),
        ("GET", "/v1/deliveries/summary"): Rule(AD, C, own_tenant=True),
        ("POST", "/v1/deliveries/{notification_id}/retry"): Rule(
            IN, AD, ids={"notification_id": "failed_notification_id"}),
        ("GET", "/v1/inbox"): Rule(C, None, own_tenant=True),
        ("POST", "/v1/inbox/read-all"): Rule(C, None, own_tenant=True),
        ("GET", "/v1/inbox/unread-count"): Rule(C, None, own_tenant=True),
        ("POST", "/v1/inbox/{notification_id}/read"): Rule(C, OC),
        ("GET", "/v1/notification-defaults"): Rule(AD, C, own_tenant=True),
        ("PUT", "/v1/notification-defaults"): Rule(AD, K, body={}, own_tenant=True),
        ("GET", "/v1/people/me/contact"): Rule(C, None, own_tenant=True),
        ("GET", "/v1/people/me/preferences"): Rule(C, None, own_tenant=True),
        ("PUT", "/v1/people/me/preferences"): Rule(C, None, body={}, own_tenant=True),
        ("GET", "/v1/people/{person_id}/contact"): Rule(IN, AD),
        ("GET", "/v1/templates"): Rule(AD, C, own_tenant=True),
        ("PUT", "/v1/templates/{event_type}/{locale}"): Rule(
            AD, K, body=TEMPLATE, own_tenant=True),
        ("DELETE", "/v1/templates/{event_type}/{locale}"): Rule(AD, K, own_tenant=True),
        ("GET", "/v1/webhooks"): Rule(IN, C, own_tenant=True),
        ("POST", "/v1/webhooks"): Rule(IN, K, body="webhook", own_tenant=True),
        ("DELETE", "/v1/webhooks/{subscription_id}"): Rule(
            AD, C, ids={"subscription_id": "spare_subscription_id"}),
        ("POST", "/v1/webhooks/{subscription_id}/rotate-secret"): Rule(IN, K),
    },
}

# Rater links carry their own credential (a token in the URL, for raters without an
# account); they are checked separately below rather than with bearer tokens.
RATER_LINKS = {("GET", "/v1/tenants/{tenant_id}/rater-invitations/{token}"),
               ("POST", "/v1/tenants/{tenant_id}/rater-invitations/{token}/response")}


def operations(app) -> list[tuple[str, str]]:
    """Every (method, path) the app's OpenAPI document declares, public ones excluded."""
    return [(method.upper(), path) for path, item in app.openapi()["paths"].items()
            for method in item if method in ("get", "put", "post", "patch", "delete")
            and not path.startswith(PUBLIC_PREFIXES)]


@pytest.fixture(scope="module")
async def platform(infra: Infrastructure) -> AsyncIterator[Platform]:
    async with platform_after_journey(infra, PREFIX, TENANT,
                                      notifier={"delivery_max_attempts": 2}) as platform:
        await _fail_a_delivery(platform)
        yield platform


async def _fail_a_delivery(platform: Platform) -> None:
    """A webhook to a receiver that is down, so the delivery log has a failed delivery."""
    journey, notifier = platform.journey, platform.services["notifier"]
    cast = journey.cast
    as_integration = cast.integration.headers(TENANT)
    dead = await notifier.post("/v1/webhooks", headers=as_integration, json={
        "url": "http://127.0.0.1:9/hooks", "event_types": ["FeedbackGiven"]})
    assert dead.status_code == 201, dead.text
    given = await platform.services["feedback"].post(
        f"/v1/goals/{journey.ids['goal_id']}/feedback", json=ROUND,
        headers=cast.coach.headers(TENANT))
    assert given.status_code == 201, given.text

    async def failed():
        response = await notifier.get("/v1/deliveries", headers=as_integration,
                                      params={"status": "failed", "channel": "webhook"})
        return response.json()

    journey.ids["failed_notification_id"] = (await eventually(failed))[0]["notification_id"]


def _bodies(journey: Journey) -> dict[str, Any]:
    from coaching_assessment.domain.instruments import builtin_instruments

    instrument = builtin_instruments()["riasec"].model_dump(mode="json")
    return {**journey.bodies, "instrument": {**instrument, "instrument_id": "acme-interests"},
            "goal": {"title": "Mentor two new account managers this quarter",
                     "description": "Meet each new account manager every second week"},
            "webhook": {"url": "https://hooks.example.com/coaching",
                        "event_types": ["GoalSet"]}}


@dataclass
class Call:
    method: str
    url: str
    body: Any
    key: str | None

    async def by(self, client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
        if self.key:
            headers = {**headers, "Idempotency-Key": self.key}
        kwargs = {} if self.body is None else {"json": self.body}
        return await client.request(self.method, self.url, headers=headers, **kwargs)


def _call(journey: Journey, method: str, path: str, rule: Rule) -> Call:
    names = {**{name: name for name in journey.ids}, **rule.ids}
    url = path
    for parameter in [part[1:-1] for part in path.split("/") if part.startswith("{")]:
        url = url.replace(f"{{{parameter}}}", str(journey.ids[names[parameter]]))
    body = _bodies(journey).get(rule.body, rule.body) if isinstance(rule.body, str) \
        else rule.body
    return Call(method, url, body, journey.keys.get(rule.key) if rule.key else None)


def _person(journey: Journey, name: str) -> Person:
    return getattr(journey.cast, name)


def _only_the_callers_id(path: str) -> bool:
    """A path naming no resource but the client (the caller's own subject)."""
    return path.startswith("/v1/clients/{client_id}/") and path.count("{") == 1


def _leaks(response: httpx.Response, journey: Journey) -> list[str]:
    """Which of acme's personal strings, ids or documents a response shows."""
    text = response.text.replace(" ", "")
    secrets = [*journey.personal_strings()[1:], f'"tenant_id":"{TENANT}"', *(
        str(journey.ids[name]) for name in (
            "assessment_id", "goal_id", "checkin_id", "reflection_id", "review_id",
            "notification_id", "subscription_id", "round_id", "action_id"))]
    return [value for value in secrets if value.replace(" ", "") in text]


async def _check(client: httpx.AsyncClient, journey: Journey, method: str, path: str,
                 rule: Rule) -> list[str]:
    """The four cases of one operation; returns what went wrong (empty: all held)."""
    call = _call(journey, method, path, rule)
    problems = []
    where = f"{method} {path}"
    anonymous = await call.by(client, {})
    if anonymous.status_code != 401:
        problems.append(f"{where}: no token got {anonymous.status_code}")
    allowed = _person(journey, rule.allowed)
    foreign = await call.by(client, allowed.headers(OTHER_TENANT))
    if foreign.is_success:
        # Only where the caller works on their own tenant's things, or on their own data
        # under their own subject (same name, other tenant): never on acme's.
        if leaked := _leaks(foreign, journey):
            problems.append(f"{where}: another tenant saw {leaked}")
        if not (rule.own_tenant or (rule.allowed == C and _only_the_callers_id(path))):
            problems.append(f"{where}: another tenant got {foreign.status_code}")
    elif foreign.status_code not in (403, 404):
        problems.append(f"{where}: another tenant got {foreign.status_code} {foreign.text}")
    if rule.refused is not None:
        refused = await call.by(client, _person(journey, rule.refused).headers(TENANT))
        if refused.status_code not in (403, 404):
            problems.append(f"{where}: {rule.refused} got {refused.status_code} "
                            f"{refused.text[:200]}")
    proper = await call.by(client, allowed.headers(TENANT))
    if not proper.is_success:
        problems.append(f"{where}: {rule.allowed} got {proper.status_code} "
                        f"{proper.text[:300]}")
    return problems


@pytest.mark.parametrize("service", list(SERVICES))
async def test_every_operation_is_in_the_matrix(platform, service):
    declared = set(operations(platform.services[service].app))
    ruled = set(RULES[service]) | (RATER_LINKS if service == "feedback" else set())
    assert declared - ruled == set(), "operations without a rule: give them their callers"
    assert ruled - declared == set(), "rules for operations that no longer exist"


@pytest.mark.parametrize("service", list(SERVICES))
async def test_each_operation_refuses_strangers_and_serves_its_caller(platform, service):
    client, journey = platform.services[service], platform.journey
    problems = []
    for method, path in operations(client.app):
        if (method, path) in RULES[service]:
            problems += await _check(client, journey, method, path,
                                     RULES[service][(method, path)])
    assert problems == [], json.dumps(problems, indent=1)


async def test_rater_links_work_only_with_their_own_token_and_tenant(platform):
    client, ids = platform.services["feedback"], platform.journey.ids
    link = f"/v1/tenants/{TENANT}/rater-invitations/{ids['token']}"
    forged = f"/v1/tenants/{TENANT}/rater-invitations/{ids['token'][:-4]}AAAA"
    elsewhere = f"/v1/tenants/{OTHER_TENANT}/rater-invitations/{ids['token']}"
    answer = {"ratings": {"active_listening": 4}}
    for url in (forged, elsewhere):
        assert (await client.get(url)).status_code == 404
        assert (await client.post(f"{url}/response", json=answer)).status_code == 404
    assert (await client.get(link)).status_code == 200
    assert (await client.post(f"{link}/response", json=answer)).status_code == 201


def test_the_matrix_covers_every_kind_of_caller():
    """The matrix's size (quoted in the README): operations, and cases across them."""
    cases = sum(3 + (rule.refused is not None) for rules in RULES.values()
                for rule in rules.values())
    operations_ruled = sum(len(rules) for rules in RULES.values())
    print(f"security matrix: {operations_ruled} bearer operations, {cases} cases; "
          f"{len(RATER_LINKS)} rater-link operations")
    assert all(rule.refused is not None for rules in RULES.values()
               for rule in rules.values() if not rule.own_tenant)
