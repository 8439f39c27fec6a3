"""The goals service against the real Kafka broker and FerretDB.

Suggestions from AssessmentCompleted (once, even when delivered twice), accepting a
suggestion (GoalSet once), the SMART check and the coach's override, per-tenant limits,
check-ins moving progress up to GoalAchieved, roll-up, next actions, access rules and
dead letters.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from coaching_goals.app import create_app
from coaching_goals.settings import GoalsSettings
from coaching_shared.contracts import (
    AssessmentCompleted,
    CheckInCompleted,
    ClientEnrolled,
    ClientOffboarded,
    CoachContact,
    KpiReading,
    ScaleScore,
)
from coaching_shared.events import dead_letter_topic, utc_now
from support.infra import Infrastructure
from support.inprocess import bearer, running_service, service_settings
from support.kafka_tools import TopicReader, eventually, headers_of, publish_events

pytestmark = pytest.mark.integration

TENANT = "acme"
PREFIX = f"g{uuid.uuid4().hex[:8]}."
GOALS_TOPIC = f"{PREFIX}coaching.goals"


@pytest.fixture(scope="module")
async def goals(infra: Infrastructure) -> AsyncIterator[httpx.AsyncClient]:
    """One goals service for the module; each test uses clients of its own."""
    settings = service_settings(GoalsSettings, infra, PREFIX)
    async with running_service(create_app, settings) as client:
        yield client


def as_client(client_id: str) -> dict[str, str]:
    return bearer(TENANT, client_id, "client")


def as_coach(coach_id: str) -> dict[str, str]:
    return bearer(TENANT, coach_id, "coach")


async def publish(infra: Infrastructure, *events, ids=None) -> None:
    await publish_events(infra.kafka_bootstrap_servers, PREFIX, list(events), ids=ids)


async def enrol(infra: Infrastructure, goals: httpx.AsyncClient, client_id: str,
                coach_id: str) -> None:
    """Enrol a client with a coach and wait until the goals service knows the coach."""
    await publish(infra, ClientEnrolled(
        tenant_id=TENANT, client_id=client_id, program_id="leaders", display_name="Ada",
        email=f"{client_id}@example.com",
        coach=CoachContact(coach_id=coach_id, display_name="Coach", email="c@example.com")))

    async def coach_sees_client():
        response = await goals.get(f"/v1/clients/{client_id}/goals", headers=as_coach(coach_id))
        return response.status_code == 200

    await eventually(coach_sees_client)


def skills_assessment(client_id: str, assessment_id: str) -> AssessmentCompleted:
    def scale(scale_id: str, label: str, score: float) -> ScaleScore:
        return ScaleScore(scale_id=scale_id, label=label, score=score, minimum=1, maximum=5)

    return AssessmentCompleted(
        tenant_id=TENANT, client_id=client_id, assessment_id=assessment_id,
        instrument_id="skills", instrument_version=1, completed_at=utc_now(),
        scores=[scale("time_management", "Time Management", 1.8),
                scale("negotiation", "Negotiation", 2.4),
                scale("acme_domain_fluency", "Domain fluency", 2.0),
                scale("writing", "Writing", 4.6)],
        strengths=["writing"],
        development_areas=["negotiation", "acme_domain_fluency", "time_management"])


def goal_records(records, client_id: str, ce_type: str) -> list[dict]:
    return [json.loads(r.value) for r in records
            if r.key == client_id.encode() and headers_of(r)["ce_type"] == ce_type]


def draft(**overrides) -> dict:
    today = date.today()
    body = {"title": "Close more renewals with existing clients",
            "description": "Run a structured renewal conversation with every client whose "
                           "contract ends this half-year",
            "kpis": [{"kpi_id": "renewals", "name": "Renewals closed", "unit": "per month",
                      "baseline": 2, "target": 4, "direction": "up", "frequency": "monthly"}],
            "start_date": today.isoformat(),
            "due_date": (today + timedelta(weeks=12)).isoformat(),
            "relevant_to": {"kind": "aspiration",
                            "ref": "become an account lead within two years"}}
    return {**body, **overrides}


async def create_and_accept(goals: httpx.AsyncClient, client_id: str, **overrides) -> dict:
    created = await goals.post(f"/v1/clients/{client_id}/goals", json=draft(**overrides),
                               headers=as_client(client_id))
    assert created.status_code == 201, created.text
    goal_id = created.json()["goal_id"]
    accepted = await goals.post(f"/v1/clients/{client_id}/goals/{goal_id}/accept", json={},
                                headers=as_client(client_id))
    assert accepted.status_code == 200, accepted.text
    return accepted.json()


async def test_an_assessment_delivered_twice_yields_its_suggestions_once(goals, infra):
    client_id = "c-suggest"
    event = skills_assessment(client_id, "a-1")
    # The same message twice, and the same assessment republished under another event id.
    await publish(infra, event, event, event, ids=["assess-1", "assess-1", "assess-1-again"])

    async def suggestions():
        response = await goals.get(f"/v1/clients/{client_id}/goals?status=suggested",
                                   headers=as_client(client_id))
        return response.json() if len(response.json()) == 3 else None

    listed = await eventually(suggestions)
    async with TopicReader(infra.kafka_bootstrap_servers, GOALS_TOPIC) as reader:
        await reader.until(lambda records: len(goal_records(
            records, client_id, "coaching.GoalSuggested.v1")) >= 3)
        await reader.settle(2)
    published = goal_records(reader.records, client_id, "coaching.GoalSuggested.v1")
    assert len(published) == 3
    assert len({s["goal_id"] for s in published}) == 3
    # Weakest first; the tenant's own scale gets the generic template, not an error.
    assert [s["development_area"] for s in published] == [
        "time_management", "acme_domain_fluency", "negotiation"]
    by_area = {s["development_area"]: s for s in published}
    assert by_area["acme_domain_fluency"]["template_id"] == "generic"
    assert "Domain fluency" in by_area["acme_domain_fluency"]["title"]
    assert by_area["time_management"]["template_id"] == "onet.time_management"
    assert all(s["levers"] == ["writing"] for s in published)
    assert any("one-page plan" in action for action in by_area["negotiation"]["first_actions"])
    score_kpi = next(k for k in by_area["negotiation"]["kpis"] if k["kpi_id"] == "kpi-score")
    assert score_kpi["baseline"] == 2.4 and score_kpi["target"] == pytest.approx(3.2)
    assert {g["status"] for g in listed} == {"suggested"}
    # The assessment result itself is still served for the walking skeleton.
    results = await goals.get(f"/v1/clients/{client_id}/assessment-results",
                              headers=as_client(client_id))
    assert [r["assessment_id"] for r in results.json()] == ["a-1"]


async def test_accepting_a_suggestion_publishes_goal_set_once(goals, infra):
    client_id = "c-accept"
    await publish(infra, skills_assessment(client_id, "a-2"))

    async def first_suggestion():
        response = await goals.get(f"/v1/clients/{client_id}/goals?status=suggested",
                                   headers=as_client(client_id))
        return response.json()[0] if response.json() else None

    suggestion = await eventually(first_suggestion)
    url = f"/v1/clients/{client_id}/goals/{suggestion['goal_id']}"
    check = (await goals.get(f"{url}/smart-check", headers=as_client(client_id))).json()
    assert check["passed"], check
    assert [letter["letter"] for letter in check["letters"]] == ["S", "M", "A", "R", "T"]

    headers = {**as_client(client_id), "Idempotency-Key": "accept-once"}
    first = await goals.post(f"{url}/accept", json={}, headers=headers)
    retry = await goals.post(f"{url}/accept", json={}, headers=headers)
    assert first.status_code == retry.status_code == 200, first.text
    assert first.json()["status"] == retry.json()["status"] == "active"
    again = await goals.post(f"{url}/accept", json={}, headers=as_client(client_id))
    assert again.status_code == 409

    async with TopicReader(infra.kafka_bootstrap_servers, GOALS_TOPIC) as reader:
        await reader.until(lambda records: goal_records(
            records, client_id, "coaching.GoalSet.v1"))
        await reader.settle(2)
    goal_sets = goal_records(reader.records, client_id, "coaching.GoalSet.v1")
    assert len(goal_sets) == 1
    assert goal_sets[0]["goal_id"] == suggestion["goal_id"]
    assert goal_sets[0]["relevant_to"] == f"development_area:{suggestion['development_area']}"
    assert goal_sets[0]["smart_override_reason"] is None


async def test_a_checkin_moves_progress_and_at_the_target_the_goal_is_achieved(goals, infra):
    client_id = "c-progress"
    goal = await create_and_accept(goals, client_id)
    assert goal["kpis"][0]["kpi_id"] == "renewals"
    now = utc_now()

    def checkin(period: int, value: float) -> CheckInCompleted:
        return CheckInCompleted(
            tenant_id=TENANT, client_id=client_id, checkin_id=f"ci-{period}",
            goal_id=goal["goal_id"], period=period, completed_at=now, confidence=4,
            kpi_readings=[KpiReading(kpi_id="renewals", value=value,
                                     measured_at=now + timedelta(minutes=period))])

    await publish(infra, checkin(1, 3), ids=["checkin-1"])
    url = f"/v1/clients/{client_id}/goals/{goal['goal_id']}"

    async def progress_at(percent: float):
        body = (await goals.get(url, headers=as_client(client_id))).json()
        return body if body["progress_percent"] == percent else None

    halfway = await eventually(lambda: progress_at(50.0))
    assert halfway["status"] == "active"
    assert halfway["kpis"][0]["latest_value"] == 3
    assert halfway["last_checkin"]["confidence"] == 4

    # The target check-in, delivered twice: one achievement.
    await publish(infra, checkin(2, 4.5), checkin(2, 4.5), ids=["checkin-2", "checkin-2"])
    achieved = await eventually(lambda: progress_at(100.0))
    assert achieved["status"] == "achieved"

    async with TopicReader(infra.kafka_bootstrap_servers, GOALS_TOPIC) as reader:
        await reader.until(lambda records: goal_records(
            records, client_id, "coaching.GoalAchieved.v1"))
        await reader.settle(2)
    assert len(goal_records(reader.records, client_id, "coaching.GoalAchieved.v1")) == 1
    updates = goal_records(reader.records, client_id, "coaching.GoalProgressUpdated.v1")
    assert [u["progress_percent"] for u in updates] == [50.0, 100.0]
    assert updates[-1]["status"] == "achieved"
    assert updates[0]["kpis"] == [{"kpi_id": "renewals", "latest_value": 3.0,
                                   "progress_percent": 50.0}]


async def test_a_failed_smart_check_needs_the_coach_and_a_reason(goals, infra):
    client_id, coach_id = "c-override", "coach-o"
    await enrol(infra, goals, client_id, coach_id)
    long_goal = draft(due_date=(date.today() + timedelta(days=913)).isoformat())
    created = (await goals.post(f"/v1/clients/{client_id}/goals", json=long_goal,
                                headers=as_client(client_id))).json()
    url = f"/v1/clients/{client_id}/goals/{created['goal_id']}"

    refused = await goals.post(f"{url}/accept", json={}, headers=as_client(client_id))
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    letters = {x["letter"]: x for x in refused.json()["smart_check"]["letters"]}
    assert [x for x, v in letters.items() if not v["passed"]] == ["T"]
    assert letters["T"]["message"] == ("Time-bound: due date is 30 months away; the program "
                                       "allows at most 12")

    by_client = await goals.post(f"{url}/accept", headers=as_client(client_id),
                                 json={"override_reason": "agreed a longer runway with HR"})
    assert by_client.status_code == 403
    by_coach = await goals.post(f"{url}/accept", headers=as_coach(coach_id),
                                json={"override_reason": "agreed a longer runway with HR"})
    assert by_coach.status_code == 200, by_coach.text
    override = by_coach.json()["smart_override"]
    assert override["by"] == coach_id and override["failed_letters"] == ["T"]

    async with TopicReader(infra.kafka_bootstrap_servers, GOALS_TOPIC) as reader:
        records = await reader.until(lambda records: goal_records(
            records, client_id, "coaching.GoalSet.v1"))
    goal_set = goal_records(records, client_id, "coaching.GoalSet.v1")[0]
    assert goal_set["smart_override_reason"] == "agreed a longer runway with HR"
    assert goal_set["coach_id"] == coach_id


async def test_admins_set_smart_limits_per_tenant(goals):
    tenant = "limits-co"
    admin = bearer(tenant, "admin-1", "admin")
    client = bearer(tenant, "c-limits", "client")
    long_goal = draft(due_date=(date.today() + timedelta(days=540)).isoformat())
    created = (await goals.post("/v1/clients/c-limits/goals", json=long_goal,
                                headers=client)).json()
    check_url = f"/v1/clients/c-limits/goals/{created['goal_id']}/smart-check"
    assert not (await goals.get(check_url, headers=client)).json()["passed"]

    coach_try = await goals.put("/v1/smart-limits", json={"max_duration_months": 24},
                                headers=bearer(tenant, "coach-1", "coach"))
    assert coach_try.status_code == 403
    inconsistent = await goals.put("/v1/smart-limits", headers=admin,
                                   json={"max_duration_months": 1, "min_duration_days": 60})
    assert inconsistent.status_code == 422
    out_of_range = await goals.put("/v1/smart-limits", json={"max_duration_months": 0},
                                   headers=admin)
    assert out_of_range.status_code == 422
    assert out_of_range.json()["errors"][0]["field"] == "body.max_duration_months"

    changed = await goals.put("/v1/smart-limits", json={"max_duration_months": 24},
                              headers=admin)
    assert changed.status_code == 200
    assert changed.json()["limits"]["max_duration_months"] == 24
    assert changed.json()["limits"]["min_duration_days"] == 14  # default kept
    assert (await goals.get(check_url, headers=client)).json()["passed"]
    # Another tenant keeps the defaults.
    other = await goals.get("/v1/smart-limits", headers=bearer("other-co", "x", "client"))
    assert other.json()["limits"]["max_duration_months"] == 12


async def test_next_actions_rank_high_impact_low_effort_first(goals):
    client_id = "c-actions"
    goal = await create_and_accept(goals, client_id)
    url = f"/v1/clients/{client_id}/goals/{goal['goal_id']}/actions"
    for title, impact, effort in [("Big project", 5, 5), ("Quick win", 5, 1),
                                  ("Small chore", 1, 1), ("Solid step", 4, 2)]:
        response = await goals.post(url, headers=as_client(client_id),
                                    json={"title": title, "impact": impact, "effort": effort})
        assert response.status_code == 201, response.text
    actions = (await goals.get(f"/v1/clients/{client_id}/goals/{goal['goal_id']}",
                               headers=as_client(client_id))).json()["actions"]
    done = next(a for a in actions if a["title"] == "Solid step")
    await goals.patch(f"{url}/{done['action_id']}", json={"status": "done"},
                      headers=as_client(client_id))
    ranked = (await goals.get(f"/v1/clients/{client_id}/next-actions",
                              headers=as_client(client_id))).json()
    assert [(a["rank"], a["title"], a["priority"]) for a in ranked] == [
        (1, "Quick win", 25), (2, "Big project", 5), (3, "Small chore", 5)]


async def test_child_goals_roll_up_into_their_parent(goals):
    client_id = "c-rollup"
    parent = await create_and_accept(goals, client_id)
    child = await create_and_accept(
        goals, client_id, parent_goal_id=parent["goal_id"], weight=3,
        kpis=[{"kpi_id": "calls", "name": "Renewal calls", "baseline": 0, "target": 10}])
    response = await goals.post(
        f"/v1/clients/{client_id}/goals/{child['goal_id']}/measurements",
        json={"kpi_id": "calls", "value": 10}, headers=as_client(client_id))
    assert response.status_code == 200 and response.json()["status"] == "achieved"
    rolled = (await goals.get(f"/v1/clients/{client_id}/goals/{parent['goal_id']}",
                              headers=as_client(client_id))).json()
    # Own KPI at 0 (weight 1), achieved child at 100 (weight 3): 75%.
    assert rolled["progress_percent"] == 75.0
    assert rolled["children"] == [{"goal_id": child["goal_id"], "weight": 3.0,
                                   "progress_percent": 100.0, "status": "achieved"}]
    unknown_kpi = await goals.post(
        f"/v1/clients/{client_id}/goals/{parent['goal_id']}/measurements",
        json={"kpi_id": "nope", "value": 1}, headers=as_client(client_id))
    assert unknown_kpi.status_code == 422 and "nope" in unknown_kpi.json()["detail"]


async def test_goals_are_visible_to_client_and_their_coach_only(goals, infra):
    client_id, coach_id = "c-private", "coach-p"
    await enrol(infra, goals, client_id, coach_id)
    await create_and_accept(goals, client_id)
    path = f"/v1/clients/{client_id}/goals"
    assert len((await goals.get(path, headers=as_coach(coach_id))).json()) == 1
    assert (await goals.get(path, headers=as_coach("coach-other"))).status_code == 404
    assert (await goals.get(path, headers=as_client("c-someone-else"))).status_code == 404
    assert (await goals.get(path, headers=bearer(TENANT, "admin-1", "admin"))).status_code == 404
    assert (await goals.get(path, headers=bearer("globex", client_id, "client"))).json() == []
    summary = await goals.get("/v1/goals/summary", headers=bearer(TENANT, "admin-1", "admin"))
    assert summary.status_code == 200
    assert summary.json()["goals_by_status"]["active"] >= 1
    assert (await goals.get("/v1/goals/summary", headers=as_coach(coach_id))).status_code == 403
    invalid = await goals.post(path, headers=as_client(client_id),
                               json={"title": "x", "kpis": [{"name": "k", "baseline": "many"}]})
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["field"] == "body.kpis.0.baseline"

    await publish(infra, ClientOffboarded(tenant_id=TENANT, client_id=client_id))

    async def erased():
        return (await goals.get(path, headers=as_client(client_id))).json() == []

    await eventually(erased)


async def test_a_checkin_for_an_unknown_goal_goes_to_the_dead_letters(goals, infra):
    event = CheckInCompleted(
        tenant_id=TENANT, client_id="c-ghost", checkin_id="ci-ghost", goal_id="no-such-goal",
        period=1, completed_at=datetime.now(UTC), confidence=3,
        kpi_readings=[KpiReading(kpi_id="k", value=1, measured_at=datetime.now(UTC))])
    await publish(infra, event, ids=["checkin-ghost"])
    async with TopicReader(infra.kafka_bootstrap_servers,
                           dead_letter_topic("goals", PREFIX)) as reader:
        records = await reader.until(lambda records: any(
            headers_of(r).get("ce_id") == "checkin-ghost" for r in records))
    dead = next(r for r in records if headers_of(r).get("ce_id") == "checkin-ghost")
    assert "has no goal 'no-such-goal'" in headers_of(dead)["dlq_reason"]
