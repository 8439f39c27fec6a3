"""coachctl against the real broker: enrol, tail, dead letters, report."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from coaching_cli.main import app
from coaching_shared.contracts import AssessmentCompleted, CheckInCompleted, CheckInDue
from coaching_shared.events import dead_letter_topic, topic_name
from support.cli import coachctl, runner
from support.kafka_tools import TopicReader, headers_of, publish_events, publish_raw

pytestmark = pytest.mark.integration


def read(infra, topic: str, count: int):
    async def run():
        async with TopicReader(infra.kafka_bootstrap_servers, topic) as reader:
            return await reader.until(lambda r: len(r) >= count)

    return asyncio.run(run())


def test_enroll_csv_validates_then_publishes_idempotently(infra, prefix, tmp_path):
    cohort = tmp_path / "cohort.csv"
    cohort.write_text("client_id,display_name,email,timezone,coach_id,coach_name,coach_email\n"
                      "e-1,Ada,ada@acme.example,Europe/Berlin,k-1,Kim,kim@acme.example\n"
                      "e-2,Bo,bo@acme.example,UTC,,,\n")
    coachctl(infra, prefix, "enroll", "--tenant", "acme", "--program", "p1", "--csv",
             str(cohort))
    coachctl(infra, prefix, "enroll", "--tenant", "acme", "--program", "p1", "--csv",
             str(cohort))
    records = read(infra, topic_name("enrolment", prefix), 4)
    ids = [headers_of(r)["ce_id"] for r in records]
    assert len(set(ids)) == 2  # the second run repeats the same event ids
    assert {r.key for r in records} == {b"e-1", b"e-2"}

    broken = tmp_path / "broken.csv"
    broken.write_text("client_id,display_name,email,timezone\ne-3,Cy,not-an-email,Mars/Base\n")
    result = runner.invoke(app, ["enroll", "--tenant", "acme", "--program", "p1", "--csv",
                                 str(broken), "--bootstrap", infra.kafka_bootstrap_servers,
                                 "--topic-prefix", prefix])
    assert result.exit_code == 1
    assert "line 2, email" in result.output and "line 2, timezone" in result.output


def test_tail_filters_by_client(infra, prefix):
    coachctl(infra, prefix, "enroll", "--tenant", "acme", "--program", "p1", "--demo", "3")
    output = coachctl(infra, prefix, "tail", "enrolment", "--from-beginning", "--client",
                      "client-0002", "--limit", "1")
    assert "coaching.ClientEnrolled.v1" in output
    assert "client-0002@demo.example" in output and "client-0001@" not in output


def test_dlq_list_shows_reasons_and_replay_restores_the_original(infra, prefix):
    original = asyncio.run(publish_events(
        infra.kafka_bootstrap_servers, prefix,
        [CheckInDue(tenant_id="acme", client_id="c-1", checkin_id="k-1", goal_id="g-1",
                    period=1, due_at=datetime(2026, 11, 30, 9, tzinfo=UTC),
                    respond_by=datetime(2026, 12, 2, 9, tzinfo=UTC))]))[0]
    dead = {**original.headers(), "dlq_reason": "template missing for locale xx",
            "dlq_error_type": "TemplateNotFound", "dlq_service": "notifier",
            "dlq_original_topic": original.topic(prefix), "dlq_original_partition": "0",
            "dlq_original_offset": "0", "dlq_attempts": "4",
            "dlq_failed_at": "2026-11-30T09:00:01+00:00"}
    asyncio.run(publish_raw(infra.kafka_bootstrap_servers, dead_letter_topic("notifier", prefix),
                            original.body(), original.key(), dead))
    listing = [json.loads(line) for line in
               coachctl(infra, prefix, "dlq", "list", "notifier", "--json").splitlines()]
    assert listing == [{"offset": 0, "event_id": original.id, "type": "coaching.CheckInDue.v1",
                        **{name: value for name, value in dead.items()
                           if name.startswith("dlq_")}}]
    table = coachctl(infra, prefix, "dlq", "list", "notifier")
    assert "1 message(s)" in table

    coachctl(infra, prefix, "dlq", "replay", "notifier", "--id", original.id)
    records = read(infra, original.topic(prefix), 2)
    replayed = records[-1]
    assert not any(name.startswith("dlq_") for name in headers_of(replayed))
    assert headers_of(replayed)["ce_id"] == original.id
    assert replayed.value == original.body() and replayed.key == b"c-1"


def test_report_prints_the_funnel_and_writes_the_chart(infra, prefix, tmp_path):
    coachctl(infra, prefix, "enroll", "--tenant", "acme", "--program", "p1", "--demo", "4")
    moment = datetime(2026, 11, 30, 9, tzinfo=UTC)
    events = [
        AssessmentCompleted(tenant_id="acme", client_id=f"client-000{n}", assessment_id=f"a{n}",
                            instrument_id="skills", instrument_version=1, completed_at=moment)
        for n in (1, 2, 3)]
    events += [CheckInDue(tenant_id="acme", client_id="client-0001", checkin_id="k1",
                          goal_id="g1", period=1, due_at=moment, respond_by=moment),
               CheckInCompleted(tenant_id="acme", client_id="client-0001", checkin_id="k1",
                                goal_id="g1", period=1, completed_at=moment, confidence=4)]
    asyncio.run(publish_events(infra.kafka_bootstrap_servers, prefix, events))
    chart = tmp_path / "report.svg"
    output = coachctl(infra, prefix, "report", "--tenant", "acme", "--program", "p1",
                      "--chart", str(chart))
    lines = {line.split("│")[1].strip(): line for line in output.splitlines()
             if line.count("│") >= 3}
    assert "4" in lines["enrolled"] and "100%" in lines["enrolled"]
    assert "3" in lines["assessed"] and "75%" in lines["assessed"]
    assert "2026-W49" in output
    assert "<svg" in chart.read_text()


def test_token_mints_a_verifiable_development_token():
    from coaching_shared.auth import verify_token
    from coaching_shared.settings import ServiceSettings

    result = runner.invoke(app, ["token", "--tenant", "acme", "--subject", "k-1", "--role",
                                 "coach"])
    principal = verify_token(result.output.strip(), ServiceSettings(service_name="t"))
    assert principal.tenant_id == "acme" and principal.subject == "k-1"
