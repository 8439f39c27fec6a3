"""The assessment service's settings (environment variables)."""

from coaching_shared.settings import ServiceSettings


class AssessmentSettings(ServiceSettings):
    service_name: str = "assessment"
    http_port: int = 8001
