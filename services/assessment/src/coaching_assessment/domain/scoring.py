"""Scoring: answers checked against a definition, scale scores, strengths, development areas
and derived codes (such as the Holland code). Pure functions of a definition and answers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import permutations
from typing import Literal

from coaching_assessment.domain.instruments import (
    DevelopmentRule,
    InstrumentDefinition,
    Item,
    StrengthRule,
    TopKCode,
)

Answers = Mapping[str, int]
_TIE_DIGITS = 9  # scores are ratios of small integers: equal to 9 digits means tied


@dataclass(frozen=True)
class AnswerProblem:
    """Why one item's answer cannot be accepted."""

    item_id: str
    problem: Literal["unknown_item", "off_scale", "missing"]
    message: str


@dataclass(frozen=True)
class ScaleResult:
    """One scale's score: `raw_score` (sum of contributions), `mean`, and `score` by its rule."""

    scale_id: str
    label: str
    raw_score: float
    mean: float
    score: float
    minimum: float
    maximum: float
    items_answered: int

    @property
    def share(self) -> float:
        """Where the score lies in its possible range, 0 (minimum) to 1 (maximum)."""
        return (self.score - self.minimum) / (self.maximum - self.minimum)


@dataclass(frozen=True)
class Finding:
    """A strength or development area, with the reason it was chosen."""

    scale_id: str
    label: str
    value: float
    reason: str
    tied_at_cut: bool = False


@dataclass(frozen=True)
class CodeResult:
    """A top-k code. `codes` lists every code the scores allow: more than one means a tie."""

    output_id: str
    label: str
    codes: list[str]
    ranking: list[tuple[str, float]] = field(default_factory=list)

    @property
    def tied(self) -> bool:
        return len(self.codes) > 1

    @property
    def code(self) -> str | None:
        """The code when the scores determine it; None when a tie leaves it open."""
        return self.codes[0] if len(self.codes) == 1 else None


@dataclass(frozen=True)
class InstrumentScore:
    instrument_id: str
    version: int
    scales: list[ScaleResult]
    strengths: list[Finding]
    development_areas: list[Finding]
    codes: list[CodeResult]
    gaps: dict[str, float] = field(default_factory=dict)


def answer_problems(definition: InstrumentDefinition, answers: Answers, *,
                    complete: bool) -> list[AnswerProblem]:
    """Every reason the answers cannot be taken: unknown items, values off the item's scale,
    and (for a submission, `complete=True`) required items left unanswered."""
    problems: list[AnswerProblem] = []
    for item_id, value in answers.items():
        item = definition.item(item_id)
        if item is None:
            problems.append(AnswerProblem(item_id, "unknown_item",
                                          f"{definition.instrument_id} "
                                          f"v{definition.version} has no item {item_id!r}"))
            continue
        response_scale = definition.response_scales[item.response_scale]
        if not response_scale.allows(value):
            allowed = ", ".join(str(option.value) for option in response_scale.options)
            problems.append(AnswerProblem(item_id, "off_scale",
                                          f"{value} is not on the response scale ({allowed})"))
    if complete:
        problems.extend(AnswerProblem(item.item_id, "missing", "required item not answered")
                        for item in definition.items
                        if item.required and item.item_id not in answers)
        for scale in definition.scales:
            scored = definition.scored_items(scale.scale_id)
            if not any(item.item_id in answers for item in scored):
                problems.extend(AnswerProblem(item.item_id, "missing",
                                              f"scale {scale.scale_id!r} needs at least one "
                                              "answer") for item in scored[:1])
    return problems


def keyed_value(definition: InstrumentDefinition, item: Item, value: int) -> int:
    """The response as the scale counts it: reverse-keyed items become min + max - value."""
    if item.keying == "+":
        return value
    response_scale = definition.response_scales[item.response_scale]
    return response_scale.minimum + response_scale.maximum - value


def score_scale(definition: InstrumentDefinition, scale_id: str, answers: Answers,
                ) -> ScaleResult:
    """A scale's raw score, mean and score by its rule, over its answered scored items."""
    scale = definition.scale(scale_id)
    rule = scale.scoring
    answered = [item for item in definition.scored_items(scale_id) if item.item_id in answers]
    if not answered:
        raise ValueError(f"scale {scale_id!r} has no answered item")
    contributions = [keyed_value(definition, item, answers[item.item_id]) - rule.offset
                     for item in answered]
    response_scale = definition.response_scales[rule.response_scale]
    low, high = response_scale.minimum - rule.offset, response_scale.maximum - rule.offset
    count = len(answered)
    raw = float(sum(contributions))
    mean = raw / count
    if rule.rule == "sum":
        score, minimum, maximum = raw, float(low * count), float(high * count)
    else:
        score, minimum, maximum = mean, float(low), float(high)
    return ScaleResult(scale_id, scale.label, raw, mean, score, minimum, maximum, count)


def rating_mean(definition: InstrumentDefinition, scale_id: str, response_scale: str,
                answers: Answers) -> float | None:
    """The mean keyed rating of a scale's answered items on one response scale."""
    values = [keyed_value(definition, item, answers[item.item_id])
              for item in definition.items_on(scale_id, response_scale)
              if item.item_id in answers]
    return sum(values) / len(values) if values else None


def skill_gaps(definition: InstrumentDefinition, answers: Answers, target_response_scale: str,
               ) -> dict[str, float]:
    """Per scale: mean rating on the target scale (e.g. importance) minus the mean on the
    scale's scored response scale (e.g. proficiency); positive means it matters more than
    the client can do it yet."""
    gaps: dict[str, float] = {}
    for scale in definition.scales:
        target = rating_mean(definition, scale.scale_id, target_response_scale, answers)
        current = rating_mean(definition, scale.scale_id, scale.scoring.response_scale, answers)
        if target is not None and current is not None:
            gaps[scale.scale_id] = target - current
    return gaps


def pick_extremes(candidates: Sequence[tuple[str, float]], count: int, *, highest: bool,
                  ) -> list[tuple[str, float, bool]]:
    """The `count` highest (or lowest) candidates, plus every candidate tied with the last
    one picked: a tie at the cut-off is reported, never broken silently.

    Returns (id, value, tied_at_cut); candidates keep their given order among equals.
    """
    ordered = sorted(candidates, key=lambda pair: -pair[1] if highest else pair[1])
    if len(ordered) <= count:
        return [(name, value, False) for name, value in ordered]
    cut = round(ordered[count - 1][1], _TIE_DIGITS)
    straddles = round(ordered[count][1], _TIE_DIGITS) == cut
    picked = [pair for index, pair in enumerate(ordered)
              if index < count or round(pair[1], _TIE_DIGITS) == cut]
    return [(name, value, straddles and round(value, _TIE_DIGITS) == cut)
            for name, value in picked]


def _number(value: float) -> str:
    return f"{round(value, 2):g}"


def find_strengths(scales: Sequence[ScaleResult], rule: StrengthRule) -> list[Finding]:
    """The highest scales that reach `min_share` of their range."""
    return _scale_extremes(scales, rule.count, highest=True,
                           eligible=lambda share: share >= rule.min_share)


def _scale_extremes(scales: Sequence[ScaleResult], count: int, *, highest: bool,
                    eligible: Callable[[float], bool]) -> list[Finding]:
    by_id = {scale.scale_id: scale for scale in scales}
    candidates = [(scale.scale_id, scale.share) for scale in scales if eligible(scale.share)]
    which = "highest" if highest else "lowest"
    return [Finding(scale_id, by_id[scale_id].label, by_id[scale_id].score,
                    _extreme_reason(by_id[scale_id], which, count, tied), tied)
            for scale_id, _, tied in pick_extremes(candidates, count, highest=highest)]


def find_development_areas(definition: InstrumentDefinition, scales: Sequence[ScaleResult],
                           answers: Answers, rule: DevelopmentRule,
                           ) -> tuple[list[Finding], dict[str, float]]:
    """The lowest scales, or the largest positive gaps; also returns all gaps (or {})."""
    if rule.method == "lowest":
        return _scale_extremes(scales, rule.count, highest=False,
                               eligible=lambda share: share <= rule.max_share), {}
    target = rule.target_response_scale or ""
    gaps = skill_gaps(definition, answers, target)
    candidates = [(scale_id, gap) for scale_id, gap in gaps.items() if gap >= rule.min_gap]
    findings = []
    for scale_id, gap, tied in pick_extremes(candidates, rule.count, highest=True):
        scale = definition.scale(scale_id)
        current = scale.scoring.response_scale
        wanted = rating_mean(definition, scale_id, target, answers) or 0.0
        has = rating_mean(definition, scale_id, current, answers) or 0.0
        reason = (f"{target} {_number(wanted)} exceeds {current} {_number(has)} by "
                  f"{_number(gap)}; among the {rule.count} largest gaps")
        findings.append(Finding(scale_id, scale.label, gap, _tie_note(reason, tied), tied))
    return findings, gaps


def _extreme_reason(scale: ScaleResult, which: str, count: int, tied: bool) -> str:
    return _tie_note(f"{_number(scale.score)} on a {_number(scale.minimum)}-"
                     f"{_number(scale.maximum)} scale ({scale.share:.0%} of its range); "
                     f"among the {count} {which}", tied)


def _tie_note(reason: str, tied: bool) -> str:
    return reason + " (tied at the cut-off)" if tied else reason


def top_k_code(output: TopKCode, scales: Sequence[ScaleResult]) -> CodeResult:
    """The letters of the k highest scales. Tied scales that compete for a position yield
    every possible code (e.g. R=30, I=A=25 with k=2 gives RI and RA), so a tie is visible."""
    scores = {scale.scale_id: scale.score for scale in scales if scale.scale_id in output.letters}
    ranking = [(output.letters[scale_id], score) for scale_id, score in
               sorted(scores.items(), key=lambda pair: -pair[1])]
    groups: list[list[str]] = []
    previous: float | None = None
    for letter, score in ranking:
        if previous is not None and round(previous, _TIE_DIGITS) == round(score, _TIE_DIGITS):
            groups[-1].append(letter)
        else:
            groups.append([letter])
        previous = score
    codes = [""]
    filled = 0
    for group in groups:
        if filled >= output.k:
            break
        take = min(output.k - filled, len(group))
        codes = [code + "".join(order) for code in codes for order in permutations(group, take)]
        filled += take
    return CodeResult(output.output_id, output.label, codes, ranking)


def score_instrument(definition: InstrumentDefinition, answers: Answers) -> InstrumentScore:
    """Score complete answers (see `answer_problems`): scales, findings and derived codes."""
    scales = [score_scale(definition, scale.scale_id, answers) for scale in definition.scales]
    rules = definition.profile
    strengths = find_strengths(scales, rules.strengths) if rules.strengths else []
    development: list[Finding] = []
    gaps: dict[str, float] = {}
    if rules.development_areas is not None:
        development, gaps = find_development_areas(definition, scales, answers,
                                                   rules.development_areas)
    codes = [top_k_code(output, scales) for output in definition.derived]
    return InstrumentScore(definition.instrument_id, definition.version, scales, strengths,
                           development, codes, gaps)
