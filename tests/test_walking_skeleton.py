"""The walking skeleton: four service processes, one flow across real Kafka and MongoDB wire.

Enrolment published by an outside client (the HRIS) -> the assessment service records the
intake completion and publishes AssessmentCompleted through its outbox -> the goals service
stores it; every service keeps its roster; offboarding erases the client everywhere.
"""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def platform(infra: Infrastructure, tmp_path_factory) -> Iterator[dict[str, ServiceProcess]]:
    """The four services as separate processes, sharing one topic prefix."""
    prefix = "skeleton."
    logs = tmp_path_factory.mktemp("service-logs")
    services = {}
    for name in SERVICES:
        services[name] = ServiceProcess(name, {
            "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
            "MONGODB_URL": infra.mongodb_url, "TOPIC_PREFIX": prefix,
            "MONGODB_DATABASE": f"skeleton_{name}", "OUTBOX_SWEEP_SECONDS": "0.5"}, logs)
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


async def test_enrolment_flows_to_goals_through_real_kafka(platform, infra):
    goals = platform["goals"].url
    await publish_events(infra.kafka_bootstrap_servers, "skeleton.", [enrolment("c-100")])

    async def stored_in_goals():
        response = httpx.get(f"{goals}/v1/clients/c-100/assessment-results",
                             headers=token("c-100", "client"))
        return response.json() if response.status_code == 200 and response.json() else None

    results = await eventually(stored_in_goals, timeout=60)
    assert results[0]["instrument_id"] == "intake"

    # The coach sees it too; another coach and another tenant's token do not.
    as_coach = httpx.get(f"{goals}/v1/clients/c-100/assessment-results",
                         headers=token("coach-1", "coach"))
    assert as_coach.status_code == 200 and len(as_coach.json()) == 1
    other_coach = httpx.get(f"{goals}/v1/clients/c-100/assessment-results",
                            headers=token("coach-2", "coach"))
    assert other_coach.status_code == 404

    # The event on the wire is a binary-mode CloudEvent keyed by the client.
    async with TopicReader(infra.kafka_bootstrap_servers, "skeleton.coaching.assessment") as r:
        records = await r.until(lambda recs: any(rec.key == b"c-100" for rec in recs))
    headers = headers_of(next(rec for rec in records if rec.key == b"c-100"))
    assert headers["ce_type"] == "coaching.AssessmentCompleted.v1"
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
    await publish_events(infra.kafka_bootstrap_servers, "skeleton.", [event, event],
                         ids=["enrol-c-200", "enrol-c-200"])
    goals = platform["goals"].url

    async def stored():
        response = httpx.get(f"{goals}/v1/clients/c-200/assessment-results",
                             headers=token("c-200", "client"))
        return response.json() or None

    await eventually(stored, timeout=60)
    async with TopicReader(infra.kafka_bootstrap_servers, "skeleton.coaching.assessment") as r:
        await r.until(lambda recs: any(rec.key == b"c-200" for rec in recs))
        await r.settle(2)
    assert len([rec for rec in r.records if rec.key == b"c-200"]) == 1
    assessments = httpx.get(f"{platform['assessment'].url}/v1/clients/c-200/assessments",
                            headers=token("c-200", "client")).json()
    assert len(assessments) == 1


async def test_offboarding_erases_the_client_everywhere(platform, infra, mongo):
    await publish_events(infra.kafka_bootstrap_servers, "skeleton.", [enrolment("c-300")])
    goals = platform["goals"].url

    async def stored():
        response = httpx.get(f"{goals}/v1/clients/c-300/assessment-results",
                             headers=token("c-300", "client"))
        return response.json() or None

    await eventually(stored, timeout=60)
    await publish_events(infra.kafka_bootstrap_servers, "skeleton.",
                         [ClientOffboarded(tenant_id=TENANT, client_id="c-300")])

    async def erased_everywhere():
        for name in SERVICES:
            db = mongo[f"skeleton_{name}"]
            for collection in await db.list_collection_names():
                if collection == "erased_clients":
                    continue
                if await db[collection].find_one({"tenant_id": TENANT, "client_id": "c-300"}):
                    return False
        return True

    await eventually(erased_everywhere, timeout=60)


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
