"""The assessment service against the real Kafka broker and FerretDB: assignment on
enrolment, paged items, saved answers, idempotent submission, results and erasure."""

from __future__ import annotations

import json
from typing import Any

import pytest
from coaching_assessment.app import create_app
from coaching_assessment.settings import AssessmentSettings
from coaching_shared.contracts import ClientEnrolled, ClientOffboarded, CoachContact
from coaching_shared.events import topic_name
from support.inprocess import bearer, running_service, service_settings
from support.kafka_tools import TopicReader, eventually, headers_of, publish_events

pytestmark = pytest.mark.integration

TENANT = "acme"
COACH = "coach-7"


def enrolment(client_id: str, program_id: str = "leaders") -> ClientEnrolled:
    return ClientEnrolled(
        tenant_id=TENANT, client_id=client_id, program_id=program_id,
        display_name="Test Person", email=f"{client_id}@example.com",
        coach=CoachContact(coach_id=COACH, display_name="Coach", email="coach@example.com"))


def as_client(client_id: str) -> dict[str, str]:
    return bearer(TENANT, client_id, "client")


async def assignments_of(client, client_id: str, count: int) -> list[dict[str, Any]]:
    """Wait until the client has `count` assignments."""
    async def listed():
        response = await client.get(f"/v1/clients/{client_id}/assignments",
                                    headers=as_client(client_id))
        found = response.json() if response.status_code == 200 else []
        return found if len(found) >= count else None

    return await eventually(listed, timeout=60)


def sample_answers(items: list[dict[str, Any]]) -> dict[str, int]:
    """A varied but deterministic answer to every item (values 1..5)."""
    return {item["item_id"]: 1 + (index * 7 + len(item["text"])) % 5
            for index, item in enumerate(items)}


async def all_items(client, client_id: str, assignment_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = (await client.get(
            f"/v1/clients/{client_id}/assignments/{assignment_id}/items",
            params={"offset": offset, "limit": 25}, headers=as_client(client_id))).json()
        items.extend(page["items"])
        offset += 25
        if offset >= page["total"]:
            return items


async def enrolled_assignment(client, infra, prefix: str, client_id: str, instrument_id: str,
                              ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Enrol a client, wait for their assignments, return one and its items."""
    await publish_events(infra.kafka_bootstrap_servers, prefix, [enrolment(client_id)])
    assignments = await assignments_of(client, client_id, 3)
    assignment = next(a for a in assignments if a["instrument_id"] == instrument_id)
    return assignment, await all_items(client, client_id, assignment["assignment_id"])


async def test_enrolment_assigns_the_three_instruments_once(infra, prefix):
    settings = service_settings(AssessmentSettings, infra, prefix)
    async with running_service(create_app, settings) as client:
        event = enrolment("c-1")
        await publish_events(infra.kafka_bootstrap_servers, prefix, [event, event],
                             ids=["enrol-c-1", "enrol-c-1"])
        assignments = await assignments_of(client, "c-1", 3)
        async with TopicReader(infra.kafka_bootstrap_servers,
                               topic_name("assessment", prefix)) as reader:
            await reader.until(lambda records: len(records) >= 3)
            await reader.settle(2)
        # a redelivered enrolment assigns nothing more
        assert len((await client.get("/v1/clients/c-1/assignments",
                                      headers=as_client("c-1"))).json()) == 3
    assert sorted(a["instrument_id"] for a in assignments) == ["big-five", "onet-skills",
                                                               "riasec"]
    assert {a["status"] for a in assignments} == {"assigned"}
    assert {a["assigned_by"] for a in assignments} == {"enrolment"}
    types = [headers_of(record)["ce_type"] for record in reader.records]
    assert types == ["coaching.AssessmentAssigned.v1"] * 3
    assert {json.loads(r.value)["instrument_id"] for r in reader.records} == {
        "big-five", "onet-skills", "riasec"}


async def test_answers_are_saved_resumed_checked_and_submitted_once(infra, prefix):
    settings = service_settings(AssessmentSettings, infra, prefix)
    async with running_service(create_app, settings) as client:
        riasec, items = await enrolled_assignment(client, infra, prefix, "c-2", "riasec")
        base = f"/v1/clients/c-2/assignments/{riasec['assignment_id']}"
        assert len(items) == 60 and len({i["item_id"] for i in items}) == 60
        answers = sample_answers(items)
        first_half = dict(list(answers.items())[:30])

        saved = await client.put(f"{base}/answers", headers=as_client("c-2"),
                                 json={"instrument_version": 1, "answers": first_half})
        assert saved.status_code == 200 and saved.json()["answered"] == 30
        resumed = (await client.get(f"{base}/items", params={"limit": 5},
                                    headers=as_client("c-2"))).json()
        assert resumed["answered"] == 30
        assert [i["answer"] for i in resumed["items"]] == [answers[i["item_id"]]
                                                          for i in items[:5]]
        listed = (await client.get(f"{base}", headers=as_client("c-2"))).json()
        assert listed["status"] == "in_progress"

        bad = await client.put(f"{base}/answers", headers=as_client("c-2"),
                               json={"instrument_version": 1, "answers": {"r01": 9, "x1": 2}})
        assert bad.status_code == 422
        assert {e["item_id"] for e in bad.json()["errors"]} == {"r01", "x1"}

        incomplete = await client.post(f"{base}/submission", headers=as_client("c-2"),
                                       json={"instrument_version": 1})
        assert incomplete.status_code == 422
        missing = {e["item_id"] for e in incomplete.json()["errors"]}
        assert missing == set(answers) - set(first_half)

        wrong_version = await client.post(f"{base}/submission", headers=as_client("c-2"),
                                          json={"instrument_version": 2, "answers": answers})
        assert wrong_version.status_code == 409
        assert "version 2" in wrong_version.json()["detail"]

        coach = await client.post(f"{base}/submission", headers=bearer(TENANT, COACH, "coach"),
                                  json={"instrument_version": 1, "answers": answers})
        assert coach.status_code == 403

        rest = {k: v for k, v in answers.items() if k not in first_half}
        keyed = {**as_client("c-2"), "Idempotency-Key": "submit-riasec-1"}
        first = await client.post(f"{base}/submission", headers=keyed,
                                  json={"instrument_version": 1, "answers": rest})
        again = await client.post(f"{base}/submission", headers=keyed,
                                  json={"instrument_version": 1, "answers": rest})
        other_key = await client.post(
            f"{base}/submission", json={"instrument_version": 1, "answers": rest},
            headers={**as_client("c-2"), "Idempotency-Key": "another"})
        assert first.status_code == 201 and again.status_code == 201
        assert again.json() == first.json()
        assert other_key.status_code == 409
        result = first.json()

        async with TopicReader(infra.kafka_bootstrap_servers,
                               topic_name("assessment", prefix)) as reader:
            await reader.until(lambda records: any(
                headers_of(r)["ce_type"] == "coaching.AssessmentCompleted.v1"
                for r in records))
            await reader.settle(2)
        completed = [r for r in reader.records
                     if headers_of(r)["ce_type"] == "coaching.AssessmentCompleted.v1"]
        results = (await client.get("/v1/clients/c-2/assessments",
                                    headers=as_client("c-2"))).json()
        status = (await client.get(base, headers=as_client("c-2"))).json()
        stored = await client.app.state.runtime.db["results"].count_documents({})

    assert len(completed) == 1 and stored == 1
    assert [r["assessment_id"] for r in results] == [result["assessment_id"]]
    assert status["status"] == "completed"
    assert status["assessment_id"] == result["assessment_id"]
    data = json.loads(completed[0].value)
    assert data["assessment_id"] == result["assessment_id"]
    assert data["instrument_id"] == "riasec" and data["instrument_version"] == 1
    assert "answers" not in data and "answers" not in result
    expected = {s["scale_id"]: sum(answers[i["item_id"]] - 1 for i in items
                                   if i["item_id"][0] == s["scale_id"][0])
                for s in result["scores"]}
    assert {s["scale_id"]: s["score"] for s in result["scores"]} == expected
    assert {s["scale_id"]: s["score"] for s in data["scores"]} == expected
    holland = next(c for c in result["codes"] if c["output_id"] == "holland_code")
    assert data["holland_code"] == holland["code"]
    assert data["holland_code_alternatives"] == holland["codes"]
    assert all(s["percentile"] is None and s["norm_group_size"] == 1
               for s in result["scores"])
    assert "at least 30" in result["scores"][0]["percentile_note"]


async def test_results_are_private_and_erased_on_offboarding(infra, prefix):
    settings = service_settings(AssessmentSettings, infra, prefix)
    async with running_service(create_app, settings) as client:
        big_five, items = await enrolled_assignment(client, infra, prefix, "c-3", "big-five")
        submitted = await client.post(
            f"/v1/clients/c-3/assignments/{big_five['assignment_id']}/submission",
            headers=as_client("c-3"),
            json={"instrument_version": 1, "answers": sample_answers(items)})
        assert submitted.status_code == 201
        url = "/v1/clients/c-3/assessments"
        coach = await client.get(url, headers=bearer(TENANT, COACH, "coach"))
        other_client = await client.get(url, headers=as_client("c-9"))
        admin = await client.get(url, headers=bearer(TENANT, "admin-1", "admin"))
        other_tenant = await client.get(url, headers=bearer("globex", "c-3", "client"))
        profile = (await client.get("/v1/clients/c-3/profile", headers=as_client("c-3"))).json()

        # the coach assigns a retake; a retry with the same key makes no second assignment
        retake = {"instrument_id": "big-five"}
        keyed = {**bearer(TENANT, COACH, "coach"), "Idempotency-Key": "retake-1"}
        assigned = await client.post("/v1/clients/c-3/assignments", json=retake, headers=keyed)
        again = await client.post("/v1/clients/c-3/assignments", json=retake, headers=keyed)
        still_open = await client.post("/v1/clients/c-3/assignments", json=retake,
                                       headers=bearer(TENANT, COACH, "coach"))
        other_coach = await client.post("/v1/clients/c-3/assignments", json=retake,
                                        headers=bearer(TENANT, "coach-8", "coach"))
        by_client = await client.post("/v1/clients/c-3/assignments", json=retake,
                                      headers=as_client("c-3"))
        count = len((await client.get("/v1/clients/c-3/assignments",
                                      headers=as_client("c-3"))).json())

        await publish_events(infra.kafka_bootstrap_servers, prefix,
                             [ClientOffboarded(tenant_id=TENANT, client_id="c-3")])
        db = client.app.state.runtime.db

        async def erased():
            for name in ("assignments", "responses", "results"):
                if await db[name].find_one({"tenant_id": TENANT, "client_id": "c-3"}):
                    return False
            return True

        await eventually(erased, timeout=60)
    assert coach.status_code == 200 and len(coach.json()) == 1
    assert other_client.status_code == 404 and admin.status_code == 404
    assert other_tenant.json() == []  # the same id in another tenant is someone else
    assert [i["instrument_id"] for i in profile["instruments"]] == ["big-five"]
    assert assigned.status_code == 201 and again.json() == assigned.json()
    assert assigned.json()["assigned_by"] == COACH and count == 4
    assert still_open.status_code == 409
    assert other_coach.status_code == 404 and by_client.status_code == 403
    assert all(f["reason"] for f in profile["strengths"] + profile["development_areas"])
