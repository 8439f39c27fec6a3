"""Progress reviews each month and on request, and ClientAtRisk only on becoming at risk,
through real Kafka and FerretDB with the calendar driven by a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from coaching_feedback.app import create_app
from coaching_feedback.clock import FixedClock
from support.inprocess import bearer, running_service
from support.kafka_tools import TopicReader, eventually, publish_events
from test_feedback_checkins import (
    TENANT,
    enrolment,
    events_of,
    feedback_settings,
    goal_set,
    json_when_ok,
)

pytestmark = pytest.mark.integration

CLIENT = bearer(TENANT, "c-1", "client")
COACH = bearer(TENANT, "coach-1", "coach")


def at(month: int, day: int, hour: int = 7, minute: int = 5) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


async def test_monthly_and_requested_reviews_and_one_at_risk_signal_per_standing(infra,
                                                                                 prefix):
    clock = FixedClock(datetime(2026, 6, 3, 12, tzinfo=UTC))
    # Only the monthly and requested reviews here, not every N check-ins.
    settings = feedback_settings(infra, prefix, review_every_checkins=0)
    async with running_service(lambda s: create_app(s, clock), settings) as client, \
            TopicReader(infra.kafka_bootstrap_servers, f"{prefix}coaching.feedback") as topic:

        async def count(ce_type: str, expected: int) -> None:
            await topic.until(lambda records: len(events_of(records, ce_type)) >= expected)

        await publish_events(infra.kafka_bootstrap_servers, prefix,
                             [enrolment("c-1"), enrolment("c-2", coach_id="coach-2")])
        await publish_events(infra.kafka_bootstrap_servers, prefix, [goal_set("c-1", "g-1")],
                             source="/coaching/goals")
        schedule = await eventually(lambda: json_when_ok(client, "/v1/goals/g-1/schedule",
                                                         CLIENT))
        # 1 July, midnight in Berlin.
        assert schedule["next_review_at"].startswith("2026-06-30T22:00")

        # Weekly Monday check-ins: the first is completed, the next three are missed.
        clock.set(at(6, 8))
        await count("CheckInDue", 1)
        checkin_id = events_of(topic.records, "CheckInDue")[0]["checkin_id"]
        await eventually(lambda: json_when_ok(client, f"/v1/checkins/{checkin_id}", CLIENT))
        submitted = await client.post(f"/v1/checkins/{checkin_id}/submission",
                                      json={"confidence": 4}, headers=CLIENT)
        assert submitted.status_code == 201, submitted.text
        for missed, (month, day) in enumerate([(6, 15), (6, 22)], start=1):
            clock.set(at(month, day))
            await count("CheckInDue", missed + 1)
            clock.set(at(month, day + 3, 8))
            await count("CheckInMissed", missed)
        # Two misses in a row: the coach hears it once.
        await count("ClientAtRisk", 1)
        clock.set(at(6, 29))
        await count("CheckInDue", 4)

        # The month ends in Berlin: June's settled check-ins (the 29th is still in its grace
        # period) are reviewed.
        clock.set(datetime(2026, 6, 30, 22, 1, tzinfo=UTC))
        await count("ProgressReviewed", 1)
        monthly = events_of(topic.records, "ProgressReviewed")[0]
        assert monthly["trigger"] == "monthly"
        assert (monthly["checkins_due"], monthly["checkins_completed"]) == (3, 1)
        assert monthly["period_start"].startswith("2026-06-08")

        # A third miss: the same standing reason, so no second ClientAtRisk.
        clock.set(at(7, 2, 8))
        await count("CheckInMissed", 3)
        signals = await eventually(lambda: _signals_after_period(client, 4))
        assert signals[0]["reasons"] == ["missed_twice"]

        # The coach asks for a review now: it covers what settled since the monthly one.
        strangers = {"another coach": bearer(TENANT, "coach-2", "coach"),
                     "another tenant's coach": bearer("globex", "coach-1", "coach")}
        for name, token in strangers.items():
            denied = await client.post("/v1/goals/g-1/reviews", headers=token)
            assert denied.status_code == 404, name
        assert (await client.post("/v1/goals/g-1/reviews", headers=CLIENT)).status_code == 403
        requested = await client.post("/v1/goals/g-1/reviews",
                                      headers={**COACH, "Idempotency-Key": "review-1"})
        assert requested.status_code == 201, requested.text
        assert requested.json()["trigger"] == "on_request"
        assert (requested.json()["from_period"], requested.json()["to_period"]) == (4, 4)
        retried = await client.post("/v1/goals/g-1/reviews",
                                    headers={**COACH, "Idempotency-Key": "review-1"})
        assert retried.json()["review_id"] == requested.json()["review_id"]
        nothing_new = await client.post("/v1/goals/g-1/reviews",
                                        headers={**COACH, "Idempotency-Key": "review-2"})
        assert nothing_new.status_code == 409

        await count("ProgressReviewed", 2)
        await topic.settle(1.5)
    reviews = events_of(topic.records, "ProgressReviewed")
    assert [r["trigger"] for r in reviews] == ["monthly", "on_request"]
    assert len(events_of(topic.records, "ClientAtRisk")) == 1


async def _signals_after_period(client, period: int):
    """The risk signals once the check-in of `period` has been evaluated for risk."""
    schedule = await json_when_ok(client, "/v1/goals/g-1/schedule", CLIENT)
    if not schedule or schedule.get("risk_period") != period:
        return None
    return (await client.get("/v1/clients/c-1/risk-signals", headers=COACH)).json()
