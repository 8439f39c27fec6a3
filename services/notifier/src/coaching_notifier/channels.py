"""The delivery channels: SMTP email, signed webhooks, the in-app inbox (the I/O edge).

Each sender makes one attempt at one claimed delivery and says how it went (`SendOutcome`):
delivered, worth retrying, or refused for good. Retrying and bookkeeping are the
dispatcher's business. Outcomes name status codes and error classes only: no message
content, addresses or secrets reach the log.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any, Protocol

import aiosmtplib
import httpx

from coaching_notifier.domain import (
    SendOutcome,
    smtp_code_retryable,
    valid_secrets,
    webhook_headers,
    webhook_status_retryable,
)
from coaching_notifier.grouped import Grouped
from coaching_notifier.repository import NotifierRepository
from coaching_notifier.settings import NotifierSettings

MESSAGE_ID_DOMAIN = "notifier.coaching"


class Sender(Protocol):
    async def send(self, delivery: Mapping[str, Any], now: datetime) -> SendOutcome:
        """One attempt at a claimed delivery."""
        ...

    async def close(self) -> None:
        """Release connections when the service stops."""
        ...


def email_message(delivery: Mapping[str, Any], mail_from: str, app_url: str,
                  now: datetime) -> EmailMessage:
    """The MIME message of an email delivery: plain text with an HTML alternative.

    The Message-ID is derived from the notification id, so the (rare) second send after a
    sender crashed mid-conversation carries the same id and mail systems can fold it.
    """
    email = delivery["email"]
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = formataddr((email.get("to_name") or "", email["to"]))
    message["Subject"] = email["subject"]
    message["Date"] = format_datetime(now)
    message["Message-ID"] = f"<{delivery['notification_id']}@{MESSAGE_ID_DOMAIN}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies
    message["List-Unsubscribe"] = f"<{app_url.rstrip('/')}/settings/notifications>"
    message["X-Coaching-Notification-Id"] = delivery["notification_id"]
    message["X-Coaching-Event-Type"] = delivery["event_type"]
    message.set_content(email["text"])
    message.add_alternative(email["html"], subtype="html")
    return message


class EmailSender:
    """Sends over SMTP with aiosmtplib: plain, STARTTLS or implicit TLS."""

    def __init__(self, settings: NotifierSettings) -> None:
        self._settings = settings
        self._tls_context = (ssl.create_default_context(cafile=settings.smtp_ca_file)
                             if settings.smtp_security != "none" else None)

    async def send(self, delivery: Mapping[str, Any], now: datetime) -> SendOutcome:
        settings = self._settings
        message = email_message(delivery, settings.mail_from, settings.app_url, now)
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        try:
            await aiosmtplib.send(
                message, hostname=settings.smtp_host, port=settings.smtp_port,
                username=settings.smtp_username, password=password,
                use_tls=settings.smtp_security == "tls",
                start_tls=settings.smtp_security == "starttls",
                tls_context=self._tls_context, timeout=settings.smtp_timeout_seconds)
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = [refusal.code for refusal in error.recipients]
            return SendOutcome(False, all(smtp_code_retryable(c) for c in codes),
                               f"recipient refused (SMTP {', '.join(map(str, codes))})")
        except aiosmtplib.SMTPResponseException as error:
            return SendOutcome(False, smtp_code_retryable(error.code),
                               f"SMTP {error.code}")
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            return SendOutcome(False, True, f"SMTP server unreachable ({type(error).__name__})")
        return SendOutcome(True, False, "accepted by SMTP server")

    async def close(self) -> None:
        """Nothing to release: each send opens its own SMTP connection."""


class WebhookSender:
    """POSTs the event as a signed CloudEvent to the subscription's URL."""

    def __init__(self, settings: NotifierSettings, repository: NotifierRepository) -> None:
        self._repository = repository
        self._client = httpx.AsyncClient(timeout=settings.webhook_timeout_seconds,
                                         follow_redirects=False)

    async def send(self, delivery: Mapping[str, Any], now: datetime) -> SendOutcome:
        webhook = delivery["webhook"]
        # Read at send time: a rotation or a new URL applies to retries too.
        subscription = await self._repository.webhook(delivery["tenant_id"],
                                                      webhook["subscription_id"])
        if subscription is None:
            return SendOutcome(False, False, "subscription was removed")
        body = webhook["body"].encode()
        headers = webhook_headers(delivery["notification_id"],
                                  valid_secrets(subscription["secrets"], now), now, body)
        try:
            response = await self._client.post(subscription["url"], content=body,
                                               headers=headers)
        except httpx.TimeoutException:
            return SendOutcome(False, True, "receiver timed out")
        except httpx.HTTPError as error:
            return SendOutcome(False, True, f"receiver unreachable ({type(error).__name__})")
        if response.is_success:
            return SendOutcome(True, False, f"HTTP {response.status_code}")
        return SendOutcome(False, webhook_status_retryable(response.status_code),
                           f"HTTP {response.status_code}")

    async def close(self) -> None:
        await self._client.aclose()


class InboxSender:
    """Files the notification in the person's in-app inbox."""

    def __init__(self, repository: NotifierRepository) -> None:
        self._repository = repository
        # Items of sends that finish while others are being filed are filed together next.
        self._filing: Grouped[dict[str, Any], None] = Grouped(repository.add_all_to_inbox)

    async def send(self, delivery: Mapping[str, Any], now: datetime) -> SendOutcome:
        await self._filing.submit({
            "tenant_id": delivery["tenant_id"], "person_id": delivery["recipient_id"],
            "notification_id": delivery["notification_id"],
            "client_id": delivery["client_id"], "event_type": delivery["event_type"],
            **delivery["inbox"], "created_at": now, "read_at": None})
        return SendOutcome(True, False, "filed in inbox")

    async def close(self) -> None:
        """Stop filing: the inbox is the service's own database, nothing else to release."""
        await self._filing.close()
