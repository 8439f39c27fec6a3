"""The goals service's settings come from the environment."""

from __future__ import annotations

import pytest
from coaching_goals.settings import GoalsSettings
from pydantic import ValidationError


def test_smart_limit_defaults_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SMART_LIMITS__MAX_DURATION_MONTHS", "18")
    monkeypatch.setenv("AT_RISK_MARGIN_PERCENT", "10")
    settings = GoalsSettings()
    assert settings.smart_limits.max_duration_months == 18
    assert settings.smart_limits.min_duration_days == 14
    assert settings.at_risk_margin_percent == 10
    assert settings.suggestion_rules().max_goals == 3


def test_inconsistent_smart_limits_are_refused_at_start(monkeypatch):
    monkeypatch.setenv("SMART_LIMITS", '{"max_duration_months": 1, "min_duration_days": 60}')
    with pytest.raises(ValidationError):
        GoalsSettings()
