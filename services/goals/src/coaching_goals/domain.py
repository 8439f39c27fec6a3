"""Goal rules: pure functions, no I/O."""

from __future__ import annotations

from typing import Any

from coaching_shared.contracts import AssessmentCompleted


def assessment_basis(event: AssessmentCompleted) -> dict[str, Any]:
    """What goal suggestions need to keep from a completed assessment."""
    return {
        "assessment_id": event.assessment_id,
        "instrument_id": event.instrument_id,
        "instrument_version": event.instrument_version,
        "completed_at": event.completed_at,
        "strengths": list(event.strengths),
        "development_areas": list(event.development_areas),
        "scores": [score.model_dump() for score in event.scores],
    }
