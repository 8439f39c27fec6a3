"""Builders for the goals domain's unit tests (plain pytest, no infrastructure)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from coaching_goals.domain import Goal, GoalStatus, Kpi, Relevance, RelevanceKind

START = date(2026, 1, 1)
DUE = date(2026, 4, 1)  # 90 days
NOON = datetime(2026, 1, 1, 12, tzinfo=UTC)


def make_goal(**overrides) -> Goal:
    """An active goal that passes the SMART check with default limits on START."""
    values = dict(
        tenant_id="acme", client_id="c-1", goal_id="g-1", status=GoalStatus.ACTIVE,
        title="Close more renewals with clients",
        description="Hold a structured renewal conversation with every client whose contract "
                    "ends this quarter",
        kpis=[Kpi(kpi_id="renewals", name="Renewals", baseline=10, target=20)],
        start_date=START, due_date=DUE,
        relevant_to=Relevance(kind=RelevanceKind.DEVELOPMENT_AREA, ref="negotiation"),
        created_by="c-1", created_at=NOON, updated_at=NOON)
    values.update(overrides)
    return Goal(**values)


@pytest.fixture
def new_goal():
    """Build a goal: `new_goal(status=..., kpis=[...])`."""
    return make_goal
