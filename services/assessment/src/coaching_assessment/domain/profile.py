"""One strengths-and-weaknesses profile per client, across the instruments they completed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def latest_per_instrument(results: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The most recent result of each instrument, in order of completion."""
    latest: dict[str, Mapping[str, Any]] = {}
    for result in sorted(results, key=lambda r: r["completed_at"]):
        latest[result["instrument_id"]] = result
    return sorted(latest.values(), key=lambda r: r["completed_at"])


def combined_profile(client_id: str, results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Strengths and development areas from every instrument's latest result, each with the
    instrument it comes from and its reason, plus the derived codes (e.g. Holland code)."""
    latest = latest_per_instrument(results)

    def gather(kind: str) -> list[dict[str, Any]]:
        return [{"instrument_id": result["instrument_id"],
                 "instrument_title": result.get("instrument_title"),
                 "assessment_id": result["assessment_id"], "scale_id": finding["scale_id"],
                 "label": finding["label"], "reason": finding["reason"],
                 "tied_at_cut": finding.get("tied_at_cut", False)}
                for result in latest for finding in result[kind]]

    return {
        "client_id": client_id,
        "instruments": [{"instrument_id": r["instrument_id"],
                         "instrument_version": r["instrument_version"],
                         "instrument_title": r.get("instrument_title"),
                         "assessment_id": r["assessment_id"], "completed_at": r["completed_at"]}
                        for r in latest],
        "strengths": gather("strengths"),
        "development_areas": gather("development_areas"),
        "codes": [{**code, "instrument_id": result["instrument_id"]}
                  for result in latest for code in result.get("codes", [])],
    }
