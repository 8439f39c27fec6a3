"""The summary of a chaos run: printed for people, written as JSON under .chaos/."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaos.invariants import Verdict

RESULTS = Path(__file__).resolve().parents[1] / ".chaos"
SHOWN = 10  # violations listed per kind in the printed summary


def _json_keys(value: Any) -> Any:
    """JSON objects take string keys only (a logical key may be a tuple)."""
    if isinstance(value, dict):
        return {str(key): _json_keys(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_keys(item) for item in value]
    return value


def as_report(verdict: Verdict) -> dict[str, Any]:
    report = _json_keys(asdict(verdict))
    report.update(events_checked=verdict.events_checked, passed=verdict.passed,
                  totals={"lost": len(verdict.lost), "duplicated": len(verdict.duplicated),
                          "out_of_order": len(verdict.out_of_order),
                          "dead_lettered": len(verdict.dead_lettered),
                          "resent_after_crash": len(verdict.resent_after_crash)})
    return report


def format_summary(verdict: Verdict) -> str:
    """What a person reads after the run."""
    lines = [f"chaos run '{verdict.config['name']}': "
             f"{'PASSED' if verdict.passed else 'FAILED'}",
             f"processes ({len(verdict.processes)}): {', '.join(verdict.processes)}",
             "faults injected:"]
    for kind, members in verdict.faults_by_kind.items():
        lines.append(f"  {sum(members.values()):>3}  {kind}: "
                     + ", ".join(f"{name} {count}" for name, count in members.items()))
    if verdict.supervisor_restarts:
        lines.append(f"  restarted by the supervisor after dying on their own: "
                     f"{verdict.supervisor_restarts}")
    lines.append(f"effects checked: {verdict.events_checked}")
    for category, count in sorted(verdict.checked.items()):
        lines.append(f"  {count:>6}  {category}")
    figures = verdict.figures
    lines.append("load: " + ", ".join(f"{name.replace('_', ' ')} {value}"
                                      for name, value in figures.items()))
    for name, found in (("lost", verdict.lost), ("duplicated", verdict.duplicated),
                        ("out of order", verdict.out_of_order),
                        ("dead-lettered", verdict.dead_lettered),
                        ("resent after a sender crash (same id, folded by receivers)",
                         verdict.resent_after_crash)):
        lines.append(f"{name}: {len(found)}")
        lines += [f"    {item}" for item in found[:SHOWN]]
        if len(found) > SHOWN:
            lines.append(f"    ... and {len(found) - SHOWN} more")
    if verdict.unsettled:
        lines.append(f"NOT SETTLED: {verdict.unsettled[:500]}")
    if verdict.timings:
        lines.append("timings: " + ", ".join(f"{k.replace('_', ' ')} {v}"
                                             for k, v in verdict.timings.items()))
    return "\n".join(lines)


def write_report(verdict: Verdict, folder: Path = RESULTS) -> Path:
    """Write results-<timestamp>.json and latest-<name>.json; the first path."""
    folder.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(as_report(verdict), indent=2, default=str)
    path = folder / f"results-{verdict.config['name']}-{stamp}.json"
    path.write_text(text)
    (folder / f"latest-{verdict.config['name']}.json").write_text(text)
    return path
