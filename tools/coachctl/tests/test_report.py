"""The program report: funnel and adherence from events, and its chart."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

from coaching_cli.report import Observed, program_report, render_svg


def events() -> list[Observed]:
    def enrolled(client: str, program: str = "p1") -> Observed:
        return Observed("coaching.ClientEnrolled.v1", "acme", client, {"program_id": program})

    return [
        enrolled("c1"), enrolled("c2"), enrolled("c3"), enrolled("c4", program="p2"),
        Observed("coaching.ClientEnrolled.v1", "globex", "c9", {"program_id": "p1"}),
        Observed("coaching.AssessmentCompleted.v1", "acme", "c1", {}),
        Observed("coaching.AssessmentCompleted.v1", "acme", "c1", {}),  # a second instrument
        Observed("coaching.AssessmentCompleted.v1", "acme", "c2", {}),
        Observed("coaching.AssessmentCompleted.v1", "acme", "c4", {}),  # other program
        Observed("coaching.GoalSet.v1", "acme", "c1", {}),
        Observed("coaching.CheckInDue.v1", "acme", "c1",
                 {"checkin_id": "k1", "due_at": "2026-11-23T09:00:00+00:00"}),
        Observed("coaching.CheckInDue.v1", "acme", "c1",
                 {"checkin_id": "k2", "due_at": "2026-11-30T09:00:00+00:00"}),
        Observed("coaching.CheckInDue.v1", "acme", "c2",
                 {"checkin_id": "k3", "due_at": "2026-11-30T10:00:00+00:00"}),
        Observed("coaching.CheckInCompleted.v1", "acme", "c1", {"checkin_id": "k1"}),
        Observed("coaching.CheckInCompleted.v1", "acme", "c2", {"checkin_id": "k3"}),
        Observed("coaching.ClientOffboarded.v1", "acme", "c3", {}),
    ]


def test_funnel_counts_distinct_clients_of_the_program_and_tenant():
    report = program_report(events(), "acme", "p1")
    assert report.funnel == [("enrolled", 3), ("assessed", 2), ("goals set", 1),
                             ("checked in", 2), ("goal achieved", 0)]
    assert report.offboarded == 1


def test_adherence_per_iso_week_of_the_due_date():
    report = program_report(events(), "acme", "p1")
    assert report.adherence == [("2026-W48", 1, 1), ("2026-W49", 2, 1)]


def test_all_programs_when_none_is_given():
    assert program_report(events(), "acme").funnel[0] == ("enrolled", 4)


def test_chart_is_well_formed_svg_with_a_bar_per_stage():
    svg = render_svg(program_report(events(), "acme", "p1"))
    root = ElementTree.fromstring(svg)
    bars = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.find(
        "{http://www.w3.org/2000/svg}title") is not None]
    assert len(bars) == 5
    assert bars[0].find("{http://www.w3.org/2000/svg}title").text == "enrolled: 3"
    assert len(list(root.iter("{http://www.w3.org/2000/svg}circle"))) == 2
