"""The walking skeleton: four service processes, one flow across real Kafka and MongoDB wire.

Enrolment published by an outside client (the HRIS) -> the assessment service assigns the
instruments; the client submits one over HTTP -> AssessmentCompleted through its outbox -> the
goals service stores it; every service keeps its roster; offboarding erases the client
everywhere.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest
from coaching_shared.auth import mint_token
from coaching_shared.contracts import ClientEnrolled, ClientOffboarded, CoachContact
from coaching_shared.settings import ServiceSettings
from support.infra import Infrastructure
from support.kafka_tools import TopicReader, eventually, headers_of, publish_events
from support.processes import SERVICES, ServiceProcess

pytestmark = pytest.mark.integration

TENANT = "acme"
# Topics and databases of this run's own: a reused Kafka and database server (the
# KAFKA_BOOTSTRAP_SERVERS/MONGODB_URL of a developer's `make infra-start`) keep earlier runs'.
PREFIX = f"skeleton{uuid.uuid4().hex[:8]}."


def database_of(service: str) -> str:
    return f"{PREFIX.rstrip('.')}_{service}"


@pytest.fixture(scope="module")
def platform(infra: Infrastructure, tmp_path_factory) -> Iterator[dict[str, ServiceProcess]]:
    """The four services as separate processes, sharing one topic prefix."""
    logs = tmp_path_factory.mktemp("service-logs")
    services = {}
    for name in SERVICES:
        services[name] = ServiceProcess(name, {
            "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
            "MONGODB_URL": infra.mongodb_url, "TOPIC_PREFIX": PREFIX,
            "MONGODB_DATABASE": database_of(name),
            "OUTBOX_SWEEP_SECONDS": "0.5"}, logs)
    try:
        for service in services.values():
            service.start()
        for service in services.values():
            service.wait_ready()
        yield services
    finally:
        for service in services.values():
            service.stop()


def token(subject: str, *roles: str) -> dict[str, str]:
    settings = ServiceSettings(service_name="tests")
    return {"Authorization": f"Bearer {mint_token(settings, TENANT, subject, list(roles))}"}


def enrolment(client_id: str) -> ClientEnrolled:
    return ClientEnrolled(
        tenant_id=TENANT, client_id=client_id, program_id="leaders-2026",
        display_name="Ada Example", email=f"{client_id}@example.com", timezone="Europe/Berlin",
        coach=CoachContact(coach_id="coach-1", display_name="Grace Coach",
                           email="grace@example.com"))


async def assigned(platform, client_id: str) -> list[dict]:
    """Wait for the assessment service to assign the enrolled client's three instruments."""
    url = f"{platform['assessment'].url}/v1/clients/{client_id}/assignments"

    async def listed():
        response = httpx.get(url, headers=token(client_id, "client"))
        found = response.json() if response.status_code == 200 else []
        return found if len(found) >= 3 else None

    return await eventually(listed, timeout=60)


def complete_big_five(platform, client_id: str, assignments: list[dict]) -> dict:
    """The client answers the personality instrument over HTTP and submits it."""
    assessment = platform["assessment"].url
    assignment = next(a for a in assignments if a["instrument_id"] == "big-five")
    base = f"{assessment}/v1/clients/{client_id}/assignments/{assignment['assignment_id']}"
    page = httpx.get(f"{base}/items", params={"limit": 100},
                     headers=token(client_id, "client")).json()
    answers = {item["item_id"]: 1 + index % 5 for index, item in enumerate(page["items"])}
    response = httpx.post(f"{base}/submission", json={
        "instrument_version": assignment["instrument_version"], "answers": answers},
        headers={**token(client_id, "client"), "Idempotency-Key": f"skeleton-{client_id}"})
    assert response.status_code == 201, response.text
    return response.json()


async def stored_in_goals(platform, client_id: str) -> list[dict]:
    goals = platform["goals"].url

    async def stored():
        response = httpx.get(f"{goals}/v1/clients/{client_id}/assessment-results",
                             headers=token(client_id, "client"))
        return response.json() if response.status_code == 200 and response.json() else None

    return await eventually(stored, timeout=60)


async def test_enrolment_flows_to_goals_through_real_kafka(platform, infra):
    goals = platform["goals"].url
    await publish_events(infra.kafka_bootstrap_servers, PREFIX, [enrolment("c-100")])
    assignments = await assigned(platform, "c-100")
    assert sorted(a["instrument_id"] for a in assignments) == ["big-five", "onet-skills",
                                                               "riasec"]
    result = complete_big_five(platform, "c-100", assignments)

    results = await stored_in_goals(platform, "c-100")
    assert results[0]["assessment_id"] == result["assessment_id"]
    assert results[0]["instrument_id"] == "big-five"
    assert [s["score"] for s in results[0]["scores"]] == [s["score"] for s in result["scores"]]

    # The coach sees it too; another coach and another tenant's token do not.
    as_coach = httpx.get(f"{goals}/v1/clients/c-100/assessment-results",
                         headers=token("coach-1", "coach"))
    assert as_coach.status_code == 200 and len(as_coach.json()) == 1
    other_coach = httpx.get(f"{goals}/v1/clients/c-100/assessment-results",
                            headers=token("coach-2", "coach"))
    assert other_coach.status_code == 404

    # The event on the wire is a binary-mode CloudEvent keyed by the client.
    completed = "coaching.AssessmentCompleted.v1"
    async with TopicReader(infra.kafka_bootstrap_servers, f"{PREFIX}coaching.assessment") as r:
        records = await r.until(lambda recs: any(
            rec.key == b"c-100" and headers_of(rec)["ce_type"] == completed for rec in recs))
    headers = headers_of(next(rec for rec in records if rec.key == b"c-100"
                              and headers_of(rec)["ce_type"] == completed))
    assert headers["ce_source"] == "/coaching/assessment"
    assert headers["ce_tenant"] == TENANT and headers["ce_subject"] == "c-100"

    # Every service took the enrolment into its roster: the coach's caseload lists the client.
    caseload = httpx.get(f"{platform['feedback'].url}/v1/caseload",
                         headers=token("coach-1", "coach"))
    assert [entry["client_id"] for entry in caseload.json()] == ["c-100"]
    contact = httpx.get(f"{platform['notifier'].url}/v1/people/me/contact",
                        headers=token("c-100", "client"))
    assert contact.json()["email"] == "c-100@example.com"


async def test_redelivered_enrolment_does_not_duplicate(platform, infra):
    event = enrolment("c-200")
    await publish_events(infra.kafka_bootstrap_servers, PREFIX, [event, event],
                         ids=["enrol-c-200", "enrol-c-200"])
    assignments = await assigned(platform, "c-200")
    async with TopicReader(infra.kafka_bootstrap_servers, f"{PREFIX}coaching.assessment") as r:
        await r.until(lambda recs: len([rec for rec in recs if rec.key == b"c-200"]) >= 3)
        await r.settle(2)
    assert len([rec for rec in r.records if rec.key == b"c-200"]) == 3
    assert len(httpx.get(f"{platform['assessment'].url}/v1/clients/c-200/assignments",
                         headers=token("c-200", "client")).json()) == 3
    # the submission retried with its Idempotency-Key completes the assessment once
    first = complete_big_five(platform, "c-200", assignments)
    again = complete_big_five(platform, "c-200", assignments)
    assert again == first
    await stored_in_goals(platform, "c-200")
    assessments = httpx.get(f"{platform['assessment'].url}/v1/clients/c-200/assessments",
                            headers=token("c-200", "client")).json()
    assert len(assessments) == 1
    goals = httpx.get(f"{platform['goals'].url}/v1/clients/c-200/assessment-results",
                      headers=token("c-200", "client")).json()
    assert len(goals) == 1


async def test_offboarding_erases_the_client_everywhere(platform, infra, mongo):
    await publish_events(infra.kafka_bootstrap_servers, PREFIX, [enrolment("c-300")])
    complete_big_five(platform, "c-300", await assigned(platform, "c-300"))
    await stored_in_goals(platform, "c-300")
    # Offboard while the completion's consequences (suggestions, notifications) may still be
    # in flight: nothing written afterwards may bring the client's data back.
    await publish_events(infra.kafka_bootstrap_servers, PREFIX,
                         [ClientOffboarded(tenant_id=TENANT, client_id="c-300")])

    async def erased_everywhere():
        for name in SERVICES:
            db = mongo[database_of(name)]
            assert await db.list_collection_names(), f"{name} wrote nothing: wrong database?"
            for collection in await db.list_collection_names():
                if collection == "erased_clients":
                    continue
                if await db[collection].find_one({"tenant_id": TENANT, "client_id": "c-300"}):
                    return False
        return True

    await eventually(erased_everywhere, timeout=60)
    await asyncio.sleep(3)
    assert await erased_everywhere(), "data about the client came back after the erasure"


def test_operations_endpoints(platform):
    for name, service in platform.items():
        assert httpx.get(f"{service.url}/health/live").json() == {"status": "live"}
        ready = httpx.get(f"{service.url}/health/ready").json()
        assert ready["checks"] == {"started": True, "mongodb": True, "kafka": True}
        metrics = httpx.get(f"{service.url}/metrics").text
        assert "coaching_events_in_total" in metrics
        openapi = httpx.get(f"{service.url}/openapi.json").json()
        assert openapi["info"]["title"].lower().startswith("coaching")
        asyncapi = httpx.get(f"{service.url}/asyncapi.json").json()
        assert asyncapi["asyncapi"].startswith("3.")
        assert any("enrolment" in channel["address"]
                   for channel in asyncapi["channels"].values()), name


def test_requests_without_a_valid_token_get_problem_details(platform):
    url = f"{platform['goals'].url}/v1/clients/c-100/assessment-results"
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["status"] == 401
    forged = httpx.get(url, headers={"Authorization": "Bearer not.a.token"})
    assert forged.status_code == 401 and "invalid bearer token" in forged.json()["detail"]
    feedback = httpx.get(f"{platform['feedback'].url}/v1/caseload",
                         headers=token("c-100", "client"))
    assert feedback.status_code == 403
