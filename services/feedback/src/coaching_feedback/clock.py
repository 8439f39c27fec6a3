"""The feedback service's notion of "now": the wall clock, compressed, or held by a test.

Due check-ins, lateness and missed check-ins are decided against this clock; leases and
outbox bookkeeping always use the real wall clock, because they are about processes, not about
the coaching calendar.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from coaching_shared.events import utc_now


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


class ScaledClock:
    """Real time, optionally running `speed` times faster from `epoch` on (demos, soak tests).

    Every replica given the same epoch and speed agrees on the time, so the schedule stays
    shared; at speed 1 the epoch does not matter and this is the wall clock.
    """

    def __init__(self, speed: float = 1.0, epoch: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self.speed = speed
        self.epoch = epoch or utc_now()

    def now(self) -> datetime:
        real = utc_now()
        if self.speed == 1:
            return real
        return self.epoch + (real - self.epoch) * self.speed


class FixedClock:
    """A clock that stands still until moved: for tests that walk through the calendar."""

    def __init__(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("the clock needs a timezone-aware instant")
        self._moment = moment

    def now(self) -> datetime:
        return self._moment

    def set(self, moment: datetime) -> None:
        self._moment = moment

    def advance(self, delta: timedelta) -> None:
        self._moment += delta
