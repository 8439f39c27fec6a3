"""The small chaos run: the platform's six kinds of processes killed and restarted under load.

Kafka, FerretDB and the four services run as separate processes (notifier and goals as two
replicas in one consumer group: scale-out under the same faults); a cohort is enrolled,
assessed, sets goals and answers check-ins on a compressed calendar while every kind of
process is SIGKILLed and restarted and consumers are cut off mid-batch. Afterwards nothing
may be lost, doubled, reordered or dead-lettered. Part of `make test`; `make chaos` runs it,
then the same code larger (chaos/run.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chaos.faults import KILL, PAUSE
from chaos.scenario import ChaosConfig, run_chaos
from chaos.summary import format_summary, write_report

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

SMALL = ChaosConfig(name="small", clients=6, instruments=1, fault_seconds=60,
                    kills_per_kind=2, pauses=2)
KINDS = {"kafka", "ferretdb", "assessment", "goals", "feedback", "notifier"}


def kind_of(member: str) -> str:
    return member.rsplit("-", 1)[0] if member[-1].isdigit() else member


@pytest.mark.timeout(900)  # a slow machine stretches the settling; the run's own caps decide
def test_nothing_lost_or_doubled_while_processes_are_killed(tmp_path):
    verdict = run_chaos(SMALL, tmp_path)
    print(format_summary(verdict))
    write_report(verdict)

    killed = {kind_of(name) for name in verdict.faults_by_kind.get(KILL, {})}
    assert killed == KINDS, f"not every kind of process was killed: {killed}"
    assert verdict.faults_by_kind.get(PAUSE), "no consumer was cut off mid-batch"
    assert all(fault["recovered"] for fault in verdict.fault_log)
    assert {kind_of(name) for name in verdict.processes} == KINDS
    assert len(verdict.processes) == 8  # two notifier and two goals replicas
    # The load really went through the platform: there was something to lose.
    assert verdict.figures["checkins_submitted"] > 0
    assert verdict.checked["CheckInDue per goal and period"] > 0
    assert verdict.checked["email received"] > 0 and verdict.checked["webhook received"] > 0
    assert verdict.unsettled is None
    assert verdict.lost == []
    assert verdict.duplicated == []
    assert verdict.out_of_order == []
    assert verdict.dead_lettered == []
