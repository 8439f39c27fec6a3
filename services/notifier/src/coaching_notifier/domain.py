"""Notification rules: pure functions, no I/O."""

from __future__ import annotations

from typing import Any

from coaching_shared.contracts import ClientEnrolled, CoachContact


def client_contact(event: ClientEnrolled) -> dict[str, Any]:
    """How to reach a client, from their enrolment."""
    return {"role": "client", "display_name": event.display_name, "email": event.email,
            "timezone": event.timezone, "locale": event.locale}


def coach_contact(coach: CoachContact) -> dict[str, Any]:
    """How to reach a coach."""
    return {"role": "coach", "display_name": coach.display_name, "email": coach.email,
            "timezone": coach.timezone, "locale": coach.locale}
