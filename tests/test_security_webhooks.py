"""Webhook signatures, checked the way a receiver checks them.

A real notifier delivers a real event to a real HTTP receiver; the captured call is then put
through the verifier the notifier's README gives integrators (run from the README itself):
the genuine call passes, and every forgery or replay an attacker could try is refused.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from coaching_notifier.app import create_app
from coaching_notifier.settings import NotifierSettings
from coaching_notifier.sinks import WebhookCall, WebhookSink
from coaching_shared.contracts import CheckInDue, ClientEnrolled
from support.inprocess import bearer, running_service, service_settings
from support.kafka_tools import eventually, publish_events
from support.webhooks import receiver_verifier

pytestmark = pytest.mark.integration

TENANT = "acme"
TOLERANCE = 300  # the README's default window, in seconds


async def _accepted_call(receiver: WebhookSink) -> WebhookCall | None:
    return receiver.accepted[0] if receiver.accepted else None


@pytest.fixture(scope="module")
async def delivery(infra) -> tuple[str, WebhookCall]:
    """A subscription's secret and the call the notifier made to its receiver."""
    prefix = f"wh{uuid.uuid4().hex[:8]}."
    settings = service_settings(NotifierSettings, infra, prefix, dispatcher_poll_seconds=0.2)
    receiver = await WebhookSink().start()
    try:
        async with running_service(create_app, settings) as notifier:
            subscribed = await notifier.post(
                "/v1/webhooks", headers=bearer(TENANT, "hr-system", "integration"),
                json={"url": receiver.url, "event_types": ["CheckInDue"]})
            assert subscribed.status_code == 201, subscribed.text
            due = datetime.now(UTC) + timedelta(days=1)
            await publish_events(infra.kafka_bootstrap_servers, prefix, [ClientEnrolled(
                tenant_id=TENANT, client_id="c-hook", program_id="leaders",
                display_name="Hook Client", email="c-hook@example.com"), CheckInDue(
                tenant_id=TENANT, client_id="c-hook", checkin_id="ci-hook-1", goal_id="g-hook",
                period=1, due_at=due, respond_by=due + timedelta(days=2))])
            call = await eventually(lambda: _accepted_call(receiver))
    finally:
        await receiver.stop()
    return subscribed.json()["secret"], call


def _without(headers: dict[str, str], name: str) -> dict[str, str]:
    return {key: value for key, value in headers.items() if key != name}


async def test_the_genuine_delivery_verifies(delivery):
    secret, call = delivery
    assert receiver_verifier()(secret, call.headers, call.body)
    assert b'"id":' in call.body and b"ci-hook-1" in call.body


async def test_a_tampered_body_does_not_verify(delivery):
    secret, call = delivery
    verify = receiver_verifier()
    assert not verify(secret, call.headers, call.body.replace(b"c-hook", b"c-evil"))
    assert not verify(secret, call.headers, call.body + b" ")
    assert not verify(secret, call.headers, b"")


async def test_a_wrong_secret_does_not_verify(delivery):
    secret, call = delivery
    verify = receiver_verifier()
    assert not verify("whsec_someone-elses-secret", call.headers, call.body)
    assert not verify(secret[:-1], call.headers, call.body)
    assert not verify("", call.headers, call.body)


async def test_missing_or_garbled_headers_do_not_verify(delivery):
    secret, call = delivery
    verify = receiver_verifier()
    assert not verify(secret, _without(call.headers, "coaching-webhook-signature"), call.body)
    assert not verify(secret, _without(call.headers, "coaching-webhook-timestamp"), call.body)
    assert not verify(secret, {**call.headers, "coaching-webhook-signature": "v1="}, call.body)
    # Digits outside ASCII pass str.isdigit() but not int(): refused, not a crash.
    assert not verify(secret, {**call.headers, "coaching-webhook-timestamp": "\u00b2"},
                      call.body)
    # The signature covers the timestamp: a fresh timestamp on an old call gives it away.
    fresher = str(int(call.headers["coaching-webhook-timestamp"]) + 1)
    assert not verify(secret, {**call.headers, "coaching-webhook-timestamp": fresher},
                      call.body)


async def test_a_replay_outside_the_tolerance_window_is_refused(delivery):
    secret, call = delivery
    sent_at = int(call.headers["coaching-webhook-timestamp"])
    assert abs(time.time() - sent_at) < 60  # the notifier stamps the attempt's own time

    def replayed(after_seconds: int) -> bool:
        later = receiver_verifier(clock=lambda: sent_at + after_seconds)
        return later(secret, call.headers, call.body)

    assert replayed(TOLERANCE - 5)  # a late but honest arrival still passes
    assert not replayed(TOLERANCE + 1)
    assert not replayed(24 * 3600)
    assert not replayed(-(TOLERANCE + 1))  # a timestamp from the future is refused too
