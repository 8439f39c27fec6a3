"""The goals step of `make up`, run against the goals service as a process (real Kafka, FerretDB).

It shows the suggestions drafted from a demo client's assessment, accepts one with a fixed
Idempotency-Key (a second run shows the same goal, not a new one), its SMART check and the
ranked next actions; without any assessment it writes a goal itself.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest
from coaching_shared.auth import mint_token
from coaching_shared.contracts import AssessmentCompleted, ScaleScore
from coaching_shared.events import utc_now
from coaching_shared.settings import ServiceSettings
from support.infra import REPO_ROOT, Infrastructure
from support.kafka_tools import publish_events
from support.processes import ServiceProcess

sys.path.insert(0, str(REPO_ROOT / "deploy" / "local"))

from demo_steps import TENANT, Demo
from demo_steps import goals as goals_step

pytestmark = pytest.mark.integration

PREFIX = "goalsdemo."


@pytest.fixture(scope="module")
def goals_process(infra: Infrastructure, tmp_path_factory) -> Iterator[ServiceProcess]:
    service = ServiceProcess("goals", {
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
        "MONGODB_URL": infra.mongodb_url, "TOPIC_PREFIX": PREFIX,
        "MONGODB_DATABASE": "goalsdemo_goals", "OUTBOX_SWEEP_SECONDS": "0.5"},
        tmp_path_factory.mktemp("goals-demo-logs"))
    service.start()
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()


def demo_for(goals: ServiceProcess, infra: Infrastructure, *clients: str) -> Demo:
    demo = Demo(urls={"goals": goals.url}, kafka_bootstrap_servers=infra.kafka_bootstrap_servers)
    demo.state["clients"] = {client_id: "coach-ana" for client_id in clients}
    return demo


def goals_of(goals: ServiceProcess, client_id: str) -> list[dict]:
    token = mint_token(ServiceSettings(service_name="tests"), TENANT, client_id, ["client"])
    return httpx.get(f"{goals.url}/v1/clients/{client_id}/goals",
                     headers={"Authorization": f"Bearer {token}"}).json()


async def test_the_demo_accepts_a_suggestion_and_ranks_next_actions(goals_process, infra,
                                                                    capsys):
    client_id = "client-01"
    await publish_events(infra.kafka_bootstrap_servers, PREFIX, [AssessmentCompleted(
        tenant_id=TENANT, client_id=client_id, assessment_id="demo-a-1",
        instrument_id="onet-skills", instrument_version=1, completed_at=utc_now(),
        scores=[ScaleScore(scale_id="time_management", label="Time Management", score=2,
                           minimum=1, maximum=5),
                ScaleScore(scale_id="writing", label="Writing", score=5, minimum=1,
                           maximum=5)],
        strengths=["writing"], development_areas=["time_management"])])
    demo = demo_for(goals_process, infra, client_id)
    await goals_step.run(demo)
    shown = capsys.readouterr().out
    assert "Protect time for the work that matters most" in shown
    assert "template onet.time_management, levers writing" in shown
    assert "SMART check passes:" in shown and "T ok" in shown
    assert "-> active (GoalSet published once)" in shown
    assert ("1. [impact 5, effort 1, priority 25] Block two 90-minute focus slots in your "
            "calendar each week") in shown

    await goals_step.run(demo)  # `make up` again: same goal, nothing new
    again = capsys.readouterr().out
    assert "[active   ] Protect time" in again and "-> active" in again
    assert [g["status"] for g in goals_of(goals_process, client_id)] == ["active"]


async def test_without_assessments_the_demo_client_writes_a_goal(goals_process, infra, capsys,
                                                                 monkeypatch):
    monkeypatch.setattr(goals_step, "WAIT_SECONDS", 1)
    demo = demo_for(goals_process, infra, "client-07")
    await goals_step.run(demo)
    await goals_step.run(demo)
    shown = capsys.readouterr().out
    assert "a demo client writes a goal" in shown
    assert shown.count("-> active (GoalSet published once)") == 2
    # Both score 20: the bigger win (impact 5) goes first.
    assert "1. [impact 5, effort 2, priority 20] Rehearse the review" in shown
    assert "2. [impact 4, effort 1, priority 20] Ask last quarter's presenter" in shown
    assert len(goals_of(goals_process, "client-07")) == 1
