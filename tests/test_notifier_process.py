"""The notifier as a process, killed while a webhook call is in flight, then restarted.

A `CheckInDue` must still reach the SMTP server once and the webhook receiver with exactly
one accepted call, even though the event is delivered again after the restart.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from coaching_notifier.sinks import HANG, SmtpSink, WebhookSink
from coaching_shared.events import EventMessage, topic_name
from support.inprocess import bearer
from support.kafka_tools import TopicReader, eventually, headers_of, publish_events
from support.processes import ServiceProcess
from test_notifier import TENANT, _async, checkin_due, enrolment, receiver_verifier

pytestmark = pytest.mark.integration

INTEGRATION = bearer(TENANT, "hr-system", "integration")


def notifier_process(infra, prefix: str, smtp: SmtpSink, logs) -> ServiceProcess:
    return ServiceProcess("notifier", {
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
        "MONGODB_URL": infra.mongodb_url, "TOPIC_PREFIX": prefix,
        "MONGODB_DATABASE": f"{prefix.rstrip('.')}_notifier", "SMTP_PORT": str(smtp.port),
        "SMTP_TIMEOUT_SECONDS": "5", "WEBHOOK_TIMEOUT_SECONDS": "8",
        "DELIVERY_LEASE_SECONDS": "10", "DELIVERY_BACKOFF_SECONDS": "0.2",
        "DISPATCHER_POLL_SECONDS": "0.2", "OUTBOX_SWEEP_SECONDS": "0.5"}, logs)


async def test_killed_mid_delivery_and_redelivered_still_delivers_once(
        infra, prefix, tmp_path):
    verify = receiver_verifier()
    smtp = SmtpSink().start()
    receiver = await WebhookSink(script=[HANG]).start()
    first = notifier_process(infra, prefix, smtp, tmp_path)
    second = notifier_process(infra, prefix, smtp, tmp_path)
    try:
        first.start()
        await asyncio.to_thread(first.wait_ready)
        async with httpx.AsyncClient(base_url=first.url, headers=INTEGRATION) as http:
            await publish_events(infra.kafka_bootstrap_servers, prefix, [enrolment("c-1")])

            async def enrolled():
                return (await http.get("/v1/people/c-1/contact")).status_code == 200

            await eventually(enrolled)
            hook = (await http.post("/v1/webhooks", json={
                "url": receiver.url, "event_types": ["CheckInDue"]})).json()
        await publish_events(infra.kafka_bootstrap_servers, prefix, [checkin_due("c-1")],
                             ids=["due-k"])

        async def mid_delivery():
            return (smtp.to("c-1@example.com", "CheckInDue") and len(receiver.calls) == 1
                    and receiver.calls[0].status is None)

        await eventually(mid_delivery)
        first.kill()  # SIGKILL while the webhook call hangs: its lease stays behind

        second.start()
        await asyncio.to_thread(second.wait_ready)
        # The same event again, as a consumer group rebalance or a replay delivers it.
        await publish_events(infra.kafka_bootstrap_servers, prefix, [checkin_due("c-1")],
                             ids=["due-k"])
        await eventually(lambda: _async(len(receiver.accepted) == 1), timeout=60)
        async with httpx.AsyncClient(base_url=second.url, headers=INTEGRATION) as http:
            async def all_sent():
                log = (await http.get("/v1/deliveries",
                                      params={"cause_event_id": "due-k"})).json()
                return log if len(log) == 3 and all(d["status"] == "sent" for d in log) else None

            log = await eventually(all_sent)
        async with TopicReader(infra.kafka_bootstrap_servers,
                               topic_name("notifier", prefix)) as reader:
            await reader.until(lambda r: len(_sent_for(r, "due-k")) >= 3)
            records = await reader.settle(2.0)  # any duplicate delivery would show by now
    finally:
        first.kill()
        second.stop()
        await receiver.stop()
        smtp.stop()

    assert len(smtp.to("c-1@example.com", "CheckInDue")) == 1
    assert [c.status for c in receiver.calls] == [None, 200]
    assert len({c.headers["coaching-webhook-id"] for c in receiver.calls}) == 1
    assert verify(hook["secret"], receiver.accepted[0].headers, receiver.accepted[0].body)
    webhook = next(d for d in log if d["channel"] == "webhook")
    assert webhook["attempts"] == 2  # the killed attempt counts
    assert [a["outcome"] for a in webhook["attempt_log"]] == ["sent"]
    sent = _sent_for(records, "due-k")
    assert sorted(m.data["channel"] for m in sent) == ["email", "inbox", "webhook"]


def _sent_for(records, cause_id: str) -> list[EventMessage]:
    """NotificationSent events for a cause, one per event id (the relay may repeat one)."""
    found = {}
    for record in records:
        headers = headers_of(record)
        if headers["ce_type"] == "coaching.NotificationSent.v1":
            message = EventMessage.from_kafka(headers, record.value, "notifier")
            if message.data["cause_event_id"] == cause_id:
                found[message.id] = message
    return list(found.values())
