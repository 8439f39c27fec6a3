"""The goals service's settings (environment variables)."""

from coaching_shared.settings import ServiceSettings


class GoalsSettings(ServiceSettings):
    service_name: str = "goals"
    http_port: int = 8002
