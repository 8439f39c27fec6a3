"""Feedback rules: check-in scheduling maths, reviews and at-risk signals. Pure, no I/O.

Scheduling works in the client's local time: a check-in falls on the preferred weekday at the
preferred hour in the client's IANA timezone, so it stays at 09:00 local across daylight-saving
changes (its UTC instant moves instead). Every instant handed in or out is timezone-aware UTC.
"""

from __future__ import annotations

import calendar
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from coaching_shared.contracts import KpiSpec
from coaching_shared.events import derived_event_id
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The preferred weekday is the one nearest the nominal date, at most this many days away:
# a weekly check-in moved from Monday to Friday then comes 4 days later, not 11.
WEEKDAY_SLACK_DAYS = 3
# A monthly check-in is never planned sooner than this after the previous one.
MONTHLY_MIN_GAP_DAYS = 14
# Skip windows may cover many slots (a long leave); beyond this the plan is unusable.
MAX_SLOTS_SCANNED = 2000


class Cadence(StrEnum):
    """How often a goal's check-ins fall due."""

    WEEKLY = "weekly"
    BIWEEKLY = "biweekly"
    MONTHLY = "monthly"
    EVERY_N_DAYS = "every_n_days"


_STEP_DAYS = {Cadence.WEEKLY: 7, Cadence.BIWEEKLY: 14}


class SkipWindow(BaseModel):
    """Local dates (inclusive) on which no check-in falls due, e.g. holidays or leave."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: date
    end: date
    label: str = Field(default="", max_length=100)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end < self.start:
            raise ValueError("end must not be before start")
        return self

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end


class CheckInPlan(BaseModel):
    """When a goal's check-ins fall due: cadence, local timezone, weekday and hour, skips."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cadence: Cadence = Cadence.WEEKLY
    every_days: int | None = Field(default=None, ge=1, le=180,
                                   description="only for the every_n_days cadence")
    timezone: str = Field(default="UTC", description="IANA timezone, e.g. Europe/Berlin")
    weekday: int = Field(default=0, ge=0, le=6, description="0 = Monday ... 6 = Sunday")
    hour: int = Field(default=9, ge=0, le=23, description="local hour of the day")
    skip_windows: tuple[SkipWindow, ...] = Field(default=(), max_length=100)

    @field_validator("timezone")
    @classmethod
    def known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown IANA timezone {value!r}") from error
        return value

    @model_validator(mode="after")
    def _every_days_fits_cadence(self) -> Self:
        if (self.cadence is Cadence.EVERY_N_DAYS) != (self.every_days is not None):
            raise ValueError("every_days is required for the every_n_days cadence, "
                             "and only for it")
        return self

    def skips(self, day: date) -> bool:
        return any(window.covers(day) for window in self.skip_windows)


class NoSlotAvailable(ValueError):
    """The skip windows leave no day for a check-in."""


def _first_weekday_of_month(year: int, month: int, weekday: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7)


def _month_after(day: date) -> tuple[int, int]:
    return (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)


def _nominal_day(plan: CheckInPlan, previous: date) -> date:
    """The local date of the slot after `previous` (a local date), before skip windows."""
    if plan.cadence is Cadence.MONTHLY:
        # The first preferred weekday of a month (like "first Monday"): no drift over months.
        year, month = _month_after(previous)
        day = _first_weekday_of_month(year, month, plan.weekday)
        if (day - previous).days < MONTHLY_MIN_GAP_DAYS:
            day = _first_weekday_of_month(*_month_after(day), plan.weekday)
        return day
    if plan.cadence is Cadence.EVERY_N_DAYS:
        return previous + timedelta(days=plan.every_days or 1)
    nominal = previous + timedelta(days=_STEP_DAYS[plan.cadence])
    shift = (plan.weekday - nominal.weekday()) % 7
    if shift > WEEKDAY_SLACK_DAYS:
        shift -= 7
    return nominal + timedelta(days=shift)


def local_slot(plan: CheckInPlan, day: date) -> datetime:
    """The UTC instant of the preferred hour on a local date.

    A wall time that does not exist (the spring-forward gap) resolves to the same offset as
    before the gap, i.e. one hour later on the clock; an ambiguous one (autumn) to its first
    occurrence. Either way the check-in still happens that morning.
    """
    local = datetime.combine(day, time(plan.hour), tzinfo=ZoneInfo(plan.timezone))
    return local.astimezone(UTC)


def following_due(plan: CheckInPlan, origin: datetime) -> datetime:
    """The first check-in strictly after `origin` (the previous due time, or the plan start).

    Slots in a skip window are left out; the cadence carries on from them as if they had
    happened, so a holiday does not shift the weekday of later check-ins.
    """
    day = origin.astimezone(ZoneInfo(plan.timezone)).date()
    for _ in range(MAX_SLOTS_SCANNED):
        day = _nominal_day(plan, day)
        if not plan.skips(day):
            due = local_slot(plan, day)
            if due > origin:
                return due
    raise NoSlotAvailable("the skip windows leave no day for a check-in")


def first_due(plan: CheckInPlan, planned_at: datetime, start_date: date) -> datetime:
    """The first check-in of a goal: one cadence step after it starts (or was planned)."""
    return following_due(plan, plan_origin(plan, planned_at, start_date))


def plan_origin(plan: CheckInPlan, planned_at: datetime, start_date: date) -> datetime:
    """Where a schedule's cadence counts from: the goal's start, or when it was planned."""
    start = datetime.combine(start_date, time(0), tzinfo=ZoneInfo(plan.timezone))
    return max(planned_at, start.astimezone(UTC))


def fallen_due(plan: CheckInPlan, next_due: datetime, now: datetime,
               limit: int) -> tuple[list[datetime], datetime]:
    """Catch-up: the check-ins due at or before `now` (from `next_due` on, at most `limit`),
    and the due time of the one after them.

    After downtime every period that fell due meanwhile is returned, so none is dropped;
    if more than `limit` fell due, the returned next due time is still in the past and the
    next round carries on from it.
    """
    due_times: list[datetime] = []
    due = next_due
    while due <= now and len(due_times) < limit:
        due_times.append(due)
        due = following_due(plan, due)
    return due_times, due


def rescheduled_due(plan: CheckInPlan, origin: datetime, pending_due: datetime,
                    now: datetime) -> datetime:
    """The pending check-in's due time after the plan changed (cadence, weekday, skips...).

    A pending check-in that is already due keeps its time: it fires once, as planned. Otherwise
    the new plan counts from the previous check-in (or the plan's origin) and the first of its
    slots after `now` is taken, so the change never fires a check-in twice nor skips a period:
    the period keeps its number and only moves in time.
    """
    if pending_due <= now:
        return pending_due
    due = following_due(plan, origin)
    while due <= now:
        due = following_due(plan, due)
    return due


def checkin_id_for(tenant_id: str, goal_id: str, period: int) -> str:
    """One check-in per goal and period, with the same id on every replica and every retry."""
    return derived_event_id(f"{tenant_id}|{goal_id}|{period}", "checkin")


def checkin_due_event_id(tenant_id: str, goal_id: str, period: int) -> str:
    return derived_event_id(f"{tenant_id}|{goal_id}|{period}", "checkin-due")


@dataclass(frozen=True)
class CheckInWindow:
    """The time rules of one check-in: when it counts as late and when it is missed."""

    due_at: datetime
    on_time_until: datetime
    respond_by: datetime

    @classmethod
    def of(cls, due_at: datetime, on_time: timedelta, grace: timedelta) -> CheckInWindow:
        return cls(due_at, due_at + on_time, due_at + max(grace, on_time))

    def is_late(self, submitted_at: datetime) -> bool:
        return submitted_at > self.on_time_until

    def is_open(self, now: datetime) -> bool:
        return now <= self.respond_by


# -- Progress reviews and at-risk signals --------------------------------------------------


@dataclass(frozen=True)
class CheckInOutcome:
    """What reviews and risk detection need of one settled check-in (no free text but tags)."""

    period: int
    due_at: datetime
    completed: bool
    confidence: int | None = None
    kpi_values: dict[str, float] = field(default_factory=dict)
    blockers: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProgressReview:
    """The numbers of a progress review over a run of check-ins."""

    adherence: float
    completed: int
    due: int
    confidence_trend: float | None
    kpi_trends: dict[str, float]
    recurring_blockers: list[str]
    period_start: datetime
    period_end: datetime


def trend(values: Sequence[float]) -> float | None:
    """Least-squares slope per check-in; None with fewer than two values."""
    count = len(values)
    if count < 2:
        return None
    mean_x = (count - 1) / 2
    mean_y = sum(values) / count
    spread = sum((x - mean_x) ** 2 for x in range(count))
    return round(sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values)) / spread, 4)


def normalised_blocker(text: str) -> str:
    return " ".join(text.lower().split())


def review_progress(outcomes: Sequence[CheckInOutcome]) -> ProgressReview:
    """Adherence (completed / due), KPI and confidence trends, blockers named twice or more."""
    if not outcomes:
        raise ValueError("a review needs at least one settled check-in")
    ordered = sorted(outcomes, key=lambda outcome: outcome.period)
    completed = [outcome for outcome in ordered if outcome.completed]
    confidences = [float(o.confidence) for o in completed if o.confidence is not None]
    kpi_series: dict[str, list[float]] = {}
    for outcome in completed:
        for kpi_id, value in outcome.kpi_values.items():
            kpi_series.setdefault(kpi_id, []).append(value)
    kpi_trends = {kpi_id: slope for kpi_id, values in sorted(kpi_series.items())
                  if (slope := trend(values)) is not None}
    mentions = Counter(blocker for outcome in completed
                       for blocker in {normalised_blocker(b) for b in outcome.blockers} if blocker)
    return ProgressReview(
        adherence=round(len(completed) / len(ordered), 4), completed=len(completed),
        due=len(ordered), confidence_trend=trend(confidences), kpi_trends=kpi_trends,
        recurring_blockers=sorted(b for b, n in mentions.items() if n >= 2),
        period_start=ordered[0].due_at, period_end=ordered[-1].due_at)


def review_due(period: int, every: int) -> bool:
    """Whether settling this period completes a run of `every` check-ins."""
    return every > 0 and period % every == 0


class RiskReason(StrEnum):
    MISSED_TWICE = "missed_twice"
    CONFIDENCE_DROP = "confidence_drop"
    KPI_OFF_TRACK = "kpi_off_track"


# How far a KPI may lag behind the share of the goal's time that has passed.
KPI_LAG_TOLERANCE = 0.3
CONFIDENCE_DROP_POINTS = 2
CONFIDENCE_LOOKBACK = 3


def kpi_progress(kpi: KpiSpec, value: float) -> float:
    """Share of the way from baseline to target (negative when moving away), clamped at 1."""
    span = kpi.target - kpi.baseline
    if span == 0:
        return 1.0
    # The sign of the span carries the direction: for a KPI that should go down the target is
    # below the baseline, and a falling value is progress.
    return min(1.0, (value - kpi.baseline) / span)


def elapsed_share(start: date, due: date, at: datetime) -> float:
    """Share of the goal's time that has passed at `at` (0..1)."""
    total = (due - start).days
    if total <= 0:
        return 1.0
    return min(1.0, max(0.0, (at.date() - start).days / total))


def risk_reasons(outcomes: Sequence[CheckInOutcome], kpis: Sequence[KpiSpec],
                 goal_start: date, goal_due: date) -> list[RiskReason]:
    """Signs that a client may be disengaging, from the goal's settled check-ins.

    Two missed check-ins in a row; confidence two or more points below a recent high; a KPI
    whose latest reading is further behind its target than the goal's elapsed time allows,
    or worse than its baseline.
    """
    ordered = sorted(outcomes, key=lambda outcome: outcome.period)
    reasons: list[RiskReason] = []
    if len(ordered) >= 2 and not ordered[-1].completed and not ordered[-2].completed:
        reasons.append(RiskReason.MISSED_TWICE)
    completed = [outcome for outcome in ordered if outcome.completed]
    if completed and completed[-1].confidence is not None:
        earlier = [o.confidence for o in completed[-1 - CONFIDENCE_LOOKBACK:-1]
                   if o.confidence is not None]
        if earlier and max(earlier) - completed[-1].confidence >= CONFIDENCE_DROP_POINTS:
            reasons.append(RiskReason.CONFIDENCE_DROP)
    if completed and _kpi_off_track(completed[-1], kpis, goal_start, goal_due):
        reasons.append(RiskReason.KPI_OFF_TRACK)
    return reasons


def newly_at_risk(standing: Sequence[str], current: Sequence[str]) -> list[str]:
    """The reasons that put the client at risk anew: those not already standing.

    The coach hears once when a client becomes at risk or a new reason appears, not again
    at every check-in while the same reasons stand.
    """
    return [reason for reason in current if reason not in set(standing)]


def _kpi_off_track(latest: CheckInOutcome, kpis: Sequence[KpiSpec], goal_start: date,
                   goal_due: date) -> bool:
    expected = elapsed_share(goal_start, goal_due, latest.due_at)
    for kpi in kpis:
        value = latest.kpi_values.get(kpi.kpi_id)
        if value is None:
            continue
        progress = kpi_progress(kpi, value)
        if progress < 0 or progress < expected - KPI_LAG_TOLERANCE:
            return True
    return False


# -- Program metrics ---------------------------------------------------------------------------


def month_bounds(moment: datetime) -> tuple[datetime, datetime]:
    """The UTC calendar month containing `moment`: [first instant, first instant of next)."""
    start = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    days = calendar.monthrange(moment.year, moment.month)[1]
    return start, start + timedelta(days=days)


def month_start_after(moment: datetime, timezone: str) -> datetime:
    """The first instant (UTC) of the client's local month after the one holding `moment`:
    when that month's progress review falls due."""
    zone = ZoneInfo(timezone)
    year, month = _month_after(moment.astimezone(zone).date())
    return datetime(year, month, 1, tzinfo=zone).astimezone(UTC)


def local_month_before(month_end: datetime, timezone: str) -> tuple[str, datetime]:
    """The local month ending at a month boundary: its label (YYYY-MM) and first instant."""
    zone = ZoneInfo(timezone)
    inside = (month_end - timedelta(days=1)).astimezone(zone)
    start = datetime(inside.year, inside.month, 1, tzinfo=zone).astimezone(UTC)
    return f"{inside.year:04d}-{inside.month:02d}", start


def completion_rate(completed: int, missed: int) -> float | None:
    """Completed ÷ settled check-ins; None before any check-in was settled."""
    settled = completed + missed
    return round(completed / settled, 4) if settled else None


# -- Multi-rater (360) feedback ----------------------------------------------------------------


class RaterGroup(StrEnum):
    """Whose view a rater gives: results are shown per group, never per rater."""

    MANAGER = "manager"
    PEER = "peer"
    DIRECT_REPORT = "direct_report"
    OTHER = "other"


# With fewer answers a group's numbers could point at a person, so nothing of it is shown;
# the same holds for one competency within a group (raters may leave one unrated).
MIN_ANSWERS_PER_GROUP = 3
ALL_RATERS = "all_raters"


@dataclass(frozen=True)
class RaterAnswer:
    """One rater's answer: 1-5 ratings by competency (unrated ones left out), a comment."""

    group: RaterGroup
    ratings: dict[str, int]
    comment: str = ""


@dataclass(frozen=True)
class GroupResult:
    """What may be shown of a rater group: everything, or only that it has too few answers."""

    group: str
    qualifies: bool
    answers: int | None = None
    averages: dict[str, float | None] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)


def competency_averages(answers: Sequence[RaterAnswer],
                        competencies: Sequence[str]) -> dict[str, float | None]:
    """The mean rating per competency, None where fewer than the threshold rated it."""
    averages: dict[str, float | None] = {}
    for competency in competencies:
        ratings = [a.ratings[competency] for a in answers if competency in a.ratings]
        averages[competency] = (round(sum(ratings) / len(ratings), 2)
                                if len(ratings) >= MIN_ANSWERS_PER_GROUP else None)
    return averages


def group_result(group: str, answers: Sequence[RaterAnswer],
                 competencies: Sequence[str]) -> GroupResult:
    """A group's averages and comments if it has enough answers, else nothing at all."""
    if len(answers) < MIN_ANSWERS_PER_GROUP:
        return GroupResult(group=group, qualifies=False)
    # Sorted, so the order of comments says nothing about who answered when.
    comments = sorted(c for a in answers if (c := " ".join(a.comment.split())))
    return GroupResult(group=group, qualifies=True, answers=len(answers),
                       averages=competency_averages(answers, competencies), comments=comments)


def summarise_ratings(answers: Sequence[RaterAnswer], competencies: Sequence[str],
                      invited_groups: Sequence[RaterGroup]) -> list[GroupResult]:
    """The shareable results of a round: one entry per invited group, then all raters.

    "All raters" pools the qualifying groups only: pooling a group of one with others would
    let its answer be worked out by subtraction.
    """
    by_group: dict[RaterGroup, list[RaterAnswer]] = {group: [] for group in invited_groups}
    for answer in answers:
        by_group.setdefault(answer.group, []).append(answer)
    results = [group_result(group.value, by_group[group], competencies)
               for group in RaterGroup if group in by_group]
    pooled = [a for group, group_answers in by_group.items()
              if len(group_answers) >= MIN_ANSWERS_PER_GROUP for a in group_answers]
    overall = group_result(ALL_RATERS, pooled, competencies)
    # Comments are already shown with their group; repeating them here adds nothing.
    return [*results, GroupResult(overall.group, overall.qualifies, overall.answers,
                                  overall.averages)]


def qualifying_groups(results: Sequence[GroupResult]) -> int:
    """How many rater groups (not counting the pooled row) have enough answers to be shown."""
    return sum(1 for r in results if r.qualifies and r.group != ALL_RATERS)


def rater_token_hash(token: str) -> str:
    """What is stored of a rater's link token: the token itself never is."""
    return hashlib.sha256(f"rater-token|{token}".encode()).hexdigest()


def rater_response_key(token: str) -> str:
    """The key of a rater's answer: one answer per token, yet it cannot be traced back to
    the rater's record without the token, which nobody keeps."""
    return hashlib.sha256(f"rater-response|{token}".encode()).hexdigest()


def round_closes_at(now: datetime, requested: datetime | None, default_days: int,
                    max_days: int) -> datetime:
    """When a round closes: as requested (in the future, within the limit) or by default."""
    if requested is None:
        return now + timedelta(days=default_days)
    if requested.tzinfo is None:
        raise ValueError("closes_at needs a timezone")
    closes_at = requested.astimezone(UTC)
    if closes_at <= now:
        raise ValueError("closes_at must be in the future")
    if closes_at > now + timedelta(days=max_days):
        raise ValueError(f"a round stays open at most {max_days} days")
    return closes_at
