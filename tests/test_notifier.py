"""The notifier against real Kafka, FerretDB, a real SMTP server and a real webhook receiver.

Events of the other streams are published here as their services would publish them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from coaching_notifier.app import create_app
from coaching_notifier.settings import NotifierSettings
from coaching_notifier.sinks import HANG, SmtpSink, WebhookSink
from coaching_shared.contracts import (
    CheckInDue,
    ClientAtRisk,
    ClientEnrolled,
    ClientOffboarded,
    CoachContact,
)
from coaching_shared.events import EventMessage, topic_name
from support.inprocess import bearer, running_service, service_settings
from support.kafka_tools import TopicReader, eventually, headers_of, publish_events
from support.webhooks import NOTIFIER_README as README
from support.webhooks import receiver_verifier

pytestmark = pytest.mark.integration

TENANT = "acme"
INTEGRATION = bearer(TENANT, "hr-system", "integration")
ADMIN = bearer(TENANT, "admin-1", "admin")


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
async def webhook_sink() -> AsyncIterator[WebhookSink]:
    sink = await WebhookSink().start()
    try:
        yield sink
    finally:
        await sink.stop()


def notifier_settings(infra, prefix, smtp: SmtpSink, **overrides) -> NotifierSettings:
    values = {"smtp_port": smtp.port, "delivery_backoff_seconds": 0.2,
              "delivery_backoff_max_seconds": 1.0, "dispatcher_poll_seconds": 0.2,
              "webhook_timeout_seconds": 3.0, "smtp_timeout_seconds": 3.0,
              "delivery_lease_seconds": 6.0,
              "delivery_max_attempts": 4, **overrides}
    return service_settings(NotifierSettings, infra, prefix, **values)


def enrolment(client_id: str, *, timezone: str = "Europe/Berlin", locale: str = "en",
              name: str = "Ada Lovelace", coach_id: str = "coach-1") -> ClientEnrolled:
    return ClientEnrolled(
        tenant_id=TENANT, client_id=client_id, program_id="leaders-2027", display_name=name,
        email=f"{client_id}@example.com", timezone=timezone, locale=locale,
        coach=CoachContact(coach_id=coach_id, display_name="Grace Coach",
                           email=f"{coach_id}@example.com", timezone="America/New_York"))


def checkin_due(client_id: str, period: int = 1) -> CheckInDue:
    due = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    return CheckInDue(tenant_id=TENANT, client_id=client_id, checkin_id=f"ci-{client_id}-{period}",
                      goal_id="g-1", period=period, due_at=due, respond_by=due + timedelta(days=2))


async def enrol(client, infra, prefix, *events: ClientEnrolled) -> None:
    """Publish enrolments and wait until the notifier handled them: it knows every contact
    and planned the welcome (the last step, so a webhook subscribed next is not matched)."""
    messages = await publish_events(infra.kafka_bootstrap_servers, prefix, list(events))
    for message in messages:
        async def known(person=message.subject, cause=message.id):
            response = await client.get(f"/v1/people/{person}/contact", headers=INTEGRATION)
            welcome = await client.get("/v1/deliveries", headers=INTEGRATION,
                                       params={"cause_event_id": cause})
            return response.status_code == 200 and welcome.json()
        await eventually(known)


async def subscribe(client, url: str, event_types: list[str]) -> dict:
    response = await client.post("/v1/webhooks", headers=INTEGRATION,
                                 json={"url": url, "event_types": event_types})
    assert response.status_code == 201, response.text
    return response.json()


async def deliveries(client, **criteria) -> list[dict]:
    response = await client.get("/v1/deliveries", headers=INTEGRATION, params=criteria)
    assert response.status_code == 200, response.text
    return response.json()


async def sent_webhook(client, cause_event_id: str) -> dict | None:
    """The webhook delivery of an event once it is sent, else None."""
    log = await deliveries(client, cause_event_id=cause_event_id)
    hooks = [d for d in log if d["channel"] == "webhook" and d["status"] == "sent"]
    return hooks[0] if hooks else None


async def test_checkin_due_reaches_smtp_and_webhook_once_despite_redelivery(
        infra, prefix, smtp, webhook_sink):
    verify = receiver_verifier()
    settings = notifier_settings(infra, prefix, smtp)
    async with running_service(create_app, settings) as client:
        await enrol(client, infra, prefix, enrolment("c-1"))
        hook = await subscribe(client, webhook_sink.url, ["CheckInDue"])
        # The same event (same id) twice, as a producer retry or a replay delivers it.
        sent = await publish_events(infra.kafka_bootstrap_servers, prefix,
                                    [checkin_due("c-1"), checkin_due("c-1")],
                                    ids=["due-1", "due-1"])

        async def all_sent():
            log = await deliveries(client, cause_event_id="due-1")
            return log if len(log) == 3 and all(d["status"] == "sent" for d in log) else None

        log = await eventually(all_sent)
        async with TopicReader(infra.kafka_bootstrap_servers,
                               topic_name("notifier", prefix)) as reader:
            records = await reader.until(
                lambda r: sum(headers_of(x)["ce_type"] == "coaching.NotificationSent.v1"
                              and b"due-1" in x.value for x in r) >= 3)
            await reader.settle(1.0)  # let any duplicate show up
        inbox = (await client.get("/v1/inbox", headers=bearer(TENANT, "c-1", "client"))).json()

    mails = smtp.to("c-1@example.com", "CheckInDue")
    assert len(mails) == 1
    assert mails[0].message["Subject"] == "Time for your check-in"
    assert "Mon 30 Nov 2026, 09:00 (Europe/Berlin)" in mails[0].part("plain")
    assert "<p>Hello Ada Lovelace," in mails[0].part("html")
    assert len(webhook_sink.calls) == 1 and len(webhook_sink.accepted) == 1
    call = webhook_sink.accepted[0]
    assert verify(hook["secret"], call.headers, call.body)
    assert not verify("whsec_not-the-secret", call.headers, call.body)
    assert not verify(hook["secret"], call.headers, call.body.replace(b"c-1", b"c-2"))
    assert call.headers["content-type"] == "application/cloudevents+json"
    assert b'"id":"due-1"' in call.body and b'"type":"coaching.CheckInDue.v1"' in call.body
    assert sorted((d["channel"], d["attempts"]) for d in log) == [
        ("email", 1), ("inbox", 1), ("webhook", 1)]
    assert call.headers["coaching-webhook-id"] == next(
        d["notification_id"] for d in log if d["channel"] == "webhook")
    outcome = [r for r in records if b"due-1" in r.value]
    assert len({headers_of(r)["ce_id"] for r in outcome}) == len(outcome) == 3
    assert [item["title"] for item in inbox if item["event_type"] == "CheckInDue"] == [
        "Time for your check-in"]
    assert sent[0].id == "due-1"


async def test_receiver_failing_twice_gets_one_accepted_call_and_consumer_keeps_going(
        infra, prefix, smtp, webhook_sink):
    webhook_sink.then([500, HANG, 200])  # error, then a timeout, then success
    settings = notifier_settings(infra, prefix, smtp, webhook_timeout_seconds=3.0)
    async with running_service(create_app, settings) as client:
        await enrol(client, infra, prefix, enrolment("c-1"), enrolment("c-2"))
        await subscribe(client, webhook_sink.url, ["CheckInDue"])
        await publish_events(infra.kafka_bootstrap_servers, prefix, [checkin_due("c-1")],
                             ids=["due-c1"])

        async def hanging():
            return len(webhook_sink.calls) == 2 and webhook_sink.calls[1].status is None

        await eventually(hanging)
        # While the receiver hangs, the consumer goes on: a later event is delivered.
        await publish_events(infra.kafka_bootstrap_servers, prefix, [checkin_due("c-2")],
                             ids=["due-c2"])
        await eventually(lambda: _async(smtp.to("c-2@example.com", "CheckInDue")))
        still_hanging = webhook_sink.calls[1].status is None

        delivery = await eventually(lambda: sent_webhook(client, "due-c1"))

    assert still_hanging
    first_event_calls = [c for c in webhook_sink.calls if b"due-c1" in c.body]
    assert [c.status for c in first_event_calls] == [500, None, 200]
    assert len([c for c in webhook_sink.accepted if b"due-c1" in c.body]) == 1
    assert len({c.headers["coaching-webhook-id"] for c in first_event_calls}) == 1
    assert delivery["attempts"] == 3
    assert [(a["outcome"], a["detail"]) for a in delivery["attempt_log"]] == [
        ("pending", "HTTP 500"), ("pending", "receiver timed out"), ("sent", "HTTP 200")]


async def test_receiver_answering_500_twice_then_200_gets_exactly_one_accepted_call(
        infra, prefix, smtp, webhook_sink):
    webhook_sink.then([500, 500, 200])
    settings = notifier_settings(infra, prefix, smtp)
    async with running_service(create_app, settings) as client:
        await enrol(client, infra, prefix, enrolment("c-1"))
        await subscribe(client, webhook_sink.url, ["CheckInDue"])
        await publish_events(infra.kafka_bootstrap_servers, prefix, [checkin_due("c-1")],
                             ids=["due-c1"])

        delivery = await eventually(lambda: sent_webhook(client, "due-c1"))
    calls = [c for c in webhook_sink.calls if b"due-c1" in c.body]
    assert [c.status for c in calls] == [500, 500, 200]
    assert len([c for c in webhook_sink.accepted if b"due-c1" in c.body]) == 1
    assert len({c.headers["coaching-webhook-id"] for c in calls}) == 1
    assert delivery["attempts"] == 3


async def _async(value):
    return value


async def test_receiver_that_keeps_failing_is_dead_lettered_and_can_be_retried(
        infra, prefix, smtp, webhook_sink):
    webhook_sink.default_status = 503
    settings = notifier_settings(infra, prefix, smtp, delivery_max_attempts=3)
    async with running_service(create_app, settings) as client:
        await enrol(client, infra, prefix, enrolment("c-1"))
        await subscribe(client, webhook_sink.url, ["*"])
        await publish_events(infra.kafka_bootstrap_servers, prefix, [checkin_due("c-1")],
                             ids=["due-x"])
        async with TopicReader(infra.kafka_bootstrap_servers,
                               topic_name("notifier", prefix)) as reader:
            records = await reader.until(lambda r: any(
                headers_of(x)["ce_type"] == "coaching.NotificationFailed.v1" for x in r))
        failed = next(EventMessage.from_kafka(headers_of(r), r.value, "notifier")
                      for r in records
                      if headers_of(r)["ce_type"] == "coaching.NotificationFailed.v1")
        [delivery] = await deliveries(client, cause_event_id="due-x", status="failed")
        summary = (await client.get("/v1/deliveries/summary", headers=ADMIN)).json()

        webhook_sink.default_status = 204  # the receiver is fixed: replay the failure
        retried = await client.post(f"/v1/deliveries/{delivery['notification_id']}/retry",
                                    headers=INTEGRATION)

        async def resent():
            return await deliveries(client, cause_event_id="due-x", channel="webhook",
                                    status="sent")

        await eventually(resent)
        again = await client.post(f"/v1/deliveries/{delivery['notification_id']}/retry",
                                  headers=INTEGRATION)

    assert failed.data["reason"] == "HTTP 503"
    assert failed.data["attempts"] == 3 and failed.data["channel"] == "webhook"
    assert failed.data["cause_event_id"] == "due-x"
    assert [c.status for c in webhook_sink.calls] == [503, 503, 503, 204]
    assert summary["webhook"] == {"failed": 1}
    assert retried.status_code == 200
    assert again.status_code == 409  # sent now: nothing to retry


async def test_quiet_hours_defer_email_to_the_local_end_of_quiet_hours(
        infra, prefix, smtp, mongo):
    # 21:30 UTC is 22:30 in Berlin (winter time): inside 21:00-07:00.
    clock = MovableClock(datetime(2026, 11, 30, 21, 30, tzinfo=UTC))
    settings = notifier_settings(infra, prefix, smtp)
    client_headers = bearer(TENANT, "c-1", "client")
    async with running_service(lambda s: create_app(s, clock=clock), settings) as client:
        await enrol(client, infra, prefix, enrolment("c-1", timezone="Europe/Berlin"))
        response = await client.put("/v1/people/me/preferences", headers=client_headers,
                                    json={"quiet_hours": {"start": "21:00", "end": "07:00"}})
        assert response.status_code == 200, response.text
        await publish_events(infra.kafka_bootstrap_servers, prefix, [checkin_due("c-1")],
                             ids=["due-night"])

        async def inbox_filled():
            return (await client.get("/v1/inbox/unread-count",
                                     headers=client_headers)).json()["unread"] >= 2

        await eventually(inbox_filled)  # the welcome and the reminder: the inbox is silent
        [email] = await deliveries(client, cause_event_id="due-night", channel="email")
        clock.now = datetime(2026, 12, 1, 5, 59, tzinfo=UTC)  # 06:59 in Berlin
        before_end = await _settled_mails(smtp, "c-1@example.com")
        clock.now = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)  # 07:00 in Berlin
        await eventually(lambda: _async(smtp.to("c-1@example.com", "CheckInDue")))

        async def recorded():  # the outcome is written just after the SMTP server took it
            return await deliveries(client, cause_event_id="due-night", channel="email",
                                    status="sent")

        [sent] = await eventually(recorded)

    assert email["status"] == "pending"
    assert _utc(email["deferred_until"]) == datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    assert before_end == []
    assert sent["status"] == "sent"
    assert _utc(sent["sent_at"]) == datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


class MovableClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def _settled_mails(smtp: SmtpSink, address: str) -> list:
    """The reminders that arrived after the dispatcher had several rounds to send them."""
    await asyncio.sleep(1.5)
    return smtp.to(address, "CheckInDue")


def _utc(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def test_secret_rotation_signs_with_both_secrets_during_the_overlap(
        infra, prefix, smtp, webhook_sink):
    verify = receiver_verifier()
    settings = notifier_settings(infra, prefix, smtp)
    async with running_service(create_app, settings) as client:
        await enrol(client, infra, prefix, enrolment("c-1"))
        hook = await subscribe(client, webhook_sink.url, ["CheckInDue"])
        rotation = await client.post(f"/v1/webhooks/{hook['subscription_id']}/rotate-secret",
                                     headers=INTEGRATION, json={"overlap_hours": 1})
        assert rotation.status_code == 200, rotation.text
        await publish_events(infra.kafka_bootstrap_servers, prefix, [checkin_due("c-1", 1)])
        await eventually(lambda: _async(len(webhook_sink.accepted) == 1))
        ended = await client.post(f"/v1/webhooks/{hook['subscription_id']}/rotate-secret",
                                  headers=INTEGRATION, json={"overlap_hours": 0})
        await publish_events(infra.kafka_bootstrap_servers, prefix, [checkin_due("c-1", 2)])
        await eventually(lambda: _async(len(webhook_sink.accepted) == 2))
        listed = (await client.get("/v1/webhooks", headers=INTEGRATION)).json()

    old, new, newest = hook["secret"], rotation.json()["secret"], ended.json()["secret"]
    during, after = webhook_sink.accepted
    assert len(during.headers["coaching-webhook-signature"].split()) == 2
    assert verify(old, during.headers, during.body) and verify(new, during.headers, during.body)
    assert verify(newest, after.headers, after.body)
    assert not verify(new, after.headers, after.body)  # no overlap asked: retired at once
    assert ended.json()["previous_secret_valid_until"] is None
    assert listed == [{**{k: listed[0][k] for k in listed[0]}, "valid_secrets": 1}]
    assert "secret" not in listed[0] and "secrets" not in listed[0]


async def test_preferences_tenant_defaults_and_template_overrides(infra, prefix, smtp):
    settings = notifier_settings(infra, prefix, smtp)
    async with running_service(create_app, settings) as client:
        await enrol(client, infra, prefix,
                    enrolment("c-inbox"), enrolment("c-out"),
                    enrolment("c-de", locale="de-AT", name="<b>Jörg</b>"),
                    enrolment("c-tenant"))
        await client.put("/v1/people/me/preferences", headers=bearer(TENANT, "c-inbox", "client"),
                         json={"channels": {"CheckInDue": ["inbox"]}})
        await client.put("/v1/people/me/preferences", headers=bearer(TENANT, "c-out", "client"),
                         json={"opted_out": True})
        defaults = await client.put("/v1/notification-defaults", headers=ADMIN, json={
            "channels": {"CheckInDue": {"client": ["email"]}}})
        override = await client.put("/v1/templates/CheckInDue/de", headers=ADMIN, json={
            "subject": "Check-in {{ event.period }} für {{ recipient.name }}",
            "text": "Hallo {{ recipient.name }}, bitte bis {{ local(event.respond_by) }}."})
        broken = await client.put("/v1/templates/CheckInDue/en", headers=ADMIN,
                                  json={"subject": "{% if %}", "text": "x"})
        as_client = await client.put("/v1/notification-defaults",
                                     headers=bearer(TENANT, "c-de", "client"), json={})
        await publish_events(infra.kafka_bootstrap_servers, prefix,
                             [checkin_due(c) for c in ("c-inbox", "c-out", "c-de", "c-tenant")])

        async def planned():
            log = await deliveries(client, status="sent")
            return len([d for d in log if d["cause_type"] == "coaching.CheckInDue.v1"]) >= 3

        await eventually(planned)
        log = [d for d in await deliveries(client, limit=500)
               if d["cause_type"] == "coaching.CheckInDue.v1"]
        out_inbox = (await client.get("/v1/inbox",
                                      headers=bearer(TENANT, "c-out", "client"))).json()

    assert defaults.status_code == 200 and override.status_code == 200
    assert broken.status_code == 422 and "subject" in broken.json()["detail"]
    assert as_client.status_code == 403
    channels = {(d["recipient_id"], d["channel"]) for d in log}
    # c-inbox chose the inbox; the tenant's default is email only, which c-out opted out of.
    assert channels == {("c-inbox", "inbox"), ("c-de", "email"), ("c-tenant", "email")}
    assert "CheckInDue" not in [i["event_type"] for i in out_inbox]
    assert smtp.to("c-inbox@example.com", "CheckInDue") == []
    assert smtp.to("c-out@example.com", "CheckInDue") == []
    [german] = smtp.to("c-de@example.com", "CheckInDue")
    assert german.message["Subject"] == "Check-in 1 für <b>Jörg</b>"
    assert "bitte bis 02.12.2026 um 09:00 (Europe/Berlin)" in german.part("plain")
    html = german.part("html")
    assert "&lt;b&gt;Jörg&lt;/b&gt;" in html and "<b>Jörg</b>" not in html
    [welcome] = smtp.to("c-de@example.com", "ClientEnrolled")
    assert welcome.message["Subject"] == "Willkommen in Ihrem Coaching-Programm"


async def test_inbox_read_state_and_coach_alerts(infra, prefix, smtp):
    settings = notifier_settings(infra, prefix, smtp)
    coach = bearer(TENANT, "coach-1", "coach")
    async with running_service(create_app, settings) as client:
        await enrol(client, infra, prefix, enrolment("c-1"))
        await publish_events(infra.kafka_bootstrap_servers, prefix, [ClientAtRisk(
            tenant_id=TENANT, client_id="c-1", reasons=["missed_twice"],
            detected_at=datetime(2026, 11, 30, tzinfo=UTC))])

        async def coach_inbox():
            items = (await client.get("/v1/inbox", headers=coach)).json()
            return items if any(i["event_type"] == "ClientAtRisk" for i in items) else None

        items = await eventually(coach_inbox)
        alert = next(i for i in items if i["event_type"] == "ClientAtRisk")
        unread_before = (await client.get("/v1/inbox/unread-count", headers=coach)).json()
        read = await client.post(f"/v1/inbox/{alert['notification_id']}/read", headers=coach)
        stranger = await client.post(f"/v1/inbox/{alert['notification_id']}/read",
                                     headers=bearer(TENANT, "c-1", "client"))
        other_tenant = (await client.get("/v1/inbox",
                                         headers=bearer("globex", "coach-1", "coach"))).json()
        unread_only = (await client.get("/v1/inbox", headers=coach,
                                        params={"unread_only": "true"})).json()
        all_read = await client.post("/v1/inbox/read-all", headers=coach)

    [mail] = smtp.to("coach-1@example.com", "ClientAtRisk")
    assert mail.message["Subject"] == "Ada Lovelace may need your attention"
    assert "missed_twice" in mail.part("plain")
    assert alert["link"].endswith("/clients/c-1") and alert["read_at"] is None
    assert read.json()["unread"] == unread_before["unread"] - 1
    assert stranger.status_code == 404
    assert other_tenant == []
    assert alert["notification_id"] not in [i["notification_id"] for i in unread_only]
    assert all_read.json()["unread"] == 0


async def test_offboarding_erases_the_clients_notifications(infra, prefix, smtp, mongo):
    settings = notifier_settings(infra, prefix, smtp)
    async with running_service(create_app, settings) as client:
        await enrol(client, infra, prefix, enrolment("c-1"), enrolment("c-2"))
        await client.put("/v1/people/me/preferences", headers=bearer(TENANT, "c-1", "client"),
                         json={"locale": "de"})
        await publish_events(infra.kafka_bootstrap_servers, prefix,
                             [checkin_due("c-1"), checkin_due("c-2")])

        async def inboxes_filled():
            counts = [(await client.get("/v1/inbox/unread-count",
                                        headers=bearer(TENANT, c, "client"))).json()["unread"]
                      for c in ("c-1", "c-2")]
            return min(counts) >= 2

        await eventually(inboxes_filled)
        await publish_events(infra.kafka_bootstrap_servers, prefix,
                             [ClientOffboarded(tenant_id=TENANT, client_id="c-1")])

        async def erased():
            gone = await client.get("/v1/people/c-1/contact", headers=INTEGRATION)
            return gone.status_code == 404

        await eventually(erased)
        db = mongo[settings.database_name]
        left = {name: await db[name].count_documents({"client_id": "c-1"})
                for name in ("contacts", "preferences", "deliveries", "inbox")}
        others = await db["deliveries"].count_documents({"client_id": "c-2"})
        inbox = (await client.get("/v1/inbox", headers=bearer(TENANT, "c-1", "client"))).json()

    assert left == {"contacts": 0, "preferences": 0, "deliveries": 0, "inbox": 0}
    assert others > 0
    assert inbox == []


async def test_smtp_server_deferring_a_message_gets_it_once_on_retry(infra, prefix, smtp):
    settings = notifier_settings(infra, prefix, smtp)
    async with running_service(create_app, settings) as client:
        await enrol(client, infra, prefix, enrolment("c-1"))
        await eventually(lambda: _async(smtp.to("c-1@example.com", "ClientEnrolled")))
        smtp.refuse("451 4.3.0 Mailbox busy, try again later")
        await publish_events(infra.kafka_bootstrap_servers, prefix, [checkin_due("c-1")],
                             ids=["due-busy"])

        async def sent():
            found = await deliveries(client, cause_event_id="due-busy", channel="email",
                                     status="sent")
            return found[0] if found else None

        email = await eventually(sent)

    assert len(smtp.to("c-1@example.com", "CheckInDue")) == 1
    assert [(a["outcome"], a["detail"]) for a in email["attempt_log"]] == [
        ("pending", "SMTP 451"), ("sent", "accepted by SMTP server")]


def test_top_level_readme_shows_the_same_verification_snippet():
    snippet = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(0)
    assert snippet in (README.parents[2] / "README.md").read_text()
