"""The in-process service harness drives a real service app against real Kafka and MongoDB."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from coaching_goals.app import create_app
from coaching_goals.settings import GoalsSettings
from coaching_shared.contracts import AssessmentCompleted
from support.inprocess import bearer, running_service, service_settings
from support.kafka_tools import eventually, publish_events

pytestmark = pytest.mark.integration


async def test_in_process_service_consumes_and_answers(infra, prefix):
    settings = service_settings(GoalsSettings, infra, prefix)
    async with running_service(create_app, settings) as client:
        await publish_events(infra.kafka_bootstrap_servers, prefix, [AssessmentCompleted(
            tenant_id="acme", client_id="c-1", assessment_id="a-1", instrument_id="intake",
            instrument_version=1, completed_at=datetime(2026, 11, 27, tzinfo=UTC))])

        async def stored():
            response = await client.get("/v1/clients/c-1/assessment-results",
                                        headers=bearer("acme", "c-1", "client"))
            return response.json() if response.status_code == 200 else None

        results = await eventually(stored)
        other_tenant = await client.get("/v1/clients/c-1/assessment-results",
                                        headers=bearer("globex", "c-1", "client"))
    assert [r["assessment_id"] for r in results] == ["a-1"]
    assert other_tenant.json() == []
