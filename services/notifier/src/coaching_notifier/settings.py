"""The notifier service's settings (environment variables).

The SMTP defaults point at a local development sink on 127.0.0.1:1025 (what `make up`'s demo
starts, and what MailHog or Mailpit listen on); production sets SMTP_HOST, SMTP_PORT,
SMTP_SECURITY and the credentials from its secret store.
"""

from typing import Literal

from coaching_shared.settings import ServiceSettings
from pydantic import Field, SecretStr, model_validator


class NotifierSettings(ServiceSettings):
    service_name: str = "notifier"
    http_port: int = 8004

    app_url: str = Field(default="http://127.0.0.1:8080",
                         description="Base URL of the web front end, for links in messages")

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_security: Literal["none", "starttls", "tls"] = Field(
        default="none", description="none, starttls (upgrade on connect) or tls (implicit TLS)")
    smtp_ca_file: str | None = Field(
        default=None, description="PEM bundle to verify the SMTP server with (private CAs)")
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    mail_from: str = "Coaching Platform <notifications@coaching.example>"

    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_allow_http_loopback: bool = Field(
        default=True, description="Allow http:// webhook URLs on loopback hosts (development); "
        "every other URL must be https")
    webhook_secret_overlap_hours: float = Field(
        default=24.0, ge=0, le=24 * 30,
        description="How long the previous secret stays valid after a rotation")

    delivery_max_attempts: int = Field(default=8, ge=1, le=50)
    delivery_backoff_seconds: float = Field(default=5.0, gt=0,
                                            description="First retry delay; doubles each time")
    delivery_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    delivery_lease_seconds: float = Field(
        default=120.0, gt=0, description="How long a sender owns a claimed delivery; a crashed "
        "sender's deliveries are taken over after it")
    dispatcher_poll_seconds: float = Field(default=1.0, gt=0)
    dispatcher_concurrency: int = Field(default=16, ge=1, le=500)

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> "NotifierSettings":
        # A lease shorter than a send would let a second sender start while the first is
        # still talking to the server: the one way a notification could go out twice.
        longest = max(self.smtp_timeout_seconds, self.webhook_timeout_seconds)
        if self.delivery_lease_seconds <= longest:
            raise ValueError(f"delivery_lease_seconds ({self.delivery_lease_seconds}) must "
                             f"exceed the longest send timeout ({longest})")
        return self
