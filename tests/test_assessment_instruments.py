"""Tenant instruments, program plans, norms and reliability through the real service."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from coaching_assessment.app import create_app
from coaching_assessment.settings import AssessmentSettings
from coaching_shared.contracts import ClientEnrolled
from support.inprocess import bearer, running_service, service_settings
from support.kafka_tools import eventually, publish_events

pytestmark = pytest.mark.integration

TENANT = "acme"
ADMIN = bearer(TENANT, "admin-1", "admin")
INTEGRATION = bearer(TENANT, "chat-frontend", "integration")
PULSE: dict[str, Any] = {
    "instrument_id": "pulse", "version": 1, "title": "Team pulse",
    "response_scales": {"default": {"options": [
        {"value": 1, "label": "disagree"}, {"value": 2, "label": "unsure"},
        {"value": 3, "label": "agree"}]}},
    "scales": [{"scale_id": "clarity", "label": "Clarity", "scoring": {"rule": "sum"}},
               {"scale_id": "energy", "label": "Energy", "scoring": {"rule": "mean"}}],
    "items": [
        {"item_id": "c1", "text": "I know what is expected of me.", "scale": "clarity",
         "keying": "+"},
        {"item_id": "c2", "text": "My priorities keep changing.", "scale": "clarity",
         "keying": "-"},
        {"item_id": "e1", "text": "I look forward to work.", "scale": "energy",
         "keying": "+"},
        {"item_id": "e2", "text": "I feel drained by noon.", "scale": "energy", "keying": "+"}],
    "profile": {"strengths": {"count": 1, "min_share": 0.5},
                "development_areas": {"method": "lowest", "count": 1, "max_share": 0.5}},
}


async def test_uploaded_instruments_are_validated_versioned_and_scored(infra, prefix):
    settings = service_settings(AssessmentSettings, infra, prefix)
    async with running_service(create_app, settings) as client:
        bad = copy.deepcopy(PULSE)
        bad["items"][0]["scale"] = "focus"
        refused = await client.post("/v1/instruments", json=bad, headers=ADMIN)
        no_keying = copy.deepcopy(PULSE)
        del no_keying["items"][1]["keying"]
        refused_keying = await client.post("/v1/instruments", json=no_keying, headers=ADMIN)
        empty = copy.deepcopy(PULSE)
        empty["response_scales"]["default"]["options"] = []
        refused_empty = await client.post("/v1/instruments", json=empty, headers=ADMIN)
        as_coach = await client.post("/v1/instruments", json=PULSE,
                                     headers=bearer(TENANT, "coach-1", "coach"))
        created = await client.post("/v1/instruments", json=PULSE, headers=ADMIN)
        repeated = await client.post("/v1/instruments", json=PULSE, headers=ADMIN)
        changed = copy.deepcopy(PULSE)
        changed["title"] = "Team pulse (renamed)"
        conflict = await client.post("/v1/instruments", json=changed, headers=ADMIN)
        builtin = await client.post("/v1/instruments", headers=ADMIN,
                                    json={**PULSE, "instrument_id": "riasec"})
        catalogue = (await client.get("/v1/instruments", headers=ADMIN)).json()
        elsewhere = (await client.get("/v1/instruments",
                                      headers=bearer("globex", "a", "admin"))).json()

        # a program assigns it on enrolment; the client answers; the same engine scores it
        plan = await client.put("/v1/programs/pulse-program/enrolment-instruments",
                                headers=ADMIN, json={"instruments": ["pulse"]})
        unknown_plan = await client.put("/v1/programs/p/enrolment-instruments",
                                        headers=ADMIN, json={"instruments": ["nope"]})
        await publish_events(infra.kafka_bootstrap_servers, prefix, [ClientEnrolled(
            tenant_id=TENANT, client_id="p-1", program_id="pulse-program",
            display_name="P One", email="p1@example.com")])
        assignment = (await eventually(lambda: _assignments(client, "p-1")))[0]
        submitted = await client.post(
            f"/v1/clients/p-1/assignments/{assignment['assignment_id']}/submission",
            headers=bearer(TENANT, "p-1", "client"),
            json={"instrument_version": 1, "answers": {"c1": 3, "c2": 1, "e1": 1, "e2": 2}})

        # version 2 changes the keying; the version 1 result stays as it was scored
        second = copy.deepcopy(PULSE)
        second["version"] = 2
        second["items"][3]["keying"] = "-"
        published_v2 = await client.post("/v1/instruments", json=second, headers=ADMIN)
        older = await client.post("/v1/instruments", headers=ADMIN,
                                  json={**copy.deepcopy(PULSE), "version": 1,
                                        "title": "late v1"})
        reassigned = await client.post("/v1/clients/p-1/assignments", headers=ADMIN,
                                       json={"instrument_id": "pulse"})
        result_after = (await client.get(
            f"/v1/clients/p-1/assessments/{submitted.json()['assessment_id']}",
            headers=bearer(TENANT, "p-1", "client"))).json()

    assert refused.status_code == 422
    assert "item 'c1' refers to unknown scale 'focus'" in refused.text
    assert refused_keying.status_code == 422 and "items.1.keying" in refused_keying.text
    assert refused_empty.status_code == 422
    assert "response_scales.default.options" in refused_empty.text
    assert as_coach.status_code == 403
    assert created.status_code == 201 and repeated.status_code == 200
    assert conflict.status_code == 409 and builtin.status_code == 409
    assert [i["instrument_id"] for i in catalogue] == ["onet-skills", "big-five", "riasec",
                                                       "pulse"]
    assert "pulse" not in [i["instrument_id"] for i in elsewhere]
    assert plan.status_code == 200 and unknown_plan.status_code == 404
    assert assignment["instrument_id"] == "pulse" and assignment["instrument_version"] == 1
    assert submitted.status_code == 201
    scores = {s["scale_id"]: (s["score"], s["minimum"], s["maximum"])
              for s in submitted.json()["scores"]}
    # clarity: 3 + (1 + 3 - 1) = 6 of 2..6; energy: (1 + 2) / 2 = 1.5 of 1..3
    assert scores == {"clarity": (6, 2, 6), "energy": (1.5, 1, 3)}
    assert [f["scale_id"] for f in submitted.json()["strengths"]] == ["clarity"]
    assert [f["scale_id"] for f in submitted.json()["development_areas"]] == ["energy"]
    assert published_v2.status_code == 201 and older.status_code == 409
    assert reassigned.status_code == 201 and reassigned.json()["instrument_version"] == 2
    assert {s["scale_id"]: s["score"] for s in result_after["scores"]} == {
        "clarity": 6, "energy": 1.5}
    assert result_after["instrument_version"] == 1


async def _assignments(client, client_id: str) -> list[dict[str, Any]] | None:
    response = await client.get(f"/v1/clients/{client_id}/assignments",
                                headers=bearer(TENANT, client_id, "client"))
    return response.json() if response.status_code == 200 and response.json() else None


async def test_norms_and_reliability_over_thirty_completions(infra, prefix):
    settings = service_settings(AssessmentSettings, infra, prefix)
    clients = [f"n-{number:02d}" for number in range(31)]
    async with running_service(create_app, settings) as client:
        assert (await client.post("/v1/instruments", json=PULSE, headers=ADMIN)).status_code == 201
        await client.put("/v1/programs/norms/enrolment-instruments", headers=ADMIN,
                         json={"instruments": ["pulse"]})
        await publish_events(infra.kafka_bootstrap_servers, prefix, [ClientEnrolled(
            tenant_id=TENANT, client_id=client_id, program_id="norms",
            display_name="N", email=f"{client_id}@example.com") for client_id in clients])

        async def everyone_assigned():
            found = [await _assignments(client, client_id) for client_id in clients]
            return found if all(found) else None

        assignments = {client_id: found[0]["assignment_id"]
                       for client_id, found in zip(clients, await eventually(
                           everyone_assigned, timeout=90), strict=True)}
        results = {}
        for number, client_id in enumerate(clients):
            level = 1 + number % 3  # clarity items agree with each other; energy items do not
            answers = {"c1": level, "c2": 4 - level, "e1": level, "e2": 1 + (number // 3) % 3}
            response = await client.post(
                f"/v1/clients/{client_id}/assignments/{assignments[client_id]}/submission",
                headers=INTEGRATION, json={"instrument_version": 1, "answers": answers})
            assert response.status_code == 201, response.text
            results[client_id] = response.json()
        latest = (await client.get(f"/v1/clients/n-00/assessments/"
                                   f"{results['n-00']['assessment_id']}",
                                   headers=INTEGRATION)).json()
        quality = await client.get("/v1/instruments/pulse/versions/1/quality", headers=ADMIN)
        coach_quality = await client.get("/v1/instruments/pulse/versions/1/quality",
                                         headers=bearer(TENANT, "coach-1", "coach"))

    # The 29th completion saw 29 in the norm group, the 30th sees 30: percentiles appear.
    assert results["n-28"]["scores"][0]["percentile"] is None
    assert results["n-28"]["scores"][0]["norm_group_size"] == 29
    assert results["n-29"]["scores"][0]["percentile"] is not None
    # n-00 has clarity 2 (levels 1): 11 of 31 at 2, none below -> 100 * 5.5 / 31
    clarity = next(s for s in latest["scores"] if s["scale_id"] == "clarity")
    assert clarity["score"] == 2 and clarity["norm_group_size"] == 31
    assert clarity["percentile"] == round(100 * 5.5 / 31, 1)
    assert quality.status_code == 200 and coach_quality.status_code == 403
    report = quality.json()
    assert report["completed_responses"] == 31
    by_scale = {scale["scale_id"]: scale for scale in report["scales"]}
    assert by_scale["clarity"]["alpha"] == pytest.approx(1.0)
    assert not by_scale["clarity"]["flagged"]
    assert by_scale["energy"]["alpha"] < 0.70 and report["flagged"] == ["energy"]
    assert all(item["corrected_item_total"] is not None
               for item in by_scale["clarity"]["item_total"])
