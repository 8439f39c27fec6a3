"""The notifier plans a consumed batch together and still notifies each person once.

Enrolments and completed assessments of many clients are published before the notifier
starts, so they arrive in one fetched batch and are planned in waves (contacts, preferences,
defaults, templates and subscriptions read once per wave, the wave's deliveries inserted
together). A duplicated event, a client with two events, coaches named in several
enrolments and an event held for an enrolment that comes later must all end in exactly one
delivery, one e-mail, one webhook call and one `NotificationSent` per notification.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from coaching_notifier.app import create_app
from coaching_notifier.domain import new_webhook_secret
from coaching_notifier.handlers import NotifierHandlers
from coaching_notifier.repository import AWAITING_CONTACT, CONTACTS, DELIVERIES, NotifierRepository
from coaching_notifier.sinks import SmtpSink, WebhookSink
from coaching_shared.contracts import AssessmentCompleted
from coaching_shared.contracts.assessment import ScaleScore
from coaching_shared.events import EventMessage, topic_name
from support.inprocess import running_service
from support.kafka_tools import TopicReader, eventually, headers_of, publish_events
from test_notifier import TENANT, checkin_due, enrolment, notifier_settings

pytestmark = pytest.mark.integration

CLIENTS = [f"c-{number:02d}" for number in range(24)]
COACHES = 3  # each coach is named in eight enrolments of the batch


def completed(client_id: str) -> AssessmentCompleted:
    scores = [ScaleScore(scale_id="writing", label="Writing", minimum=1, maximum=5, score=3.5)]
    return AssessmentCompleted(
        tenant_id=TENANT, client_id=client_id, assessment_id=f"asm-{client_id}",
        instrument_id="skills", instrument_version=1, instrument_title="Skills",
        completed_at=datetime(2026, 11, 20, 9, 0, tzinfo=UTC), scores=scores,
        strengths=["writing"], development_areas=["writing"])


async def test_a_batch_of_enrolments_and_assessments_is_notified_once_each(
        infra, prefix, mongo, monkeypatch):
    smtp = SmtpSink().start()
    receiver = await WebhookSink().start()
    settings = notifier_settings(infra, prefix, smtp)
    db = mongo[settings.mongodb_database]
    # A subscription that exists before the batch comes (created as the API creates it).
    now = datetime.now(UTC)
    await NotifierRepository(db).create_webhook(TENANT, "wh-1", "subscribe-1", {
        "url": receiver.url, "event_types": ["AssessmentCompleted"], "description": "",
        "created_at": now, "created_by": "test",
        "secrets": [{"secret": new_webhook_secret(), "created_at": now, "retires_at": None}]})
    enrolments = [enrolment(client, coach_id=f"coach-{n % COACHES}")
                  for n, client in enumerate(CLIENTS)]
    sent = await publish_events(infra.kafka_bootstrap_servers, prefix, enrolments,
                                ids=[f"enrol-{client}" for client in CLIENTS])
    # Every client's assessment, one of them twice (same id); c-00 also has a check-in due;
    # c-late's assessment comes before its enrolment, which is published only later.
    others = [completed(client) for client in [*CLIENTS, "c-late"]] + [
        completed("c-01"), checkin_due("c-00")]
    other_ids = [f"asm-{client}" for client in [*CLIENTS, "c-late"]] + ["asm-c-01", "due-c-00"]
    sent += await publish_events(infra.kafka_bootstrap_servers, prefix, others, ids=other_ids)

    waves: list[int] = []
    notify_together = NotifierHandlers.notify_together

    async def counting(self, items):
        waves.append(len(items))
        await notify_together(self, items)

    monkeypatch.setattr(NotifierHandlers, "notify_together", counting)
    # (cause, recipient, channel) of every notification the events must give
    expected = {(f"enrol-{c}", c, channel) for c in [*CLIENTS, "c-late"]
                for channel in ("email", "inbox")}
    expected |= {(f"asm-{c}", c, channel) for c in [*CLIENTS, "c-late"]
                 for channel in ("email", "inbox")}
    expected |= {(f"asm-{c}", "wh-1", "webhook") for c in [*CLIENTS, "c-late"]}
    expected |= {("due-c-00", "c-00", "email"), ("due-c-00", "c-00", "inbox")}
    try:
        async with running_service(create_app, settings):
            async def held_late():
                return await db[AWAITING_CONTACT].find_one({"client_id": "c-late"})

            await eventually(held_late, timeout=60)
            sent += await publish_events(infra.kafka_bootstrap_servers, prefix,
                                         [enrolment("c-late", coach_id="coach-0")],
                                         ids=["enrol-c-late"])

            async def all_sent():
                found = await db[DELIVERIES].find(
                    {}, {"cause_event_id": 1, "recipient_id": 1, "channel": 1, "status": 1,
                         "notification_id": 1}).to_list()
                done = [d for d in found if d["status"] == "sent"]
                return found if len(done) >= len(expected) else None

            log = await eventually(all_sent, timeout=120)
            async with TopicReader(infra.kafka_bootstrap_servers,
                                   topic_name("notifier", prefix)) as reader:
                await reader.until(lambda r: len(_sent_ids(r)) >= len(expected), timeout=60)
                records = await reader.settle(2.0)
            held_after = await db[AWAITING_CONTACT].count_documents({})
            contacts = {d["person_id"]: d for d in await db[CONTACTS].find().to_list()}
    finally:
        await receiver.stop()
        smtp.stop()

    keys = Counter((d["cause_event_id"], d["recipient_id"], d["channel"]) for d in log)
    assert set(keys) == expected and set(keys.values()) == {1}
    assert all(d["status"] == "sent" for d in log)
    # One e-mail per client and event type, one accepted call per assessment.
    for client_id in [*CLIENTS, "c-late"]:
        assert len(smtp.to(f"{client_id}@example.com", "ClientEnrolled")) == 1
        assert len(smtp.to(f"{client_id}@example.com", "AssessmentCompleted")) == 1
    assert len(smtp.to("c-00@example.com", "CheckInDue")) == 1
    bodies = Counter(call.body for call in receiver.accepted)
    assert len(bodies) == len(CLIENTS) + 1 and set(bodies.values()) == {1}
    assert len(receiver.calls) == len(receiver.accepted)
    # Each outgoing event once per notification.
    assert _sent_ids(records) == {d["notification_id"] for d in log}
    assert held_after == 0
    # Contacts: one per person; each coach's records every enrolment naming it, once.
    assert set(contacts) == {*CLIENTS, "c-late", *(f"coach-{n}" for n in range(COACHES))}
    coach_causes = contacts["coach-0"]["applied_events"]
    assert sorted(coach_causes) == sorted(
        [f"enrol-{c}" for n, c in enumerate(CLIENTS) if n % COACHES == 0] + ["enrol-c-late"])
    assert contacts["c-05"]["email"] == "c-05@example.com"
    assert contacts["c-05"]["client_id"] == "c-05"
    assert "client_id" not in contacts["coach-1"]
    # The batch was planned together, not event by event.
    assert max(waves) > 1


def _sent_ids(records) -> set[str]:
    found = set()
    for record in records:
        headers = headers_of(record)
        if headers["ce_type"] == "coaching.NotificationSent.v1":
            found.add(EventMessage.from_kafka(headers, record.value, "notifier").data[
                "notification_id"])
    return found

