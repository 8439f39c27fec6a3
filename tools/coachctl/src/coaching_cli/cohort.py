"""Cohorts to enrol: from an HRIS CSV export, or generated for demos."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from coaching_shared.contracts import ClientEnrolled, CoachContact
from coaching_shared.events import EventMessage, derived_event_id
from pydantic import ValidationError

CSV_COLUMNS = ("client_id", "display_name", "email", "timezone", "locale", "coach_id",
               "coach_name", "coach_email")
SOURCE = "/coachctl/enrol"


class CohortError(ValueError):
    """A cohort file that cannot be enrolled as it is (line and field named)."""


def enrolment_message(event: ClientEnrolled) -> EventMessage:
    """The enrolment's event id is derived from who joins which program: enrolling the same
    file twice publishes the same ids, which every service applies once."""
    identity = f"{event.tenant_id}|{event.program_id}|{event.client_id}"
    return EventMessage.wrap(event, SOURCE, event_id=derived_event_id(identity, "enrolment"))


def read_csv(path: Path, tenant_id: str, program_id: str) -> list[ClientEnrolled]:
    """Validate a whole CSV before anything is published; errors name line and field."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("client_id", "display_name", "email")
                   if c not in (reader.fieldnames or [])]
        if missing:
            raise CohortError(f"{path}: missing column(s) {', '.join(missing)}; expected "
                              f"{', '.join(CSV_COLUMNS)}")
        events, problems = [], []
        for line, row in enumerate(reader, start=2):
            try:
                events.append(_row_event(row, tenant_id, program_id))
            except ValidationError as error:
                for item in error.errors():
                    field = ".".join(str(part) for part in item["loc"])
                    problems.append(f"line {line}, {field}: {item['msg']}")
    if problems:
        raise CohortError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return events


def _row_event(row: dict[str, str], tenant_id: str, program_id: str) -> ClientEnrolled:
    coach = None
    if row.get("coach_id"):
        coach = CoachContact(coach_id=row["coach_id"],
                             display_name=row.get("coach_name") or row["coach_id"],
                             email=row.get("coach_email", ""))
    return ClientEnrolled(
        tenant_id=tenant_id, program_id=program_id, client_id=row.get("client_id", ""),
        display_name=row.get("display_name", ""), email=row.get("email", ""),
        timezone=row.get("timezone") or "UTC", locale=row.get("locale") or "en", coach=coach)


def demo_cohort(tenant_id: str, program_id: str, size: int,
                coaches: int = 3) -> Iterator[ClientEnrolled]:
    """A generated cohort: client-0001 ... with coaches coach-01 ... in rotation."""
    zones = ("Europe/Berlin", "America/New_York", "Asia/Singapore", "Europe/London")
    for number in range(1, size + 1):
        coach_number = (number - 1) % coaches + 1
        yield ClientEnrolled(
            tenant_id=tenant_id, program_id=program_id, client_id=f"client-{number:04d}",
            display_name=f"Demo Client {number}", email=f"client-{number:04d}@demo.example",
            timezone=zones[number % len(zones)], locale="en",
            coach=CoachContact(coach_id=f"coach-{coach_number:02d}",
                               display_name=f"Demo Coach {coach_number}",
                               email=f"coach-{coach_number:02d}@demo.example"))
