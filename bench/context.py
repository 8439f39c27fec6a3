"""What every scenario gets: where the infrastructure is, the events, the run's knobs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from coaching_shared.events import EventMessage

from bench.workload import Encoded


@dataclass
class Bench:
    bootstrap: str
    mongodb_url: str
    prefix: str
    messages: list[EventMessage]
    encoded: list[Encoded]
    warmup_share: float = 0.05
    cap_seconds: float = 240.0
    facts: dict[str, object] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.messages)

    @property
    def warmup(self) -> int:
        """Events left out at the start of a consuming scenario (connect, group join)."""
        return int(self.total * self.warmup_share)

    def database(self, scenario: str) -> str:
        return f"{self.prefix.rstrip('.')}_{scenario}"

    def topic(self, name: str) -> str:
        return f"{self.prefix}bench.{name}"


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))
