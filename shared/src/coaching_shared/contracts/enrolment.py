"""Inbound integration events: what an enterprise's HRIS publishes about program members.

Stream `enrolment`. Every service consumes `ClientOffboarded` and erases that client's data.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from coaching_shared.events import Event

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
LOCALE_PATTERN = r"^[a-z]{2,3}(-[A-Z]{2})?$"


def known_timezone(value: str) -> str:
    """Validate an IANA timezone name (e.g. Europe/Berlin); returns it unchanged."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown IANA timezone {value!r}") from error
    return value


class CoachContact(BaseModel):
    """A coach as the platform needs to know them: who, and how to reach them."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    coach_id: str = Field(min_length=1, max_length=128)
    display_name: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=EMAIL_PATTERN, max_length=320)
    timezone: str = "UTC"
    locale: str = Field(default="en", pattern=LOCALE_PATTERN)

    _timezone = field_validator("timezone")(known_timezone)


class ClientEnrolled(Event):
    """A person joined a coaching program (published by the enterprise's HRIS)."""

    type_name = "ClientEnrolled"
    stream = "enrolment"

    program_id: str = Field(min_length=1, max_length=128)
    display_name: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=EMAIL_PATTERN, max_length=320)
    timezone: str = Field(default="UTC", description="IANA timezone, e.g. Europe/Berlin")
    locale: str = Field(default="en", pattern=LOCALE_PATTERN)
    coach: CoachContact | None = None

    _timezone = field_validator("timezone")(known_timezone)


class CoachAssigned(Event):
    """A client got a (new) coach."""

    type_name = "CoachAssigned"
    stream = "enrolment"

    coach: CoachContact


class ClientOffboarded(Event):
    """A client left the program: every service erases the client's personal data."""

    type_name = "ClientOffboarded"
    stream = "enrolment"

    reason: str | None = Field(default=None, max_length=500)
