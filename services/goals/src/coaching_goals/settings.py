"""The goals service's settings (environment variables)."""

from coaching_shared.settings import ServiceSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from coaching_goals.domain import SmartLimits, SuggestionRules


class GoalsSettings(ServiceSettings):
    """Also: `SMART_LIMITS__MAX_DURATION_MONTHS=18` (or `SMART_LIMITS` as JSON) sets a default
    of the SMART check; a tenant's admins may override each limit over the API."""

    model_config = SettingsConfigDict(env_nested_delimiter="__")

    service_name: str = "goals"
    http_port: int = 8002
    # A wave drafts three goals per event and holds them until they are published: 500
    # events peaked at 152 MB in `make bench`, 250 at 118 MB for the same throughput.
    consume_batch_size: int = Field(
        default=250, ge=1, description="Most records fetched and acknowledged together")

    smart_limits: SmartLimits = Field(default_factory=SmartLimits)
    at_risk_margin_percent: float = Field(
        default=15.0, ge=0, le=100,
        description="how many points progress may lag the share of time elapsed before a "
                    "goal is at risk")
    max_suggestions_per_assessment: int = Field(default=3, ge=0, le=20)
    suggested_goal_weeks: int = Field(default=12, ge=1, le=260)
    suggested_score_gain_share: float = Field(
        default=0.2, gt=0, le=1,
        description="a suggested score KPI aims this share of the scale's range higher")
    measurements_kept_per_goal: int = Field(default=500, ge=10, le=5000)
    next_actions_limit: int = Field(default=5, ge=1, le=100)

    def suggestion_rules(self) -> SuggestionRules:
        return SuggestionRules(
            max_goals=self.max_suggestions_per_assessment, weeks=self.suggested_goal_weeks,
            score_gain_share=self.suggested_score_gain_share)
