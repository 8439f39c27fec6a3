"""The assessment service's settings (environment variables)."""

from coaching_shared.settings import ServiceSettings
from pydantic import Field


class AssessmentSettings(ServiceSettings):
    service_name: str = "assessment"
    http_port: int = 8001
    enrolment_instruments: list[str] = Field(
        default=["onet-skills", "big-five", "riasec"],
        description="Instruments assigned on ClientEnrolled when the program has no plan of "
                    "its own (JSON list in ENROLMENT_INSTRUMENTS)")
    norm_minimum_group: int = Field(
        default=30, ge=1, description="Completions a norm group needs before percentiles show")
    reliability_threshold: float = Field(
        default=0.70, gt=0, lt=1, description="Scales with Cronbach's alpha below are flagged")
