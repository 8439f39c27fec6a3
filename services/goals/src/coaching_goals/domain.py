"""Goal rules: pure functions, no I/O.

A goal moves `suggested` or `draft` -> `active` (the SMART check passed, or a coach overrode
it with a reason) -> `at_risk` / `active` as measurements come in -> `achieved`; any goal
that is not yet achieved may be `abandoned`. Every transition here returns the new goal and
the events it raised (`Outcome`); the repository stores both in one write.

The goal-template library for suggestions lives at the end of this module.
"""

from __future__ import annotations

import calendar
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from coaching_shared.contracts import (
    AssessmentCompleted,
    Direction,
    GoalAbandoned,
    GoalAchieved,
    GoalProgressUpdated,
    GoalSet,
    GoalSuggested,
    KpiProgress,
    KpiSpec,
)
from coaching_shared.events import Event, derived_event_id
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

MAX_KPIS = 10
MAX_ACTIONS = 50
MAX_PARENT_DEPTH = 3  # a goal, its parent, the parent's parent: deeper trees stop being plans


class GoalStatus(StrEnum):
    SUGGESTED = "suggested"
    DRAFT = "draft"
    ACTIVE = "active"
    AT_RISK = "at_risk"
    ACHIEVED = "achieved"
    ABANDONED = "abandoned"


EDITABLE = frozenset({GoalStatus.SUGGESTED, GoalStatus.DRAFT})
LIVE = frozenset({GoalStatus.ACTIVE, GoalStatus.AT_RISK})
OPEN = EDITABLE | LIVE


class ActionStatus(StrEnum):
    TODO = "todo"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    DROPPED = "dropped"


OPEN_ACTIONS = frozenset({ActionStatus.TODO, ActionStatus.IN_PROGRESS})


class RelevanceKind(StrEnum):
    DEVELOPMENT_AREA = "development_area"
    ASPIRATION = "aspiration"
    ASSESSMENT_RESULT = "assessment_result"


class GoalRuleError(Exception):
    """A request the goal rules refuse; subclasses say why."""


class InvalidGoal(GoalRuleError):
    """The goal or the change is not valid as given (HTTP 422)."""


class GoalStateConflict(GoalRuleError):
    """The goal's status does not allow this change (HTTP 409)."""


class OverrideNotAllowed(GoalRuleError):
    """Only the client's coach may override a failed SMART check (HTTP 403)."""


class SmartCheckFailed(GoalRuleError):
    """The goal did not pass the SMART check and nobody overrode it."""

    def __init__(self, check: SmartCheck) -> None:
        super().__init__("; ".join(letter.message for letter in check.failures))
        self.check = check


# -- the goal --------------------------------------------------------------------------------

_MODEL = ConfigDict(extra="ignore")


class KpiDraft(BaseModel):
    """A KPI as a client or coach writes it; the target may still be open in a draft."""

    model_config = ConfigDict(extra="forbid")

    kpi_id: str | None = Field(default=None, min_length=1, max_length=64,
                               pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = Field(min_length=1, max_length=200)
    unit: str = Field(default="", max_length=50)
    baseline: float = Field(allow_inf_nan=False)
    target: float | None = Field(default=None, allow_inf_nan=False)
    direction: Direction = Direction.UP
    frequency: str = Field(default="weekly", min_length=1, max_length=50)
    weight: float = Field(default=1.0, gt=0, le=100)


class Kpi(BaseModel):
    """A KPI of a goal and where it stands."""

    model_config = _MODEL

    kpi_id: str
    name: str
    unit: str = ""
    baseline: float
    target: float | None = None
    direction: Direction = Direction.UP
    frequency: str = "weekly"
    weight: float = 1.0
    latest_value: float | None = None
    latest_measured_at: datetime | None = None
    progress_percent: float = 0.0


class Relevance(BaseModel):
    """What the goal serves: a development area (scale id), an aspiration, an assessment."""

    model_config = ConfigDict(extra="forbid")

    kind: RelevanceKind
    ref: str = Field(min_length=1, max_length=300,
                     description="scale id, assessment id or the aspiration in words")

    def label(self) -> str:
        return f"{self.kind.value}:{self.ref}"


class Action(BaseModel):
    """An activity of the goal's action plan."""

    model_config = _MODEL

    action_id: str
    title: str
    impact: int = Field(ge=1, le=5)
    effort: int = Field(ge=1, le=5)
    due_date: date | None = None
    status: ActionStatus = ActionStatus.TODO
    created_at: datetime


class Measurement(BaseModel):
    """One reading of a KPI, from the API or from a check-in."""

    model_config = _MODEL

    measurement_id: str
    kpi_id: str
    value: float
    measured_at: datetime
    source: str = Field(description="api or checkin")
    reference: str | None = Field(default=None, description="the check-in it came with")

    @field_validator("measured_at")
    @classmethod
    def _in_utc(cls, moment: datetime) -> datetime:
        # A reading without a zone is taken as UTC, so all readings compare with each other.
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class ChildLink(BaseModel):
    """A child goal as its parent's roll-up sees it."""

    model_config = _MODEL

    goal_id: str
    weight: float = 1.0
    progress_percent: float = 0.0
    status: GoalStatus


class SmartOverride(BaseModel):
    model_config = _MODEL

    by: str
    reason: str
    at: datetime
    failed_letters: list[str]


class CheckInNote(BaseModel):
    """The latest check-in for the goal: its numbers only, never its content."""

    model_config = _MODEL

    checkin_id: str
    period: int
    confidence: int
    completed_at: datetime


def _distinct_kpi_ids(kpis: list[KpiDraft]) -> list[KpiDraft]:
    ids = [kpi.kpi_id for kpi in kpis if kpi.kpi_id is not None]
    if len(ids) != len(set(ids)):
        raise ValueError("kpi_id values must be distinct")
    return kpis


KpiDrafts = Annotated[list[KpiDraft], Field(max_length=MAX_KPIS),
                      AfterValidator(_distinct_kpi_ids)]


class GoalDraft(BaseModel):
    """A goal as a client or coach writes it (create); every field of the plan itself."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    kpis: KpiDrafts = Field(default_factory=list)
    start_date: date | None = None
    due_date: date | None = None
    relevant_to: Relevance | None = None
    parent_goal_id: str | None = Field(default=None, min_length=1, max_length=128)
    weight: float = Field(default=1.0, gt=0, le=100, description="weight in the parent's "
                          "roll-up")


class GoalEdit(BaseModel):
    """Changes to a goal that is not active yet; only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    kpis: KpiDrafts | None = None
    start_date: date | None = None
    due_date: date | None = None
    relevant_to: Relevance | None = None
    weight: float | None = Field(default=None, gt=0, le=100)

    @model_validator(mode="after")
    def _title_not_cleared(self) -> GoalEdit:
        if "title" in self.model_fields_set and self.title is None:
            raise ValueError("title cannot be removed")
        return self


class Goal(BaseModel):
    """A client's goal with its KPIs, action plan, measurements and status."""

    model_config = _MODEL

    tenant_id: str
    client_id: str
    goal_id: str
    status: GoalStatus
    title: str
    description: str = ""
    kpis: list[Kpi] = Field(default_factory=list)
    start_date: date | None = None
    due_date: date | None = None
    relevant_to: Relevance | None = None
    parent_goal_id: str | None = None
    weight: float = 1.0
    coach_id: str | None = None
    actions: list[Action] = Field(default_factory=list)
    measurements: list[Measurement] = Field(default_factory=list)
    children: list[ChildLink] = Field(default_factory=list)
    progress_percent: float = 0.0
    expected_percent: float = 0.0
    development_area: str | None = None
    source_assessment_id: str | None = None
    instrument_id: str | None = None
    template_id: str | None = None
    levers: list[str] = Field(default_factory=list)
    smart_override: SmartOverride | None = None
    last_checkin: CheckInNote | None = None
    created_by: str
    created_at: datetime
    updated_at: datetime
    activated_at: datetime | None = None
    achieved_at: datetime | None = None
    abandoned_at: datetime | None = None
    abandon_reason: str | None = None
    revision: int = 0

    def kpi(self, kpi_id: str) -> Kpi | None:
        return next((k for k in self.kpis if k.kpi_id == kpi_id), None)


@dataclass(frozen=True)
class Outcome:
    """A goal after a change, and the events the change raised (in publishing order)."""

    goal: Goal
    events: list[Event] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # why parts of the input had no effect


def _kpis_from_drafts(drafts: Sequence[KpiDraft]) -> list[Kpi]:
    """KPIs from drafts; a KPI without an id gets the first free `kpi-<n>`."""
    taken = {draft.kpi_id for draft in drafts if draft.kpi_id}
    free_ids = (f"kpi-{n}" for n in itertools.count(1) if f"kpi-{n}" not in taken)
    return [Kpi(**draft.model_dump(exclude={"kpi_id"}), kpi_id=draft.kpi_id or next(free_ids))
            for draft in drafts]


def draft_goal(draft: GoalDraft, *, tenant_id: str, client_id: str, goal_id: str,
               coach_id: str | None, created_by: str, at: datetime) -> Goal:
    """A new goal in `draft`, written by the client or their coach."""
    return Goal(tenant_id=tenant_id, client_id=client_id, goal_id=goal_id,
                status=GoalStatus.DRAFT, title=draft.title.strip(),
                description=draft.description.strip(), kpis=_kpis_from_drafts(draft.kpis),
                start_date=draft.start_date, due_date=draft.due_date,
                relevant_to=draft.relevant_to, parent_goal_id=draft.parent_goal_id,
                weight=draft.weight, coach_id=coach_id, created_by=created_by,
                created_at=at, updated_at=at)


def check_parent(child_client_id: str, parent: Goal | None, ancestors: int) -> None:
    """Refuse a parent goal that is missing, someone else's, closed or too deep."""
    if parent is None or parent.client_id != child_client_id:
        raise InvalidGoal("parent_goal_id: no such goal of this client")
    if parent.status in (GoalStatus.ABANDONED, GoalStatus.ACHIEVED):
        raise InvalidGoal(f"parent_goal_id: the parent goal is {parent.status.value}")
    if ancestors + 1 >= MAX_PARENT_DEPTH:
        raise InvalidGoal(f"parent_goal_id: goals nest at most {MAX_PARENT_DEPTH} levels deep")


def edit_goal(goal: Goal, edit: GoalEdit, at: datetime) -> Outcome:
    """Change a goal before it is active; an edited suggestion becomes the client's draft."""
    if goal.status not in EDITABLE:
        raise GoalStateConflict(f"a goal that is {goal.status.value} cannot be edited; "
                                "abandon it and set a new one")
    changes: dict[str, Any] = {name: getattr(edit, name) for name in edit.model_fields_set}
    if "kpis" in changes:
        changes["kpis"] = _kpis_from_drafts(edit.kpis or [])
    if "title" in changes:
        changes["title"] = changes["title"].strip()
    if "description" in changes:
        changes["description"] = (changes["description"] or "").strip()
    if changes.get("weight") is None:
        changes.pop("weight", None)
    return Outcome(goal.model_copy(update={**changes, "status": GoalStatus.DRAFT,
                                           "updated_at": at}))


# -- progress ------------------------------------------------------------------------------

def _percent(value: float) -> float:
    return round(min(100.0, max(0.0, value)), 2)


def target_reached(value: float, target: float, direction: Direction) -> bool:
    return value >= target if direction is Direction.UP else value <= target


def kpi_progress(baseline: float, target: float | None, direction: Direction,
                 value: float | None) -> float:
    """Share of the way from baseline to target, 0-100, in the KPI's direction.

    Overshooting the target counts as 100, moving the wrong way as 0. When baseline and
    target coincide there is no way to go: the KPI is at 100 once its value meets the target
    in its direction, else at 0.
    """
    if value is None or target is None:
        return 0.0
    if target == baseline:
        return 100.0 if target_reached(value, target, direction) else 0.0
    if direction is Direction.UP:
        return _percent((value - baseline) / (target - baseline) * 100)
    return _percent((baseline - value) / (baseline - target) * 100)


def weighted_progress(parts: Iterable[tuple[float, float]]) -> float:
    """Weighted mean of (progress, weight) pairs; 0 when there is nothing to weigh."""
    pairs = [(progress, weight) for progress, weight in parts if weight > 0]
    total = sum(weight for _, weight in pairs)
    if total == 0:
        return 0.0
    return _percent(sum(progress * weight for progress, weight in pairs) / total)


def goal_progress(kpis: Sequence[Kpi], children: Sequence[ChildLink] = ()) -> float:
    """A goal's progress: its KPIs and its child goals (roll-up), each by its weight.

    Abandoned children no longer count; an achieved child counts at 100.
    """
    parts = [(k.progress_percent, k.weight) for k in kpis]
    parts += [(100.0 if c.status is GoalStatus.ACHIEVED else c.progress_percent, c.weight)
              for c in children if c.status is not GoalStatus.ABANDONED]
    return weighted_progress(parts)


def expected_progress(start: date | None, due: date | None, as_of: date) -> float:
    """Where progress should be by now: the share of the goal's time elapsed, 0-100.

    A zero-length period (due on the start date) expects everything from its day on.
    """
    if start is None or due is None:
        return 0.0
    if due <= start:
        return 100.0 if as_of >= due else 0.0
    return _percent((as_of - start).days / (due - start).days * 100)


def progress_status(status: GoalStatus, progress: float, expected: float,
                    at_risk_margin: float) -> GoalStatus:
    """Achieved at 100%; at risk when progress lags the time elapsed by more than the margin.

    Achieved and abandoned are final; goals not active yet keep their status.
    """
    if status not in LIVE:
        return status
    if progress >= 100.0:
        return GoalStatus.ACHIEVED
    if progress < expected - at_risk_margin:
        return GoalStatus.AT_RISK
    return GoalStatus.ACTIVE


def _reassess(goal: Goal, as_of: datetime, at_risk_margin: float) -> Goal:
    """Recompute every KPI's progress, the goal's progress, expectation and status."""
    kpis = [k.model_copy(update={"progress_percent": kpi_progress(
        k.baseline, k.target, k.direction, k.latest_value)}) for k in goal.kpis]
    progress = goal_progress(kpis, goal.children)
    expected = expected_progress(goal.start_date, goal.due_date, as_of.date())
    status = progress_status(goal.status, progress, expected, at_risk_margin)
    update: dict[str, Any] = {"kpis": kpis, "progress_percent": progress,
                              "expected_percent": expected, "status": status}
    if status is GoalStatus.ACHIEVED and goal.status is not GoalStatus.ACHIEVED:
        update["achieved_at"] = as_of
    return goal.model_copy(update=update)


def _progress_events(before: Goal, after: Goal, as_of: datetime) -> list[Event]:
    base = {"tenant_id": after.tenant_id, "client_id": after.client_id,
            "goal_id": after.goal_id}
    events: list[Event] = [GoalProgressUpdated(
        **base, progress_percent=after.progress_percent,
        expected_percent=after.expected_percent, status=after.status.value,
        previous_status=before.status.value, parent_goal_id=after.parent_goal_id,
        measured_at=as_of,
        kpis=[KpiProgress(kpi_id=k.kpi_id, latest_value=k.latest_value,
                          progress_percent=k.progress_percent) for k in after.kpis])]
    if after.status is GoalStatus.ACHIEVED and before.status is not GoalStatus.ACHIEVED:
        events.append(GoalAchieved(**base, achieved_at=as_of))
    return events


def record_measurements(goal: Goal, readings: Sequence[Measurement], *, at_risk_margin: float,
                        kept: int) -> Outcome:
    """Take KPI readings into an active (or achieved) goal and move its progress.

    A reading already recorded (same measurement id) or for a KPI the goal does not have is
    skipped and reported in `ignored`. The latest reading by measurement time is a KPI's
    value, so a late-arriving older reading does not overwrite a newer one.
    """
    if goal.status not in LIVE and goal.status is not GoalStatus.ACHIEVED:
        raise GoalStateConflict(f"a goal that is {goal.status.value} takes no measurements")
    known = {m.measurement_id for m in goal.measurements}
    fresh, ignored = [], []
    for reading in readings:
        if reading.measurement_id in known:
            ignored.append(f"{reading.kpi_id}: already recorded")
        elif goal.kpi(reading.kpi_id) is None:
            ignored.append(f"{reading.kpi_id}: the goal has no such KPI")
        else:
            fresh.append(reading)
            known.add(reading.measurement_id)
    if not fresh:
        return Outcome(goal, [], ignored)
    history = sorted([*goal.measurements, *fresh], key=lambda m: m.measured_at)[-kept:]
    kpis = []
    for kpi in goal.kpis:
        newest = max((m for m in fresh if m.kpi_id == kpi.kpi_id), key=lambda m: m.measured_at,
                     default=None)
        if newest is not None and (kpi.latest_measured_at is None
                                   or newest.measured_at >= kpi.latest_measured_at):
            kpi = kpi.model_copy(update={"latest_value": newest.value,
                                         "latest_measured_at": newest.measured_at})
        kpis.append(kpi)
    as_of = max(m.measured_at for m in fresh)
    changed = goal.model_copy(update={"kpis": kpis, "measurements": history,
                                      "updated_at": as_of})
    after = _reassess(changed, as_of, at_risk_margin)
    return Outcome(after, _progress_events(goal, after, as_of), ignored)


def note_checkin(goal: Goal, note: CheckInNote) -> Goal:
    """Remember the latest check-in's numbers (a redelivered older one does not win)."""
    if goal.last_checkin is not None and goal.last_checkin.period > note.period:
        return goal
    return goal.model_copy(update={"last_checkin": note})


def record_child_progress(parent: Goal, child: Goal, *, at: datetime,
                          at_risk_margin: float) -> Outcome:
    """Roll a child goal's progress up into its parent."""
    link = ChildLink(goal_id=child.goal_id, weight=child.weight,
                     progress_percent=child.progress_percent, status=child.status)
    children = [c for c in parent.children if c.goal_id != child.goal_id]
    if child.status not in EDITABLE:  # drafts and suggestions do not count yet
        children.append(link)
    children.sort(key=lambda c: c.goal_id)
    if children == parent.children:
        return Outcome(parent)
    changed = parent.model_copy(update={"children": children, "updated_at": at})
    if parent.status not in LIVE:
        return Outcome(changed)
    after = _reassess(changed, at, at_risk_margin)
    return Outcome(after, _progress_events(parent, after, at))


# -- the SMART check -----------------------------------------------------------------------

class SmartLimits(BaseModel):
    """What a tenant's program counts as specific, achievable and time-bound."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_title_words: int = Field(default=3, ge=1, le=20)
    min_description_words: int = Field(default=8, ge=0, le=200)
    min_duration_days: int = Field(default=14, ge=1, le=365)
    max_duration_months: int = Field(default=12, ge=1, le=60)
    max_monthly_change_percent: float = Field(default=50.0, gt=0, le=10_000)
    max_total_change_percent: float = Field(default=200.0, gt=0, le=100_000)

    @model_validator(mode="after")
    def _consistent(self) -> SmartLimits:
        if self.min_duration_days > self.max_duration_months * 28:
            raise ValueError("min_duration_days must fit within max_duration_months")
        return self


class SmartLimitsChange(BaseModel):
    """An admin's change to the tenant's SMART limits; fields left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    min_title_words: int | None = Field(default=None, ge=1, le=20)
    min_description_words: int | None = Field(default=None, ge=0, le=200)
    min_duration_days: int | None = Field(default=None, ge=1, le=365)
    max_duration_months: int | None = Field(default=None, ge=1, le=60)
    max_monthly_change_percent: float | None = Field(default=None, gt=0, le=10_000)
    max_total_change_percent: float | None = Field(default=None, gt=0, le=100_000)


def effective_limits(defaults: SmartLimits, tenant_values: dict[str, Any]) -> SmartLimits:
    """The service defaults with a tenant's own values on top."""
    known = {k: v for k, v in tenant_values.items() if k in SmartLimits.model_fields}
    return SmartLimits.model_validate({**defaults.model_dump(), **known})


class SmartLetter(BaseModel):
    letter: str
    criterion: str
    passed: bool
    message: str


class SmartCheck(BaseModel):
    """The SMART check per letter, each with a sentence a coach can act on."""

    passed: bool
    letters: list[SmartLetter]
    limits: SmartLimits

    @property
    def failures(self) -> list[SmartLetter]:
        return [letter for letter in self.letters if not letter.passed]


@dataclass(frozen=True)
class SmartContext:
    """What the check knows about the client: areas and assessments a goal may serve."""

    development_areas: frozenset[str] = frozenset()
    assessment_ids: frozenset[str] = frozenset()


def _words(text: str) -> int:
    return len(re.findall(r"\w+", text))


def _span(days: int) -> str:
    """A duration as people say it: '5 days', '2 weeks', '30 months'."""
    if days < 14:
        return f"{days} day" + ("" if days == 1 else "s")
    if days < 61:
        return f"{round(days / 7)} weeks"
    return f"{round(days / 30.44)} months"


def add_months(start: date, months: int) -> date:
    """The same day `months` later (the month's last day where it is shorter)."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def _fmt(number: float) -> str:
    return f"{number:g}"


def _specific(goal: Goal, limits: SmartLimits) -> tuple[bool, str]:
    title_words, description_words = _words(goal.title), _words(goal.description)
    if title_words < limits.min_title_words:
        return False, (f"Specific: the title has {title_words} word(s); name what will change "
                       f"in at least {limits.min_title_words}")
    if description_words < limits.min_description_words:
        return False, (f"Specific: the description has {description_words} word(s); say what "
                       f"will be different, and where, in at least "
                       f"{limits.min_description_words}")
    return True, "Specific: the title and description say what will change"


def _measurable(goal: Goal) -> tuple[bool, str]:
    if not goal.kpis:
        return False, "Measurable: the goal has no KPI; add one with a baseline and a target"
    if all(k.target is None for k in goal.kpis):
        return False, "Measurable: no KPI has a numeric target"
    problems = []
    for k in goal.kpis:
        if k.target is None:
            problems.append(f"KPI '{k.name}' has no numeric target")
        elif k.target == k.baseline:
            problems.append(f"KPI '{k.name}' has its target equal to its baseline "
                            f"({_fmt(k.target)}), so no change can be measured")
        elif (k.target > k.baseline) != (k.direction is Direction.UP):
            way, side = ("up", "below") if k.direction is Direction.UP else ("down", "above")
            problems.append(f"KPI '{k.name}' should go {way}, but its target "
                            f"{_fmt(k.target)} is {side} its baseline {_fmt(k.baseline)}")
    if problems:
        return False, "Measurable: " + "; ".join(problems)
    return True, "Measurable: every KPI has a baseline and a target in its direction"


def _achievable(goal: Goal, limits: SmartLimits) -> tuple[bool, str]:
    changing = [k for k in goal.kpis if k.target is not None and k.baseline != 0
                and k.target != k.baseline]
    if not changing:
        return True, "Achievable: no KPI asks for a relative change that could be too steep"
    if goal.start_date is None or goal.due_date is None:
        return False, "Achievable: cannot be judged without a start and a due date"
    days = max(0, (goal.due_date - goal.start_date).days)
    allowed = min(limits.max_total_change_percent,
                  limits.max_monthly_change_percent * days / 30.44)
    problems = []
    for k in changing:
        change = abs(k.target - k.baseline) / abs(k.baseline) * 100  # type: ignore[operator]
        if change > allowed + 1e-9:
            problems.append(f"the target of '{k.name}' asks for a {change:.0f}% change in "
                            f"{_span(days)}; at most {allowed:.0f}% fits that time")
    if problems:
        return False, "Achievable: " + "; ".join(problems)
    return True, f"Achievable: the changes fit {_span(days)}"


def _relevant(goal: Goal, context: SmartContext) -> tuple[bool, str]:
    relevance = goal.relevant_to
    if relevance is None:
        return False, ("Relevant: link the goal to a development area, an aspiration or an "
                       "assessment result")
    if relevance.kind is RelevanceKind.DEVELOPMENT_AREA:
        if context.development_areas and relevance.ref not in context.development_areas:
            areas = ", ".join(sorted(context.development_areas))
            return False, (f"Relevant: '{relevance.ref}' is not among the client's development "
                           f"areas ({areas})")
        return True, f"Relevant: serves the development area '{relevance.ref}'"
    if relevance.kind is RelevanceKind.ASSESSMENT_RESULT:
        if relevance.ref not in context.assessment_ids:
            return False, f"Relevant: the client has no assessment result '{relevance.ref}'"
        return True, f"Relevant: builds on the assessment result '{relevance.ref}'"
    if _words(relevance.ref) < 3:
        return False, "Relevant: describe the aspiration the goal serves in 3 words or more"
    return True, "Relevant: serves the client's stated aspiration"


def _time_bound(goal: Goal, limits: SmartLimits, today: date) -> tuple[bool, str]:
    start, due = goal.start_date, goal.due_date
    if start is None or due is None:
        return False, "Time-bound: set a start and a due date"
    if due <= start:
        return False, "Time-bound: the due date must come after the start date"
    if due < today:
        return False, f"Time-bound: the due date {due.isoformat()} has already passed"
    days = (due - start).days
    if days < limits.min_duration_days:
        return False, (f"Time-bound: the goal lasts {_span(days)}; the program asks for at "
                       f"least {limits.min_duration_days} days")
    if due > add_months(start, limits.max_duration_months):
        return False, (f"Time-bound: due date is {round(days / 30.44)} months away; the "
                       f"program allows at most {limits.max_duration_months}")
    return True, f"Time-bound: due {due.isoformat()}, {_span(days)} after the start"


def smart_check(goal: Goal, limits: SmartLimits, today: date,
                context: SmartContext = SmartContext()) -> SmartCheck:
    """Check a goal letter by letter against the tenant's limits.

    Specific: title and description have enough words. Measurable: at least one KPI, each
    with a numeric target that differs from its baseline in the KPI's direction.
    Achievable: no KPI's relative change (|target - baseline| / |baseline|) exceeds the
    monthly limit times the goal's length in months, nor the overall limit. Relevant:
    linked to one of the client's development areas, one of their assessment results, or an
    aspiration in words. Time-bound: start before due, due not passed, the length between
    the minimum days and the maximum months.
    """
    verdicts = [("S", "Specific", _specific(goal, limits)),
                ("M", "Measurable", _measurable(goal)),
                ("A", "Achievable", _achievable(goal, limits)),
                ("R", "Relevant", _relevant(goal, context)),
                ("T", "Time-bound", _time_bound(goal, limits, today))]
    letters = [SmartLetter(letter=letter, criterion=criterion, passed=passed, message=message)
               for letter, criterion, (passed, message) in verdicts]
    return SmartCheck(passed=all(v.passed for v in letters), letters=letters, limits=limits)


def kpi_spec(kpi: Kpi) -> KpiSpec:
    """A KPI as events carry it (it must have a target by then)."""
    if kpi.target is None:
        raise InvalidGoal(f"KPI '{kpi.name}' needs a numeric target")
    return KpiSpec(kpi_id=kpi.kpi_id, name=kpi.name, unit=kpi.unit, baseline=kpi.baseline,
                   target=kpi.target, direction=kpi.direction, frequency=kpi.frequency,
                   weight=kpi.weight)


def activate_goal(goal: Goal, check: SmartCheck, *, by: str, by_coach: bool,
                  override_reason: str | None, coach_id: str | None, at: datetime,
                  at_risk_margin: float) -> Outcome:
    """Accept a suggestion or draft: it becomes active and raises `GoalSet`.

    Only when the SMART check passed, or the client's coach overrides it with a reason.
    Even an override cannot activate a goal without dates or without a KPI that has a
    numeric target: the events promise both.
    """
    if goal.status not in EDITABLE:
        raise GoalStateConflict(f"the goal is already {goal.status.value}")
    override = None
    if not check.passed:
        if override_reason is None:
            raise SmartCheckFailed(check)
        if not by_coach:
            raise OverrideNotAllowed("only the client's coach may override the SMART check")
        override = SmartOverride(by=by, reason=override_reason.strip(), at=at,
                                 failed_letters=[f.letter for f in check.failures])
    if goal.start_date is None or goal.due_date is None or goal.due_date < goal.start_date:
        raise InvalidGoal("a goal needs a start date and a due date on or after it to become "
                          "active")
    if not goal.kpis:
        raise InvalidGoal("a goal needs at least one KPI to become active")
    specs = [kpi_spec(k) for k in goal.kpis]
    activated = goal.model_copy(update={
        "status": GoalStatus.ACTIVE, "activated_at": at, "updated_at": at,
        "smart_override": override, "coach_id": coach_id})
    activated = _reassess(activated, at, at_risk_margin)
    # A goal measured at its target already (a KPI without a way to go) is achieved at once;
    # GoalSet goes first so a subscriber sees it before the progress and the achievement.
    events: list[Event] = [GoalSet(
        tenant_id=goal.tenant_id, client_id=goal.client_id, goal_id=goal.goal_id,
        title=goal.title, coach_id=coach_id, start_date=goal.start_date,
        due_date=goal.due_date, kpis=specs,
        relevant_to=goal.relevant_to.label() if goal.relevant_to else None,
        parent_goal_id=goal.parent_goal_id,
        smart_override_reason=override.reason if override else None)]
    if activated.status is GoalStatus.ACHIEVED:
        events += _progress_events(goal.model_copy(update={"status": GoalStatus.ACTIVE}),
                                   activated, at)
    return Outcome(activated, events)


def abandon_goal(goal: Goal, reason: str | None, at: datetime) -> Outcome:
    """Give a goal (or decline a suggestion) up; raises `GoalAbandoned`."""
    if goal.status is GoalStatus.ACHIEVED:
        raise GoalStateConflict("an achieved goal cannot be abandoned")
    if goal.status is GoalStatus.ABANDONED:
        raise GoalStateConflict("the goal is already abandoned")
    reason = reason.strip() if reason else None
    after = goal.model_copy(update={"status": GoalStatus.ABANDONED, "abandoned_at": at,
                                    "abandon_reason": reason, "updated_at": at})
    return Outcome(after, [GoalAbandoned(tenant_id=goal.tenant_id, client_id=goal.client_id,
                                         goal_id=goal.goal_id, abandoned_at=at,
                                         reason=reason)])


# -- action plans ----------------------------------------------------------------------------

class ActionDraft(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=300)
    impact: int = Field(ge=1, le=5, description="1 (little) to 5 (decisive)")
    effort: int = Field(ge=1, le=5, description="1 (an hour) to 5 (weeks of work)")
    due_date: date | None = None


class ActionChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=300)
    impact: int | None = Field(default=None, ge=1, le=5)
    effort: int | None = Field(default=None, ge=1, le=5)
    due_date: date | None = None
    status: ActionStatus | None = None


def add_action(goal: Goal, draft: ActionDraft, action_id: str, at: datetime) -> Outcome:
    """Add an activity to a goal's action plan."""
    if goal.status not in OPEN:
        raise GoalStateConflict(f"a goal that is {goal.status.value} takes no new actions")
    if len(goal.actions) >= MAX_ACTIONS:
        raise InvalidGoal(f"an action plan holds at most {MAX_ACTIONS} actions")
    action = Action(action_id=action_id, title=draft.title.strip(), impact=draft.impact,
                    effort=draft.effort, due_date=draft.due_date, created_at=at)
    return Outcome(goal.model_copy(update={"actions": [*goal.actions, action],
                                           "updated_at": at}))


def change_action(goal: Goal, action_id: str, change: ActionChange, at: datetime) -> Outcome:
    """Edit an action or move its status (todo, in progress, done, dropped)."""
    if goal.status not in OPEN:
        raise GoalStateConflict(f"the actions of a goal that is {goal.status.value} are closed")
    if not any(a.action_id == action_id for a in goal.actions):
        raise InvalidGoal(f"action_id: the goal has no action {action_id!r}")
    values = {name: getattr(change, name) for name in change.model_fields_set}
    for required in ("title", "impact", "effort", "status"):
        if required in values and values[required] is None:
            raise InvalidGoal(f"{required} cannot be removed")
    actions = [a.model_copy(update=values) if a.action_id == action_id else a
               for a in goal.actions]
    return Outcome(goal.model_copy(update={"actions": actions, "updated_at": at}))


def action_priority(impact: int, effort: int) -> int:
    """Impact times effort saved: 5 impact at effort 1 scores 25, 1 impact at effort 5 scores 1."""
    return impact * (6 - effort)


class NextAction(BaseModel):
    """An open action as the next-actions list shows it."""

    rank: int
    goal_id: str
    goal_title: str
    action_id: str
    title: str
    impact: int
    effort: int
    priority: int
    due_date: date | None
    status: ActionStatus
    overdue: bool


def action_rank_key(goal_id: str, action: Action) -> tuple[Any, ...]:
    """The documented ranking: high-impact, low-effort work first.

    1. priority = impact x (6 - effort), highest first;
    2. then higher impact (of equal priority, the bigger win);
    3. then lower effort;
    4. then the earlier due date (none last);
    5. then work already in progress before work not started;
    6. then the older action, then goal id and action id, so the order never wavers.
    """
    return (-action_priority(action.impact, action.effort), -action.impact, action.effort,
            action.due_date or date.max, action.status is not ActionStatus.IN_PROGRESS,
            action.created_at, goal_id, action.action_id)


def rank_next_actions(goals: Iterable[Goal], today: date, limit: int) -> list[NextAction]:
    """The client's open actions of live goals, ranked, at most `limit`."""
    candidates = [(goal, action) for goal in goals if goal.status in LIVE
                  for action in goal.actions if action.status in OPEN_ACTIONS]
    candidates.sort(key=lambda pair: action_rank_key(pair[0].goal_id, pair[1]))
    return [NextAction(rank=number, goal_id=goal.goal_id, goal_title=goal.title,
                       action_id=action.action_id, title=action.title, impact=action.impact,
                       effort=action.effort,
                       priority=action_priority(action.impact, action.effort),
                       due_date=action.due_date, status=action.status,
                       overdue=action.due_date is not None and action.due_date < today)
            for number, (goal, action) in enumerate(candidates[:limit], start=1)]


# -- suggestions from assessments ------------------------------------------------------------

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


@dataclass(frozen=True)
class KpiTemplate:
    name: str
    unit: str
    target: float
    frequency: str = "weekly"
    baseline: float = 0.0
    direction: Direction = Direction.UP


@dataclass(frozen=True)
class GoalTemplate:
    """A goal for one skill or trait: what to aim for, how to measure it, how to start.

    `lever` is how the same skill or trait helps with any other goal when it is a strength.
    `score_direction` says which way the assessment score should move (None: the scale is
    an interest, not something to raise).
    """

    template_id: str
    title: str
    description: str
    kpi: KpiTemplate
    actions: tuple[tuple[str, int, int], ...]  # (title, impact, effort)
    lever: str
    score_direction: Direction | None = Direction.UP


@dataclass(frozen=True)
class SuggestionRules:
    max_goals: int = 3
    weeks: int = 12
    score_gain_share: float = 0.2


def scale_key(scale_id: str) -> str:
    """Scale ids as the template library spells them: 'Active-Listening' -> active_listening."""
    return re.sub(r"[^a-z0-9]+", "_", scale_id.lower()).strip("_")


def instrument_family(instrument_id: str) -> str | None:
    """Which public framework an instrument id belongs to, if it says so."""
    key = scale_key(instrument_id)
    if re.search(r"big_?five|bfi|ipip|ocean|personality", key):
        return "big_five"
    if re.search(r"riasec|holland|interest", key):
        return "riasec"
    if re.search(r"skill|onet", key):
        return "skills"
    return None


# Single-letter scale ids mean different things per framework (C: conscientious, conventional).
_LETTER_ALIASES = {
    "big_five": {"o": "openness", "c": "conscientiousness", "e": "extraversion",
                 "a": "agreeableness", "n": "neuroticism"},
    "riasec": {"r": "realistic", "i": "investigative", "a": "artistic", "s": "social",
               "e": "enterprising", "c": "conventional"},
}
_ALIASES = {"openness_to_experience": "openness", "intellect": "openness",
            "extroversion": "extraversion", "negative_emotionality": "neuroticism",
            "stability": "emotional_stability"}


def find_template(instrument_id: str, scale_id: str) -> GoalTemplate | None:
    """The library's template for a scale, or None for scales it does not know."""
    key = scale_key(scale_id)
    family = instrument_family(instrument_id)
    key = _LETTER_ALIASES.get(family or "", {}).get(key, key)
    key = _ALIASES.get(key, key)
    return TEMPLATES.get(key)


def humanize(scale_id: str) -> str:
    return scale_key(scale_id).replace("_", " ") or scale_id


def generic_template(label: str) -> GoalTemplate:
    """For a scale the library does not know (e.g. a tenant's own instrument)."""
    return GoalTemplate(
        template_id="generic",
        title=f"Strengthen your {label}",
        description=(f"Build {label} through short, regular practice on real work, feedback "
                     "from people who see that work, and a weekly look at what changed."),
        kpi=KpiTemplate(f"Practice sessions on {label}", "sessions per week", 3),
        actions=((f"Ask two colleagues for one recent example each of where your {label} "
                  "helped or held you back", 5, 2),
                 ("Block three 30-minute practice slots a week in your calendar", 4, 1),
                 (f"Agree with your coach what good {label} looks like in your role", 4, 2)),
        lever=f"Put your {label} to work on this goal: plan one task where it carries you")


def _normalized(score: Any) -> float | None:
    span = score["maximum"] - score["minimum"]
    return (score["score"] - score["minimum"]) / span if span > 0 else None


def _score_kpi(template: GoalTemplate, score: dict[str, Any] | None,
               gain_share: float) -> Kpi | None:
    """A KPI to move the assessment score itself, re-measured at the next assessment."""
    if template.score_direction is None or score is None:
        return None
    gain = gain_share * (score["maximum"] - score["minimum"])
    if template.score_direction is Direction.UP:
        target = min(score["maximum"], score["score"] + gain)
    else:
        target = max(score["minimum"], score["score"] - gain)
    if target == score["score"]:
        return None  # already at the end of the scale: nothing left to move
    return Kpi(kpi_id="kpi-score", name=f"{score['label']} score", unit="points",
               baseline=score["score"], target=round(target, 2),
               direction=template.score_direction, frequency="at re-assessment")


def _lever_action(instrument_id: str, strength: str, label: str) -> str:
    template = find_template(instrument_id, strength) or generic_template(label)
    return template.lever


def suggest_goals(assessment: dict[str, Any], *, tenant_id: str, client_id: str,
                  skip_areas: set[str], rules: SuggestionRules, at: datetime,
                  ) -> list[Goal]:
    """Draft goals for an assessment's development areas, with the strengths as levers.

    `assessment` is what `assessment_basis` kept. The weakest areas (lowest share of their
    scale) come first, at most `rules.max_goals`; areas in `skip_areas` (the client already
    has an open goal for them) are left out. Unknown scales get the generic template, never
    an error. Goal and action ids derive from the assessment, so the same assessment always
    drafts the same goals.
    """
    scores = {s["scale_id"]: s for s in assessment.get("scores", [])}
    instrument = assessment["instrument_id"]

    def label_of(scale_id: str) -> str:
        score = scores.get(scale_id)
        return score["label"].strip() if score and score["label"].strip() else humanize(
            scale_id)

    def weakness(area: tuple[int, str]) -> tuple[float, int]:
        position, scale_id = area
        score = scores.get(scale_id)
        share = _normalized(score) if score else None
        return (share if share is not None else 1.0, position)

    def strength_rank(strength: tuple[int, str]) -> tuple[float, int]:
        position, scale_id = strength
        share = _normalized(scores[scale_id]) if scale_id in scores else None
        return (-(share if share is not None else 0.0), position)

    areas = [scale_id for _, scale_id in sorted(
        enumerate(dict.fromkeys(assessment.get("development_areas", []))), key=weakness)
        if scale_id not in skip_areas][:rules.max_goals]
    strengths = [scale_id for _, scale_id in sorted(
        enumerate(dict.fromkeys(assessment.get("strengths", []))), key=strength_rank)][:2]
    start = at.date()
    due = start + timedelta(weeks=rules.weeks)
    goals = []
    for area in areas:
        template = find_template(instrument, area) or generic_template(label_of(area))
        goal_id = derived_event_id(
            f"{tenant_id}|{client_id}|{assessment['assessment_id']}|{area}", "suggested-goal")
        kpt = template.kpi
        kpis = [Kpi(kpi_id="kpi-practice", name=kpt.name, unit=kpt.unit,
                    baseline=kpt.baseline, target=kpt.target, direction=kpt.direction,
                    frequency=kpt.frequency)]
        score_kpi = _score_kpi(template, scores.get(area), rules.score_gain_share)
        if score_kpi is not None:
            kpis.append(score_kpi)
        plan = list(template.actions)
        plan += [(_lever_action(instrument, s, label_of(s)), 4, 2) for s in strengths]
        actions = [Action(action_id=f"{goal_id[:8]}-a{n}", title=title, impact=impact,
                          effort=effort, created_at=at)
                   for n, (title, impact, effort) in enumerate(plan, start=1)]
        goals.append(Goal(
            tenant_id=tenant_id, client_id=client_id, goal_id=goal_id,
            status=GoalStatus.SUGGESTED, title=template.title,
            description=template.description, kpis=kpis, start_date=start, due_date=due,
            relevant_to=Relevance(kind=RelevanceKind.DEVELOPMENT_AREA, ref=area),
            actions=actions, development_area=area,
            source_assessment_id=assessment["assessment_id"], instrument_id=instrument,
            template_id=template.template_id, levers=strengths, created_by="assessment",
            created_at=at, updated_at=at))
    return goals


def suggestion_event(goal: Goal) -> GoalSuggested:
    """What subscribers learn about a suggested goal."""
    ranked = sorted(goal.actions, key=lambda a: action_rank_key(goal.goal_id, a))
    return GoalSuggested(
        tenant_id=goal.tenant_id, client_id=goal.client_id, goal_id=goal.goal_id,
        title=goal.title, development_area=goal.development_area or "",
        source_assessment_id=goal.source_assessment_id or "",
        kpis=[kpi_spec(k) for k in goal.kpis], first_actions=[a.title for a in ranked],
        instrument_id=goal.instrument_id, template_id=goal.template_id, levers=goal.levers,
        start_date=goal.start_date, due_date=goal.due_date)


# -- the goal-template library ---------------------------------------------------------------
# One template per O*NET skill (all 35: Basic, Social, Complex Problem Solving, Technical,
# Systems and Resource Management skills), per Big Five factor and per RIASEC interest area. The
# texts are ours; only the framework names and scale definitions are public.

def _skill(key: str, title: str, description: str, kpi: KpiTemplate,
           actions: tuple[tuple[str, int, int], ...], lever: str) -> GoalTemplate:
    return GoalTemplate(f"onet.{key}", title, description, kpi, actions, lever)


_SKILLS = [
    _skill("reading_comprehension", "Get more out of dense work documents on the first read",
           "Understand contracts, specifications and reports on the first pass and act on "
           "them without needing them explained.",
           KpiTemplate("Dense documents summarised and confirmed by their author",
                       "documents per week", 2),
           (("Summarise one dense document a week in five sentences and ask its author "
             "whether you got it right", 5, 2),
            ("Before reading, write down the three questions the document must answer", 4, 1),
            ("Keep a glossary of the terms of your field you had to look up", 2, 1)),
           "Use your reading: find the best written guide on this goal's topic and pull "
           "three practices from it"),
    _skill("active_listening", "Listen so that people feel understood",
           "Give full attention in conversations, ask before answering, and check your "
           "understanding before you act on what you heard.",
           KpiTemplate("Conversations closed with a summary the other person confirmed",
                       "conversations per week", 5),
           (("In every one-to-one, summarise what you heard before you reply", 5, 1),
            ("Ask one colleague a month to rate how well you understood their request", 4, 2),
            ("Keep laptop and phone closed in the first ten minutes of each meeting", 3, 1)),
           "Use your listening: interview two people who do this well and note how they "
           "go about it"),
    _skill("writing", "Write messages that get the intended result the first time",
           "Produce clear emails, proposals and documentation that readers act on without "
           "follow-up questions.",
           KpiTemplate("Important messages sent without a clarifying question back",
                       "messages per week", 4),
           (("Put the decision or request in the first sentence of every important message",
             5, 1),
            ("Have one document a fortnight reviewed by a strong writer and apply the notes",
             4, 3),
            ("Cut every draft by a fifth before sending", 3, 1)),
           "Use your writing: write a one-page plan for this goal and share it with your "
           "coach"),
    _skill("speaking", "Speak with clarity and impact in meetings and presentations",
           "Present ideas so that listeners remember the message and know what is asked "
           "of them.",
           KpiTemplate("Contributions or presentations with a clear ask", "per week", 3),
           (("Prepare a three-sentence message before every meeting you speak in", 5, 1),
            ("Record one presentation a month and review it with your coach", 4, 3),
            ("Volunteer to present your team's update once a month", 4, 2)),
           "Use your speaking: tell your team about this goal and ask who can help"),
    _skill("mathematics", "Use numbers confidently in your work decisions",
           "Work out the figures behind your decisions yourself and explain them so "
           "others trust them.",
           KpiTemplate("Decisions backed by your own calculation", "per month", 4, "monthly"),
           (("Rebuild one report's key figure from the raw data each month", 5, 3),
            ("Complete one short course module on practical statistics a week", 3, 2),
            ("Ask a numerate colleague to check your calculations and explain any gaps",
             4, 1)),
           "Use your numeracy: put a number on this goal's starting point and track it "
           "weekly"),
    _skill("science", "Test ideas at work with simple experiments",
           "Replace opinion with evidence: state a hypothesis, test it cheaply and decide on "
           "the result.",
           KpiTemplate("Small experiments run and written up", "per month", 2, "monthly"),
           (("Write down one assumption behind a current decision and design a test", 5, 2),
            ("Share each experiment's result, including failed ones, with your team", 4, 1),
            ("Read one study relevant to your field a month", 2, 2)),
           "Use your scientific habit: treat this goal's actions as experiments and record "
           "what each changed"),
    _skill("critical_thinking", "Weigh options on evidence before deciding",
           "Name the assumptions, alternatives and evidence behind important decisions so "
           "they hold up when questioned.",
           KpiTemplate("Decisions documented with two options and their evidence",
                       "decisions per week", 2),
           (("For each significant decision, write two alternatives and what would make each "
             "right", 5, 2),
            ("Ask a colleague to argue against your next proposal before you present it", 4, 1),
            ("Review one past decision a month: what did you know, what did you miss", 3, 2)),
           "Use your critical thinking: question the assumptions of this goal's plan with "
           "your coach"),
    _skill("active_learning", "Turn new information into better work quickly",
           "Seek out what is new in your field and apply it to current problems within days, "
           "not months.",
           KpiTemplate("New ideas applied to real work", "per month", 3, "monthly"),
           (("Each week, apply one thing you learnt to a task and note the effect", 5, 2),
            ("Keep a learning log and review it with your coach monthly", 3, 1),
            ("Pair with an expert for one hour a month on a problem you are stuck on", 4, 2)),
           "Use your learning speed: pick the one skill this goal needs most and study it "
           "first"),
    _skill("learning_strategies", "Learn and teach with methods that work",
           "Choose how to learn a new skill (practice, examples, feedback) deliberately, and "
           "help others do the same.",
           KpiTemplate("Learning goals set and completed", "per month", 2, "monthly"),
           (("Break the next skill you need into parts and practise the weakest part first",
             5, 2),
            ("Use spaced repetition for facts you must remember", 3, 1),
            ("Explain something you learnt to a colleague each week", 4, 1)),
           "Use your learning strategies: design the practice plan for this goal in short, "
           "spaced steps"),
    _skill("monitoring", "Spot problems early by tracking your own performance",
           "Keep an eye on the results of your work and your team's, and correct course "
           "before others notice.",
           KpiTemplate("Weekly reviews of your key measures done", "reviews per month", 4,
                       "monthly"),
           (("Pick three measures of your work and check them every Friday", 5, 1),
            ("Set an alert or reminder for each deadline one week ahead", 3, 1),
            ("Ask for feedback right after each delivery rather than at review time", 4, 2)),
           "Use your monitoring: set up the weekly check of this goal's KPI yourself"),
    _skill("social_perceptiveness", "Read how others react and adapt your approach",
           "Notice how colleagues and clients respond and understand why, so you can adjust "
           "before friction grows.",
           KpiTemplate("Conversations where you checked a reaction you noticed",
                       "per week", 3),
           (("After each key meeting, note who seemed unconvinced and ask them privately", 5,
             2),
            ("Ask a trusted colleague what they saw in a meeting you both attended", 4, 1),
            ("Watch for one non-verbal signal per meeting and check your reading of it", 3, 1)),
           "Use your perceptiveness: notice who reacts to this goal's changes and win them "
           "over early"),
    _skill("coordination", "Keep joint work in step with the people around you",
           "Align your actions with others' so that hand-offs are smooth and nobody waits "
           "on anybody.",
           KpiTemplate("Hand-offs completed without a delay", "percent", 90, "monthly", 60),
           (("Agree dates and owners for every hand-off in writing", 5, 1),
            ("Hold a 15-minute weekly sync with the people you depend on", 4, 2),
            ("Map who waits on whom in your current project and share the map", 4, 2)),
           "Use your coordination: line up the people this goal depends on in one short "
           "meeting"),
    _skill("persuasion", "Win support for your proposals",
           "Bring people round to a change by understanding what matters to them and "
           "showing how the proposal serves it.",
           KpiTemplate("Proposals accepted", "per month", 2, "monthly"),
           (("Before proposing, ask each decision-maker what they would need to say yes",
             5, 2),
            ("Build every proposal around the other side's goal, not yours", 4, 1),
            ("Review one rejected proposal with your coach: what would have convinced them",
             3, 2)),
           "Use your persuasion: win one sponsor for this goal who can open doors"),
    _skill("negotiation", "Reach agreements that both sides keep",
           "Prepare negotiations, understand the other side's interests and close deals "
           "that last.",
           KpiTemplate("Negotiations prepared with a written walk-away point", "per month", 2,
                       "monthly"),
           (("Write your walk-away point and the other side's likely interests before each "
             "negotiation", 5, 1),
            ("Role-play one upcoming negotiation with your coach", 4, 2),
            ("After each negotiation, note what you conceded and what you got for it", 3, 1)),
           "Use your negotiating skill: agree the time and support this goal needs with your "
           "manager"),
    _skill("instructing", "Teach others so they can work without you",
           "Show colleagues how to do things well, check they can, and step back.",
           KpiTemplate("Tasks handed over after teaching", "per month", 2, "monthly"),
           (("Pick one task only you can do and teach it to a colleague this month", 5, 3),
            ("Write a one-page guide for a task you explain often", 4, 2),
            ("After teaching, ask the learner to show you rather than tell you", 3, 1)),
           "Use your teaching: explain what you are learning for this goal to a colleague; "
           "it fixes it for you too"),
    _skill("service_orientation", "Anticipate what the people you serve need",
           "Look for ways to help clients and colleagues before they ask, and follow up "
           "until the need is met.",
           KpiTemplate("Requests resolved at the first contact", "percent", 80, "monthly", 50),
           (("Call back every open request within one working day", 5, 1),
            ("Ask three of the people you serve what would make their work easier", 4, 2),
            ("Track the requests you see repeatedly and fix one cause a month", 5, 3)),
           "Use your service orientation: ask the people this goal affects what would help "
           "them most"),
    _skill("complex_problem_solving", "Solve messy problems in structured steps",
           "Break unclear, many-sided problems into parts, weigh the options and carry a "
           "solution through.",
           KpiTemplate("Problems taken from definition to an agreed solution", "per month", 2,
                       "monthly"),
           (("Write a one-paragraph problem statement before discussing solutions", 5, 1),
            ("Lay out at least three options with their trade-offs for each hard problem",
             4, 2),
            ("Review a solved problem a month: which step took longest and why", 3, 1)),
           "Use your problem solving: break this goal into sub-problems and attack the "
           "hardest one first"),
    _skill("judgment_and_decision_making", "Make timely decisions and stand by them",
           "Decide on the information available, weighing costs and benefits, instead of "
           "waiting for certainty.",
           KpiTemplate("Decisions made by the agreed date", "percent", 90, "monthly", 60),
           (("Set a decision date for every open question and keep it", 5, 1),
            ("Write costs and benefits of each option in a short decision note", 4, 2),
            ("Review decisions a quarter later to calibrate your judgment", 3, 2)),
           "Use your judgment: decide early which action of this plan gives the most"),
    _skill("systems_analysis", "Understand how your part of the system works",
           "Work out how changes in conditions, processes or people affect the outcomes you "
           "are responsible for.",
           KpiTemplate("Process maps drawn and validated with the people in them",
                       "per quarter", 2, "monthly"),
           (("Map one process you rely on end to end and validate it with its owners", 5, 3),
            ("For each change you propose, list which other teams it affects", 4, 1),
            ("Ask why five times on the next recurring issue", 3, 1)),
           "Use your systems thinking: map what helps and blocks this goal before you start"),
    _skill("systems_evaluation", "Measure how well the system you run performs",
           "Define measures of how a process or team performs and act on what they show.",
           KpiTemplate("Measures defined and reviewed with stakeholders", "per quarter", 3,
                       "monthly"),
           (("Define two measures for a process you own and review them monthly", 5, 2),
            ("Compare your measures with a peer team's and discuss the gap", 4, 2),
            ("Retire one measure nobody acts on", 2, 1)),
           "Use your eye for measures: choose the KPI of this goal with care and review it "
           "weekly"),
    _skill("time_management", "Protect time for the work that matters most",
           "Plan your week around priorities, protect focus time and deliver on the dates "
           "you promise.",
           KpiTemplate("Hours of protected focus time", "hours per week", 6),
           (("Block two 90-minute focus slots in your calendar each week", 5, 1),
            ("Plan next week on Friday: three outcomes, nothing more", 4, 1),
            ("Decline or delegate one recurring meeting that does not need you", 4, 2)),
           "Use your time management: schedule every action of this goal in your calendar "
           "today"),
    _skill("management_of_financial_resources", "Spend the budget you manage on what pays off",
           "Plan, track and justify spending so the money you control delivers the most.",
           KpiTemplate("Budget lines reviewed against their results", "per month", 4,
                       "monthly"),
           (("Review your budget against actuals every month", 5, 2),
            ("Write the expected return of every spending request above a threshold", 4, 2),
            ("Ask finance to walk you through how your budget is built", 3, 1)),
           "Use your financial sense: work out what this goal is worth to your team"),
    _skill("management_of_material_resources", "Get the right equipment and materials in "
           "place on time",
           "See to it that facilities, equipment and materials are available when the work "
           "needs them.",
           KpiTemplate("Work days lost to missing materials", "days per month", 0, "monthly",
                       4, Direction.DOWN),
           (("List the materials each upcoming job needs a week ahead", 5, 1),
            ("Agree reorder points with your suppliers for the five most used items", 4, 2),
            ("Record each shortage and its cause", 3, 1)),
           "Use your resourcefulness: make sure what this goal needs is in place before "
           "you start"),
    _skill("management_of_personnel_resources", "Bring out the best in the people you lead",
           "Motivate, develop and direct people, and match the work to their strengths.",
           KpiTemplate("Development conversations held with team members",
                       "conversations per month", 4, "monthly"),
           (("Hold a monthly development conversation with each direct report", 5, 2),
            ("Match the next assignment to the person who will grow most from it", 4, 2),
            ("Recognise one specific contribution in public each week", 3, 1)),
           "Use your people skills: recruit a colleague to pursue this goal alongside you"),
    _skill("quality_control_analysis", "Catch quality problems before they leave your desk",
           "Inspect and test your work products so that errors are found by you, not by "
           "the people who receive them.",
           KpiTemplate("Defects found after delivery", "per month", 1, "monthly", 5,
                       Direction.DOWN),
           (("Write a checklist for your most common deliverable and use it every time", 5, 1),
            ("Trace each defect found after delivery to its cause", 4, 2),
            ("Ask a peer to review your work before each major delivery", 4, 2)),
           "Use your eye for quality: define what done looks like for each action of this "
           "goal"),
    _skill("troubleshooting", "Find the cause of faults quickly and surely",
           "Diagnose what causes operating errors and decide what to do about them, "
           "methodically instead of by trial and error.",
           KpiTemplate("Faults diagnosed to a confirmed root cause", "per month", 4, "monthly"),
           (("Write down your hypothesis before each fix and check it afterwards", 5, 1),
            ("Keep a fault log with symptoms, causes and fixes", 4, 1),
            ("Pair with the best troubleshooter you know on the next hard fault", 4, 2)),
           "Use your troubleshooting: when this goal stalls, diagnose the cause before "
           "pushing harder"),
    _skill("operations_analysis", "Turn users' needs into clear requirements",
           "Analyse what a product or service must do for the people who use it, and write "
           "it down so it can be built and checked.",
           KpiTemplate("Requirements accepted without rework", "per month", 4, "monthly"),
           (("Watch two users do the task you are specifying before you write a line", 5, 2),
            ("Write acceptance criteria for each requirement and review them with a user",
             4, 2),
            ("Track which requirements changed after sign-off and why", 3, 1)),
           "Use your analysis: write down what success of this goal looks like to the people "
           "it affects"),
    _skill("technology_design", "Design tools and solutions that fit the job",
           "Create or adapt equipment and technology to what users need, and test the "
           "designs with them.",
           KpiTemplate("Design options tested with users", "per month", 2, "monthly"),
           (("Sketch three options before choosing a design", 5, 1),
            ("Test a rough prototype with one user a week", 5, 3),
            ("Study one well-designed tool in your field and note why it works", 2, 1)),
           "Use your design skill: build a simple tool that makes this goal's practice easier"),
    _skill("equipment_selection", "Choose the right tools for the work",
           "Decide which equipment and tools a job needs by comparing options against the "
           "work, the cost and the people using them.",
           KpiTemplate("Tool choices made with a written comparison", "per quarter", 2,
                       "monthly"),
           (("Write the job's requirements before looking at any product", 5, 1),
            ("Compare at least two options on cost, fit and support", 4, 2),
            ("Ask the people who will use the tool to try it first", 4, 2)),
           "Use your eye for tools: pick the tool that will make this goal's routine easiest"),
    _skill("installation", "Install equipment and systems right the first time",
           "Install machines, wiring or software to specification so they work at hand-over "
           "without call-backs.",
           KpiTemplate("Installations needing a call-back", "per month", 0, "monthly", 3,
                       Direction.DOWN),
           (("Use the manufacturer's checklist on every installation and sign it off", 5, 1),
            ("Test every installation with the user present before leaving", 4, 2),
            ("Record the cause of each call-back", 3, 1)),
           "Use your installer's thoroughness: set up everything this goal needs before "
           "week one"),
    _skill("operations_monitoring", "Keep watch on the systems you operate",
           "Watch gauges, dials and dashboards so that machines and systems run as they "
           "should, and act on the first sign of trouble.",
           KpiTemplate("Incidents you spotted before they escalated", "percent", 80, "monthly",
                       40),
           (("Agree the three readings that matter most and check them at set times", 5, 1),
            ("Write down what you do when each reading leaves its range", 4, 2),
            ("Review each missed warning sign with the team", 4, 2)),
           "Use your vigilance: check this goal's KPI on a fixed day each week"),
    _skill("operation_and_control", "Operate equipment and systems with full control",
           "Run machines, vehicles or systems safely and precisely, in normal and unusual "
           "conditions.",
           KpiTemplate("Supervised practice hours on unusual situations", "hours per month", 4,
                       "monthly"),
           (("Practise one abnormal situation a month with an experienced operator", 5, 3),
            ("Read the operating procedure for a task you rarely do", 3, 1),
            ("Log each near miss and what caused it", 4, 1)),
           "Use your steadiness at the controls: run this goal's practice as a fixed drill"),
    _skill("equipment_maintenance", "Maintain equipment before it fails",
           "Carry out routine maintenance on schedule and know when equipment needs it, so "
           "breakdowns become rare.",
           KpiTemplate("Unplanned breakdowns", "per month", 1, "monthly", 4, Direction.DOWN),
           (("Put every maintenance task on a written schedule and keep it", 5, 1),
            ("Inspect the equipment that failed last quarter for early signs", 4, 2),
            ("Keep the parts that wear fastest in stock", 3, 2)),
           "Use your maintenance discipline: keep this goal's routine going like a service "
           "schedule"),
    _skill("repairing", "Repair faults quickly and lastingly",
           "Fix machines and systems with the right tools, so the same fault does not come "
           "back.",
           KpiTemplate("Repairs that held for 30 days", "percent", 90, "monthly", 60),
           (("Check each repair again after a week", 5, 1),
            ("Keep a log of repeat faults and their real causes", 4, 1),
            ("Learn one new repair technique a month from a senior technician", 3, 3)),
           "Use your repair skills: fix what gets in the way of this goal first"),
    _skill("programming", "Write code that others can read, test and trust",
           "Write programs that work, are tested and can be changed safely by colleagues.",
           KpiTemplate("Changes merged with tests", "changes per week", 3),
           (("Write a test before each bug fix", 5, 1),
            ("Ask for review on one change a week from a stronger programmer", 4, 2),
            ("Refactor one confusing piece of code a month", 3, 3)),
           "Use your programming: automate the tracking of this goal's KPI"),
]

_BIG_FIVE = [
    GoalTemplate(
        "big_five.openness", "Try new approaches in your work",
        "Experiment with unfamiliar methods, ideas and perspectives, and keep what works.",
        KpiTemplate("New approaches tried and reviewed", "per month", 2, "monthly"),
        (("Try one unfamiliar way of doing a routine task each fortnight", 5, 2),
         ("Spend an hour a month with a team whose work differs from yours", 4, 2),
         ("Note one idea a week from outside your field that could apply to it", 3, 1)),
        "Use your openness: look for an unusual way to reach this goal and try it first"),
    GoalTemplate(
        "big_five.conscientiousness", "Keep your commitments with a simple planning routine",
        "Plan the week, break large tasks into steps and finish what you start by the date "
        "you promised.",
        KpiTemplate("Commitments delivered on the promised date", "percent", 85, "weekly", 50),
        (("Write down every commitment with its date the moment you make it", 5, 1),
         ("Plan the next week every Friday in fifteen minutes", 5, 1),
         ("Split each task longer than a day into steps of two hours or less", 4, 2)),
        "Use your conscientiousness: plan this goal's actions week by week and keep the "
        "plan in view"),
    GoalTemplate(
        "big_five.extraversion", "Make your voice heard in meetings and networks",
        "Speak up with your ideas, start conversations and build the relationships your "
        "work needs.",
        KpiTemplate("Contributions made in meetings", "per week", 3),
        (("Prepare one point to make before every meeting", 5, 1),
         ("Meet one person outside your team for coffee each fortnight", 4, 2),
         ("Ask to present your own work once a month", 4, 3)),
        "Use your energy with people: find allies for this goal and talk it through with "
        "them"),
    GoalTemplate(
        "big_five.agreeableness", "Build cooperative working relationships",
        "Take others' views into account, look for solutions both sides can accept and "
        "give credit generously.",
        KpiTemplate("Decisions where you sought others' views first", "per week", 3),
        (("Ask for the other person's view before giving yours in disagreements", 5, 1),
         ("Thank one colleague a week for a specific contribution", 3, 1),
         ("Ask a colleague you clash with what they need from you", 5, 3)),
        "Use your cooperativeness: ask the people around you to help with this goal"),
    GoalTemplate(
        "big_five.neuroticism", "Stay steady under pressure",
        "Notice stress early, keep a routine that restores you and respond to setbacks "
        "with a plan rather than worry.",
        KpiTemplate("Pressure situations handled with your plan", "per week", 3),
        (("Write a short plan for your three most stressful recurring situations", 5, 2),
         ("Take a five-minute break after each difficult meeting", 4, 1),
         ("Talk through one worry a week with your coach or a trusted colleague", 4, 1)),
        "Use your calm: keep this goal moving when work gets hectic",
        Direction.DOWN),
]
_EMOTIONAL_STABILITY = GoalTemplate(
    "big_five.emotional_stability", _BIG_FIVE[4].title, _BIG_FIVE[4].description,
    _BIG_FIVE[4].kpi, _BIG_FIVE[4].actions, _BIG_FIVE[4].lever, Direction.UP)


def _interest(key: str, kind: str, example: str) -> GoalTemplate:
    """RIASEC areas are interests, not skills: the goal is to explore, not to score higher."""
    return GoalTemplate(
        f"riasec.{key}", f"Explore {kind} work",
        f"Find out whether {kind} work suits you, for example {example}, before deciding "
        "where your career goes next.",
        KpiTemplate(f"Conversations or trials of {kind} work", "per month", 2, "monthly"),
        ((f"Talk to two people whose jobs are mostly {kind} work about their week", 5, 2),
         (f"Take on one small {kind} task in your current role", 4, 3),
         ("Write down after each conversation what attracted and what put you off", 3, 1)),
        f"Draw on your interest in {kind} work: choose actions for this goal that involve it",
        None)


_RIASEC = [
    _interest("realistic", "hands-on, practical", "building, repairing or operating things"),
    _interest("investigative", "analytical, research-driven",
              "investigating data or solving scientific questions"),
    _interest("artistic", "creative, expressive", "designing, writing or performing"),
    _interest("social", "people-centred", "teaching, coaching or caring for others"),
    _interest("enterprising", "leading and persuading", "selling, managing or starting "
              "ventures"),
    _interest("conventional", "structured, detail-oriented",
              "organising data, records or processes"),
]

TEMPLATES: dict[str, GoalTemplate] = {
    template.template_id.split(".", 1)[1]: template
    for template in [*_SKILLS, *_BIG_FIVE, _EMOTIONAL_STABILITY, *_RIASEC]
}
