"""The README's integrator example runs against the real broker and prints what it should."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from coaching_shared.contracts import GoalAchieved, GoalSet, KpiSpec
from support.kafka_tools import publish_events

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).parents[1] / "examples" / "consume_goal_events.py"


async def test_readme_consumer_example_reads_goal_set_events_of_one_tenant(infra, prefix):
    kpi = KpiSpec(kpi_id="k", name="demos given", baseline=0, target=4, direction="up")

    def goal(tenant: str, client: str, title: str) -> GoalSet:
        return GoalSet(tenant_id=tenant, client_id=client, goal_id=f"g-{client}", title=title,
                       start_date=date(2026, 12, 1), due_date=date(2027, 2, 1), kpis=[kpi])

    sent = await publish_events(infra.kafka_bootstrap_servers, prefix, [
        goal("acme", "c-1", "Present at the quarterly review"),
        goal("globex", "c-2", "Not for acme's eyes"),
        GoalAchieved(tenant_id="acme", client_id="c-1", goal_id="g-0",
                     achieved_at="2026-11-30T10:00:00Z"),
        goal("acme", "c-3", "Mentor a new joiner")])
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "acme", "2"], capture_output=True, text=True,
        timeout=120, check=True,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
             "TOPIC_PREFIX": prefix})
    lines = sorted(result.stdout.splitlines())
    assert lines == sorted([f"{sent[0].id} c-1 Present at the quarterly review 2027-02-01",
                            f"{sent[3].id} c-3 Mentor a new joiner 2027-02-01"])
