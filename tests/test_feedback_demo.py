"""The feedback demo step against the service as a process with a compressed clock.

This is what `make up` shows when the feedback service runs with `CLOCK_SPEED=20160`: a
schedule planned for a goal, a check-in falling due, the client submitting it over the API.
"""

from __future__ import annotations

import sys
import uuid

import pytest
from support.infra import REPO_ROOT
from support.kafka_tools import TopicReader, headers_of
from support.processes import ServiceProcess

pytestmark = pytest.mark.integration


async def test_demo_step_plans_a_schedule_and_submits_a_due_check_in(infra, tmp_path, capsys):
    sys.path.insert(0, str(REPO_ROOT / "deploy" / "local"))
    from demo_steps import Demo
    from demo_steps import feedback as feedback_step

    service = ServiceProcess("feedback", {
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
        # A database of its own: a reused server (KAFKA_BOOTSTRAP_SERVERS/MONGODB_URL set)
        # would hold the last run's schedules under the demo's stable ids.
        "MONGODB_URL": infra.mongodb_url,
        "MONGODB_DATABASE": f"demo_feedback_{uuid.uuid4().hex[:8]}",
        "OUTBOX_SWEEP_SECONDS": "0.5", "CLOCK_SPEED": "20160",
        "SCHEDULER_INTERVAL_SECONDS": "0.3"}, tmp_path)
    service.start()
    try:
        service.wait_ready()
        # The demo publishes on the unprefixed topics, as `make up` does.
        await feedback_step.run(Demo({"feedback": service.url}, infra.kafka_bootstrap_servers))
    finally:
        service.stop()
    shown = capsys.readouterr().out
    assert "Check-in schedules the feedback service planned for client-01" in shown
    assert "submitted it over the API: status completed" in shown, shown
    async with TopicReader(infra.kafka_bootstrap_servers, "coaching.feedback") as topic:
        records = await topic.until(lambda records: any(
            headers_of(r)["ce_type"] == "coaching.CheckInCompleted.v1" for r in records))
    assert any(headers_of(r)["ce_type"] == "coaching.CheckInDue.v1" for r in records)
