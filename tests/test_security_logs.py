"""No secrets, tokens, email addresses or personal content in any service's logs.

The four services run with their JSON logging at DEBUG, the most they ever say, through a
whole coaching journey (support.journey) plus the requests most likely to drag content into
a log line: refused tokens, rejected bodies full of personal text, a webhook secret
rotation, email sent through an SMTP server that refuses the configured credentials. Every
line the services write is then searched for each of those strings.
"""

from __future__ import annotations

import logging
import uuid

import pytest
from coaching_shared.observability import JsonFormatter
from support.journey import platform_after_journey
from support.kafka_tools import eventually
from support.tokens import authorization

pytestmark = pytest.mark.integration

TENANT = "acme"
SMTP_PASSWORD = f"smtp-pw-{uuid.uuid4().hex}"
# Log lines of the test's own tools, not of a service: the SMTP sink standing in for the
# mail relay, and the test's HTTP client calling the apps in-process (base URL "service").
TEST_TOOLS = ("mail.log",)


class Lines(logging.Handler):
    """Keeps every record as the services format it (one JSON line each)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name in TEST_TOOLS:
            return
        if record.name == "httpx" and "http://service/" in record.getMessage():
            return
        self.lines.append(self.format(record))


async def test_service_logs_hold_no_secret_token_address_or_personal_content(infra):
    prefix = f"lg{uuid.uuid4().hex[:8]}."
    lines = Lines()
    notifier = {"smtp_username": "relay-user", "smtp_password": SMTP_PASSWORD,
                "delivery_max_attempts": 2, "log_level": "DEBUG"}
    async with platform_after_journey(infra, prefix, TENANT, notifier=notifier,
                                      log_handler=lines) as platform:
        journey, services = platform.journey, platform.services
        cast = journey.cast
        logging.getLogger().setLevel(logging.DEBUG)
        as_client = cast.client.headers(TENANT)
        tokens = [as_client["Authorization"].split()[1]]
        # A forged token (the real one with another signature) and rejected bodies full of
        # personal text: the paths where content most easily slips into an error line.
        forged = tokens[0].rsplit(".", 1)[0] + ".c2lnbmF0dXJl"
        tokens.append(forged)
        for client in services.values():
            assert (await client.get("/v1/inbox", headers=authorization(forged))
                    ).status_code in (401, 404)
        reflection = await services["feedback"].post(
            f"/v1/clients/{cast.client.subject}/reflections", headers=as_client,
            json={"prompt_id": "no-such-prompt", "answer": cast.reflection,
                  "shared_with": [cast.email]})
        assert reflection.status_code == 422
        rotated = await services["notifier"].post(
            f"/v1/webhooks/{journey.ids['subscription_id']}/rotate-secret",
            headers=cast.integration.headers(TENANT), json={"overlap_hours": 1})
        assert rotated.status_code == 200
        # Email fails (the relay will not take the credentials over plain SMTP): its retries
        # and failure are logged too.
        await eventually(lambda: _failed_email(services["notifier"], cast), timeout=60)

    secrets = {"the SMTP password": SMTP_PASSWORD,
               "the webhook secret": journey.ids["secret"],
               "the rotated webhook secret": rotated.json()["secret"],
               "the rater link token": journey.ids["token"],
               "the client's email address": cast.email,
               "the client's name": cast.display_name,
               "the reflection": cast.reflection,
               "the coach's feedback": cast.feedback_text,
               **{f"bearer token {n}": token for n, token in enumerate(tokens)}}
    log = "\n".join(lines.lines)
    leaked = {what: [line for line in lines.lines if value in line][:3]
              for what, value in secrets.items() if value in log}
    assert leaked == {}
    assert "whsec_" not in log and "eyJ" not in log  # no secret or JWT of any kind
    # The capture saw the services at work: deliveries, consumed events, refusals.
    assert len(lines.lines) > 50
    assert '"logger": "coaching_notifier.dispatcher"' in log


async def _failed_email(notifier, cast) -> bool:
    response = await notifier.get("/v1/deliveries", headers=cast.integration.headers(TENANT),
                                  params={"channel": "email", "status": "failed"})
    return bool(response.json())
