"""The feedback service's settings (environment variables)."""

from __future__ import annotations

from datetime import datetime, timedelta

from coaching_shared.settings import ServiceSettings
from pydantic import Field

from coaching_feedback.clock import ScaledClock
from coaching_feedback.domain import Cadence, CheckInPlan


class FeedbackSettings(ServiceSettings):
    service_name: str = "feedback"
    http_port: int = 8003

    clock_speed: float = Field(
        default=1.0, gt=0, description="Compress the coaching calendar (demos): 10080 makes a "
        "week pass per minute. Leases and retries keep real time.")
    clock_epoch: datetime | None = Field(
        default=None, description="Instant from which the compressed clock runs; give every "
        "replica the same one. Defaults to the process start.")

    scheduler_enabled: bool = Field(default=True,
                                    description="Run the due and missed check-in sweeps here")
    scheduler_interval_seconds: float = Field(default=1.0, gt=0,
                                              description="Pause between sweeps when idle")
    scheduler_batch_size: int = Field(default=500, ge=1, le=5000,
                                      description="Check-ins claimed per round trip")
    scheduler_lease_seconds: float = Field(
        default=30.0, gt=0, description="How long a replica owns claimed check-ins; after a "
        "crash another replica takes them over once it expires")
    scheduler_max_catch_up: int = Field(
        default=52, ge=1, description="Periods one schedule may catch up per sweep")

    default_cadence: Cadence = Cadence.WEEKLY
    default_weekday: int = Field(default=0, ge=0, le=6, description="0 = Monday")
    default_hour: int = Field(default=9, ge=0, le=23, description="local hour")
    checkin_on_time_hours: float = Field(
        default=24, gt=0, description="A submission later than this after the due time is late")
    checkin_grace_hours: float = Field(
        default=72, gt=0, description="After this a check-in is missed and no longer accepted")
    review_every_checkins: int = Field(
        default=4, ge=0, description="A progress review after every N settled check-ins "
        "(0 = only on request)")

    review_monthly: bool = Field(
        default=True, description="Also a progress review per goal at each month's end in "
        "the client's timezone")
    multirater_open_days: int = Field(
        default=14, ge=1, le=90, description="How long a 360 round stays open by default")
    multirater_max_open_days: int = Field(
        default=90, ge=1, description="The latest a client may set a 360 round to close")

    def clock(self) -> ScaledClock:
        return ScaledClock(self.clock_speed, self.clock_epoch)

    def default_plan(self, timezone: str = "UTC") -> CheckInPlan:
        """The plan a new goal gets before the client states preferences."""
        return CheckInPlan(cadence=self.default_cadence,
                           every_days=7 if self.default_cadence is Cadence.EVERY_N_DAYS else None,
                           timezone=timezone, weekday=self.default_weekday,
                           hour=self.default_hour)

    @property
    def on_time(self) -> timedelta:
        return timedelta(hours=self.checkin_on_time_hours)

    @property
    def grace(self) -> timedelta:
        return timedelta(hours=self.checkin_grace_hours)
