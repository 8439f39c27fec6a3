"""The feedback service's settings (environment variables)."""

from coaching_shared.settings import ServiceSettings


class FeedbackSettings(ServiceSettings):
    service_name: str = "feedback"
    http_port: int = 8003
