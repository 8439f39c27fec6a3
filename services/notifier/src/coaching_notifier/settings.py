"""The notifier service's settings (environment variables)."""

from coaching_shared.settings import ServiceSettings


class NotifierSettings(ServiceSettings):
    service_name: str = "notifier"
    http_port: int = 8004
