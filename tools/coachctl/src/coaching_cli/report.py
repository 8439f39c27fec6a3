"""A program's outcomes from its event streams: the funnel and check-in adherence over time.

Computed from events alone (what an integrator's data lake sees), never from a service's
database, and only as aggregates: no personal content.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from html import escape

FUNNEL_STAGES = (
    ("enrolled", "coaching.ClientEnrolled.v1"),
    ("assessed", "coaching.AssessmentCompleted.v1"),
    ("goals set", "coaching.GoalSet.v1"),
    ("checked in", "coaching.CheckInCompleted.v1"),
    ("goal achieved", "coaching.GoalAchieved.v1"),
)


@dataclass(frozen=True)
class Observed:
    """One event as the report needs it."""

    type: str
    tenant: str
    client_id: str
    data: dict


@dataclass
class ProgramReport:
    tenant: str
    program: str | None
    funnel: list[tuple[str, int]]
    offboarded: int
    adherence: list[tuple[str, int, int]] = field(default_factory=list)  # week, due, done


def _week(moment: str) -> str:
    year, week, _ = datetime.fromisoformat(moment).isocalendar()
    return f"{year}-W{week:02d}"


def program_report(events: Iterable[Observed], tenant: str,
                   program: str | None = None) -> ProgramReport:
    """Distinct clients reaching each stage, and check-ins completed per due week."""
    events = [e for e in events if e.tenant == tenant]
    members = {e.client_id for e in events if e.type == FUNNEL_STAGES[0][1]
               and (program is None or e.data.get("program_id") == program)}
    reached: dict[str, set[str]] = defaultdict(set)
    due_week: dict[str, str] = {}
    completed: set[str] = set()
    offboarded: set[str] = set()
    for event in events:
        if event.client_id not in members:
            continue
        reached[event.type].add(event.client_id)
        if event.type == "coaching.CheckInDue.v1":
            due_week[event.data["checkin_id"]] = _week(event.data["due_at"])
        elif event.type == "coaching.CheckInCompleted.v1":
            completed.add(event.data["checkin_id"])
        elif event.type == "coaching.ClientOffboarded.v1":
            offboarded.add(event.client_id)
    per_week: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for checkin_id, week in due_week.items():
        per_week[week][0] += 1
        per_week[week][1] += checkin_id in completed
    return ProgramReport(
        tenant=tenant, program=program,
        funnel=[(label, len(reached[ce_type])) for label, ce_type in FUNNEL_STAGES],
        offboarded=len(offboarded),
        adherence=[(week, due, done) for week, (due, done) in sorted(per_week.items())])


def render_svg(report: ProgramReport) -> str:
    """The funnel as bars and the adherence as a line, in one self-contained SVG."""
    width, bar_height, gap, left = 640, 28, 10, 130
    top = 50
    largest = max((count for _, count in report.funnel), default=0) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{{height}}" font-family="sans-serif" font-size="13">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="20" y="28" font-size="16" font-weight="bold">'
             f'{escape(report.program or "All programs")} ({escape(report.tenant)})</text>']
    for row, (label, count) in enumerate(report.funnel):
        y = top + row * (bar_height + gap)
        bar = (width - left - 80) * count / largest
        parts.append(f'<text x="20" y="{y + 19}">{escape(label)}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{bar:.1f}" height="{bar_height}" '
                     f'fill="#2f6f9f"><title>{escape(label)}: {count}</title></rect>')
        parts.append(f'<text x="{left + bar + 8:.1f}" y="{y + 19}">{count}</text>')
    y = top + len(report.funnel) * (bar_height + gap) + 30
    parts.append(f'<text x="20" y="{y}" font-weight="bold">Check-in adherence by week</text>')
    chart_top, chart_height = y + 15, 140
    parts.append(f'<rect x="{left}" y="{chart_top}" width="{width - left - 40}" '
                 f'height="{chart_height}" fill="none" stroke="#ccc"/>')
    points = []
    if report.adherence:
        step = (width - left - 40) / max(1, len(report.adherence) - 1)
        for index, (week, due, done) in enumerate(report.adherence):
            x = left + index * step if len(report.adherence) > 1 else left + (width - left) / 2
            share = done / due if due else 0
            point_y = chart_top + chart_height * (1 - share)
            points.append(f"{x:.1f},{point_y:.1f}")
            parts.append(f'<circle cx="{x:.1f}" cy="{point_y:.1f}" r="4" fill="#c0504d">'
                         f'<title>{week}: {done}/{due}</title></circle>')
            parts.append(f'<text x="{x:.1f}" y="{chart_top + chart_height + 16}" '
                         f'text-anchor="middle" font-size="11">{week}</text>')
        parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="#c0504d"/>')
    else:
        parts.append(f'<text x="{left + 10}" y="{chart_top + 75}">no check-ins due yet</text>')
    parts.append(f'<text x="20" y="{chart_top + 5}" font-size="11">100%</text>')
    parts.append(f'<text x="20" y="{chart_top + chart_height}" font-size="11">0%</text>')
    parts.append("</svg>")
    height = chart_top + chart_height + 40
    return "\n".join(parts).replace("{height}", str(height))
