"""Demo step: the cohort's check-in reminders arrive by email, webhook and in-app inbox.

The step starts an SMTP sink on 127.0.0.1:1025 (where the notifier's default settings send
mail) and a webhook sink, subscribes the sink to `CheckInDue`, then waits for the reminders
of the check-ins the feedback service's scheduler publishes for the cohort's goals (its
calendar runs two weeks a minute in the demo). Welcome emails the notifier could not hand
over before the sink was up arrive too: they were retried. A second run delivers nothing
again: exactly once.
"""

from __future__ import annotations

import asyncio
import time

from coaching_notifier.domain import webhook_signature
from coaching_notifier.sinks import SmtpSink, WebhookSink

from demo_steps import Demo

SMTP_PORT = 1025  # the notifier's default SMTP_PORT
WEBHOOK_PORT = 9811
WAIT_SECONDS = 90


def _start_smtp_sink() -> SmtpSink | None:
    try:
        return SmtpSink(port=SMTP_PORT).start()
    except (OSError, RuntimeError) as error:
        print(f"  (port {SMTP_PORT} is taken, {type(error).__name__}: mail goes to whatever "
              "listens there; showing the inbox instead)")
        return None


async def run(demo: Demo) -> None:
    notifier = demo.urls["notifier"]
    clients = sorted(demo.state.get("clients", {}))
    print("\nNotifications (notifier): an SMTP sink and a webhook sink started by the demo")
    smtp = _start_smtp_sink()
    try:
        receiver = await WebhookSink(port=WEBHOOK_PORT).start()
    except OSError:
        receiver = await WebhookSink().start()
    try:
        async with demo.http() as http:
            integration = demo.headers("demo-hr-connector", "integration")
            subscription = await http.post(
                f"{notifier}/v1/webhooks", json={"url": receiver.url,
                                                 "event_types": ["CheckInDue"],
                                                 "description": "demo Slack bridge"},
                headers={**integration, "Idempotency-Key": f"demo-webhook-{receiver.port}"})
            subscription.raise_for_status()
            secret = subscription.json()["secret"]
            print(f"  webhook {subscription.json()['subscription_id']} -> {receiver.url}")
            print("  waiting for the scheduler's CheckInDue of every client's goal ...")
            await _wait_for_reminders(http, notifier, demo, clients)
            if smtp is not None:
                _show_mail(smtp, clients)
            _show_webhooks(receiver, secret)
            await _show_inbox(http, notifier, demo, clients[0] if clients else None)
            summary = await http.get(f"{notifier}/v1/deliveries/summary",
                                     headers=demo.headers("demo-admin", "admin"))
            print(f"  delivery log (per channel and status): {summary.json()}")
    finally:
        await receiver.stop()
        if smtp is not None:
            smtp.stop()


async def _wait_for_reminders(http, notifier: str, demo: Demo, clients: list[str]) -> None:
    """Until every reminder and welcome is sent (or failed), or WAIT_SECONDS passed."""
    integration = demo.headers("demo-hr-connector", "integration")
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        response = await http.get(f"{notifier}/v1/deliveries", params={"limit": 500},
                                  headers=integration)
        log = response.json() if response.status_code == 200 else []
        open_ = [d for d in log if d["status"] in ("pending", "sending")
                 and not d.get("deferred_until")]
        reminded = {d["client_id"] for d in log if d["cause_type"] == "coaching.CheckInDue.v1"
                    and d["status"] == "sent"}
        if reminded >= set(clients) and not open_:
            return
        await asyncio.sleep(1)
    print(f"  (some deliveries still retrying after {WAIT_SECONDS}s; see GET /v1/deliveries)")


def _show_mail(smtp: SmtpSink, clients: list[str]) -> None:
    reminders = [m for m in smtp.messages
                 if m.message["X-Coaching-Event-Type"] == "CheckInDue"]
    welcomes = [m for m in smtp.messages
                if m.message["X-Coaching-Event-Type"] == "ClientEnrolled"]
    print(f"  SMTP sink received {len(reminders)} reminder(s) and {len(welcomes)} welcome "
          "email(s) (welcomes were retried until the sink was up)")
    for mail in reminders[:4]:
        due_line = next((line for line in mail.part("plain").splitlines() if "due" in line),
                        "")
        print(f"    to {mail.recipients[0]:<24} {mail.message['Subject']!s:<24} "
              f"{due_line.strip()[:70]}")
    if len(reminders) > 4:
        print(f"    ... and {len(reminders) - 4} more")
    if not reminders and clients:
        print("    (none new: this cohort's reminders were delivered in an earlier run)")


def _show_webhooks(receiver: WebhookSink, secret: str) -> None:
    valid = 0
    for call in receiver.accepted:
        timestamp = int(call.headers["coaching-webhook-timestamp"])
        expected = f"v1={webhook_signature(secret, timestamp, call.body)}"
        valid += expected in call.headers["coaching-webhook-signature"].split()
    print(f"  webhook sink accepted {len(receiver.accepted)} call(s), {valid} with a valid "
          "HMAC-SHA256 signature")


async def _show_inbox(http, notifier: str, demo: Demo, client_id: str | None) -> None:
    if client_id is None:
        return
    headers = demo.headers(client_id, "client")
    unread = (await http.get(f"{notifier}/v1/inbox/unread-count", headers=headers)).json()
    items = (await http.get(f"{notifier}/v1/inbox", headers=headers)).json()
    print(f"  inbox of {client_id}: {unread['unread']} unread")
    for item in items[:5]:
        print(f"    {item['event_type']:<20} {item['title']}")
