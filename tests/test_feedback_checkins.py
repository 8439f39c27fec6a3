"""The feedback service through real Kafka and FerretDB: schedules, check-ins, confidentiality.

The service runs in-process with a fixed clock the test moves through the calendar; goals
events are published the way the goals service publishes them.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from coaching_feedback.app import create_app
from coaching_feedback.clock import FixedClock
from coaching_feedback.settings import FeedbackSettings
from coaching_shared.contracts import (
    ClientEnrolled,
    ClientOffboarded,
    CoachContact,
    Direction,
    GoalAchieved,
    GoalSet,
    KpiSpec,
)
from support.inprocess import bearer, running_service, service_settings
from support.kafka_tools import TopicReader, eventually, headers_of, publish_events

pytestmark = pytest.mark.integration

TENANT = "acme"
# Wednesday 3 June 2026, 12:00 UTC; weekly Monday 09:00 check-ins in Berlin (07:00 UTC).
MONDAY_JUNE_8 = datetime(2026, 6, 8, 7, tzinfo=UTC)


def feedback_settings(infra, prefix, **overrides) -> FeedbackSettings:
    values = {"scheduler_interval_seconds": 0.2, "scheduler_lease_seconds": 3, **overrides}
    return service_settings(FeedbackSettings, infra, prefix, **values)


def enrolment(client_id: str, coach_id: str = "coach-1") -> ClientEnrolled:
    return ClientEnrolled(
        tenant_id=TENANT, client_id=client_id, program_id="leaders", display_name="Ada",
        email=f"{client_id}@example.com", timezone="Europe/Berlin",
        coach=CoachContact(coach_id=coach_id, display_name="Grace", email="g@example.com"))


def goal_set(client_id: str, goal_id: str) -> GoalSet:
    return GoalSet(tenant_id=TENANT, client_id=client_id, goal_id=goal_id,
                   title="Lead weekly team retrospectives", start_date=date(2026, 6, 1),
                   due_date=date(2026, 12, 1), kpis=[KpiSpec(
                       kpi_id="retros", name="Retrospectives held", baseline=0, target=20,
                       direction=Direction.UP)])


def events_of(records, ce_type: str) -> list[dict]:
    return [json.loads(r.value) for r in records
            if headers_of(r)["ce_type"] == f"coaching.{ce_type}.v1"]


async def json_when_ok(client, url: str, headers: dict[str, str]):
    response = await client.get(url, headers=headers)
    return response.json() if response.status_code == 200 else None


async def test_a_check_in_falls_due_is_submitted_once_and_stays_confidential(infra, prefix):
    clock = FixedClock(datetime(2026, 6, 3, 12, tzinfo=UTC))
    settings = feedback_settings(infra, prefix)
    client_token = bearer(TENANT, "c-1", "client")
    coach_token = bearer(TENANT, "coach-1", "coach")
    async with running_service(lambda s: create_app(s, clock), settings) as client, \
            TopicReader(infra.kafka_bootstrap_servers, f"{prefix}coaching.feedback") as topic:
        await publish_events(infra.kafka_bootstrap_servers, prefix, [enrolment("c-1")])
        await publish_events(infra.kafka_bootstrap_servers, prefix, [goal_set("c-1", "g-1")],
                             source="/coaching/goals")
        schedule = await eventually(lambda: json_when_ok(client, "/v1/goals/g-1/schedule",
                                                         client_token))
        assert schedule["plan"]["timezone"] == "Europe/Berlin"
        assert schedule["next_due_at"].startswith("2026-06-08T07:00")
        assert schedule["next_period"] == 1 and schedule["coach_id"] == "coach-1"

        clock.set(MONDAY_JUNE_8 + timedelta(minutes=5))
        await topic.until(lambda records: events_of(records, "CheckInDue"))
        due = events_of(topic.records, "CheckInDue")[0]
        assert (due["goal_id"], due["period"], due["coach_id"]) == ("g-1", 1, "coach-1")

        checkin_url = f"/v1/checkins/{due['checkin_id']}"
        opened = await eventually(lambda: json_when_ok(client, checkin_url, client_token))
        assert opened["status"] == "open"
        assert [p["prompt_id"] for p in opened["prompts"]] and all(
            p["prompt_id"].startswith("first-") for p in opened["prompts"])

        submission = {"confidence": 4, "kpi_readings": [{"kpi_id": "retros", "value": 2}],
                      "progress_notes": "Ran the first two retros.", "blockers": ["time"],
                      "wins": ["team spoke up"], "reflections": [
                          {"prompt_id": opened["prompts"][0]["prompt_id"],
                           "answer": "It matters because my team is new."},
                          {"prompt_id": "regular-next", "answer": "Book the next one.",
                           "shared_with": ["mentor-1"]}]}
        retry_key = {"Idempotency-Key": "submit-1"}
        first = await client.post(f"{checkin_url}/submission", json=submission,
                                  headers={**client_token, **retry_key})
        again = await client.post(f"{checkin_url}/submission", json=submission,
                                  headers={**client_token, **retry_key})
        assert first.status_code == 201, first.text
        assert again.status_code == 201 and again.json()["status"] == "completed"
        assert len(again.json()["reflections"]) == 2
        other = await client.post(f"{checkin_url}/submission", json=submission,
                                  headers={**client_token, "Idempotency-Key": "other"})
        assert other.status_code == 409
        by_coach = await client.post(f"{checkin_url}/submission", json=submission,
                                     headers=coach_token)
        assert by_coach.status_code == 403

        await topic.until(lambda records: events_of(records, "CheckInCompleted"))
        await topic.settle(1.5)
        completed = events_of(topic.records, "CheckInCompleted")
        assert len(completed) == 1
        assert completed[0]["kpi_readings"][0]["kpi_id"] == "retros"
        assert completed[0]["kpi_readings"][0]["value"] == 2
        assert completed[0]["late"] is False and completed[0]["confidence"] == 4
        # Confidential content never travels in events.
        raw = b"".join(r.value for r in topic.records)
        assert b"first two retros" not in raw and b"my team is new" not in raw

        # Who may read the check-in and its reflections.
        reflections = first.json()["reflections"]
        private = next(r for r in reflections if not r["shared_with"])
        shared = next(r for r in reflections if r["shared_with"])
        readers = {"client": client_token, "their coach": coach_token}
        strangers = {"another coach": bearer(TENANT, "coach-2", "coach"),
                     "admin": bearer(TENANT, "admin-1", "admin"),
                     "another tenant's coach": bearer("globex", "coach-1", "coach"),
                     "another client": bearer(TENANT, "c-2", "client")}
        for name, token in readers.items():
            for url in (checkin_url, f"/v1/reflections/{private['reflection_id']}",
                        "/v1/clients/c-1/reflections"):
                assert (await client.get(url, headers=token)).status_code == 200, (name, url)
        for name, token in strangers.items():
            for url in (checkin_url, f"/v1/reflections/{private['reflection_id']}",
                        f"/v1/reflections/{shared['reflection_id']}",
                        "/v1/clients/c-1/reflections", "/v1/clients/c-1/checkins"):
                assert (await client.get(url, headers=token)).status_code == 404, (name, url)
        # The same person id in another tenant is another person, with nothing here.
        namesake = bearer("globex", "c-1", "client")
        assert (await client.get(checkin_url, headers=namesake)).status_code == 404
        assert (await client.get("/v1/clients/c-1/reflections", headers=namesake)).json() == []
        mentor = bearer(TENANT, "mentor-1", "coach")
        assert (await client.get(f"/v1/reflections/{shared['reflection_id']}",
                                 headers=mentor)).status_code == 200
        assert (await client.get(f"/v1/reflections/{private['reflection_id']}",
                                 headers=mentor)).status_code == 404
        # The client can take a share back.
        unshare = await client.put(f"/v1/reflections/{shared['reflection_id']}/sharing",
                                   json={"shared_with": []}, headers=client_token)
        assert unshare.status_code == 200
        assert (await client.get(f"/v1/reflections/{shared['reflection_id']}",
                                 headers=mentor)).status_code == 404

        # Coach feedback on the check-in: FeedbackGiven without the text.
        feedback = await client.post(f"{checkin_url}/feedback", json={"text": "Great start!"},
                                     headers={**coach_token, "Idempotency-Key": "fb-1"})
        assert feedback.status_code == 201, feedback.text
        stranger_feedback = await client.post(f"{checkin_url}/feedback", json={"text": "Hi"},
                                              headers=bearer(TENANT, "coach-2", "coach"))
        assert stranger_feedback.status_code == 404
        await topic.until(lambda records: events_of(records, "FeedbackGiven"))
        given = events_of(topic.records, "FeedbackGiven")
        assert given[0]["subject_kind"] == "check_in" and "Great" not in json.dumps(given)
        seen = await client.get("/v1/clients/c-1/feedback", headers=client_token)
        assert [f["text"] for f in seen.json()] == ["Great start!"]

        # Admins see aggregates only.
        metrics = await client.get("/v1/program-metrics", headers=bearer(TENANT, "a", "admin"))
        assert metrics.json()["checkins"]["completed"] == 1
        assert metrics.json()["clients_engaged_this_month"] == 1
        assert "c-1" not in metrics.text
        assert (await client.get("/v1/program-metrics", headers=coach_token)).status_code == 403


async def test_a_goal_handled_before_its_clients_enrolment_gets_the_coach_later(infra,
                                                                                 prefix):
    """Goals and enrolments travel on different streams: either may be handled first."""
    clock = FixedClock(datetime(2026, 6, 3, 12, tzinfo=UTC))
    client_token = bearer(TENANT, "c-1", "client")
    async with running_service(lambda s: create_app(s, clock),
                               feedback_settings(infra, prefix)) as client:
        await publish_events(infra.kafka_bootstrap_servers, prefix, [goal_set("c-1", "g-1")],
                             source="/coaching/goals")
        planned = await eventually(lambda: json_when_ok(client, "/v1/goals/g-1/schedule",
                                                        client_token))
        assert planned["coach_id"] is None and planned["plan"]["timezone"] == "UTC"
        await publish_events(infra.kafka_bootstrap_servers, prefix, [enrolment("c-1")])

        async def adopted():
            schedule = await json_when_ok(client, "/v1/goals/g-1/schedule", client_token)
            return schedule if schedule and schedule["coach_id"] else None
        schedule = await eventually(adopted)
        assert schedule["coach_id"] == "coach-1"
        assert schedule["plan"]["timezone"] == "Europe/Berlin"


async def test_an_unanswered_check_in_is_missed_after_the_grace_period(infra, prefix):
    clock = FixedClock(datetime(2026, 6, 3, 12, tzinfo=UTC))
    settings = feedback_settings(infra, prefix, review_every_checkins=2)
    client_token = bearer(TENANT, "c-1", "client")
    async with running_service(lambda s: create_app(s, clock), settings) as client, \
            TopicReader(infra.kafka_bootstrap_servers, f"{prefix}coaching.feedback") as topic:
        await publish_events(infra.kafka_bootstrap_servers, prefix,
                             [enrolment("c-1"), goal_set("c-1", "g-1")])
        await eventually(lambda: json_when_ok(client, "/v1/goals/g-1/schedule", client_token))
        clock.set(MONDAY_JUNE_8 + timedelta(minutes=1))
        await topic.until(lambda records: events_of(records, "CheckInDue"))
        checkin_id = events_of(topic.records, "CheckInDue")[0]["checkin_id"]
        await eventually(lambda: json_when_ok(client, f"/v1/checkins/{checkin_id}",
                                              client_token))
        # Three days of grace: just before the end it is still open (and late) ...
        clock.set(MONDAY_JUNE_8 + timedelta(hours=71))
        await topic.settle(1.5)
        assert not events_of(topic.records, "CheckInMissed")
        # ... after it, the check-in is missed and no longer accepted.
        clock.set(MONDAY_JUNE_8 + timedelta(hours=72, minutes=1))
        await topic.until(lambda records: events_of(records, "CheckInMissed"))
        late = await client.post(f"/v1/checkins/{checkin_id}/submission",
                                 json={"confidence": 3}, headers=client_token)
        assert late.status_code == 409
        # The next one is missed too: two in a row put the client at risk, and after two
        # settled check-ins a progress review is computed.
        clock.set(datetime(2026, 6, 15, 7, 1, tzinfo=UTC))
        await topic.until(lambda records: len(events_of(records, "CheckInDue")) == 2)
        clock.set(datetime(2026, 6, 19, tzinfo=UTC))
        records = await topic.until(lambda records: events_of(records, "ClientAtRisk")
                                    and events_of(records, "ProgressReviewed"))
        await topic.settle(1.5)
        signals = await client.get("/v1/clients/c-1/risk-signals",
                                   headers=bearer(TENANT, "coach-1", "coach"))
        assert signals.json()[0]["reasons"] == ["missed_twice"]
        reviews = await client.get("/v1/clients/c-1/reviews", headers=client_token)
        review_id = reviews.json()[0]["review_id"]
        noted = await client.put(f"/v1/reviews/{review_id}/notes", json={"notes": "Talk."},
                                 headers=bearer(TENANT, "coach-1", "coach"))
        assert noted.status_code == 200 and noted.json()["coach_notes"] == "Talk."
        by_client = await client.put(f"/v1/reviews/{review_id}/notes", json={"notes": "x"},
                                     headers=client_token)
        assert by_client.status_code == 403
    missed = events_of(topic.records, "CheckInMissed")
    assert sorted(m["period"] for m in missed) == [1, 2]
    at_risk = events_of(records, "ClientAtRisk")
    assert at_risk[0]["reasons"] == ["missed_twice"] and at_risk[0]["coach_id"] == "coach-1"
    review = events_of(records, "ProgressReviewed")[0]
    assert review["adherence"] == 0 and review["checkins_due"] == 2


async def test_achieved_goals_and_offboarded_clients_get_no_more_check_ins(infra, prefix,
                                                                           mongo):
    clock = FixedClock(datetime(2026, 6, 3, 12, tzinfo=UTC))
    settings = feedback_settings(infra, prefix)
    async with running_service(lambda s: create_app(s, clock), settings) as client, \
            TopicReader(infra.kafka_bootstrap_servers, f"{prefix}coaching.feedback") as topic:
        await publish_events(infra.kafka_bootstrap_servers, prefix, [
            enrolment("c-1"), enrolment("c-2"), enrolment("c-3"),
            goal_set("c-1", "g-1"), goal_set("c-2", "g-2"), goal_set("c-3", "g-3")])
        for client_id in ("c-1", "c-2", "c-3"):
            await eventually(lambda c=client_id: json_when_ok(
                client, f"/v1/clients/{c}/schedules", bearer(TENANT, c, "client")))
        await publish_events(infra.kafka_bootstrap_servers, prefix, [
            GoalAchieved(tenant_id=TENANT, client_id="c-1", goal_id="g-1",
                         achieved_at=datetime(2026, 6, 4, tzinfo=UTC)),
            ClientOffboarded(tenant_id=TENANT, client_id="c-2")])
        db = mongo[settings.database_name]

        async def ended_and_erased():
            ended = await db.checkin_schedules.find_one({"goal_id": "g-1", "status": "ended"})
            erased = await db.checkin_schedules.find_one({"client_id": "c-2"}) is None
            return ended is not None and erased

        await eventually(ended_and_erased)
        # A GoalSet replayed after the offboarding does not bring the schedule back.
        await publish_events(infra.kafka_bootstrap_servers, prefix, [goal_set("c-2", "g-2")])
        clock.set(datetime(2026, 7, 1, tzinfo=UTC))
        await topic.until(lambda records: len(events_of(records, "CheckInDue")) >= 4)
        await topic.settle(2)
    due = events_of(topic.records, "CheckInDue")
    assert {d["client_id"] for d in due} == {"c-3"}
    assert sorted(d["period"] for d in due) == [1, 2, 3, 4]
    assert await db.checkin_schedules.find_one({"client_id": "c-2"}) is None
