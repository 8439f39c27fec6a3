"""The instrument definition format: scales, items, response scales, scoring and profile rules.

A definition is immutable once published: a tenant changes an instrument by publishing a new
version, and every result records the version its answers were scored with, so a new version
never changes how past responses were scored. The built-in instruments are YAML files in
`coaching_assessment/instruments/`, validated by this same model when the service starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

IDENTIFIER = r"^[a-z][a-z0-9_-]{0,79}$"  # also a MongoDB field name: no dots, no dollar
DEFAULT_RESPONSE_SCALE = "default"
BUILTIN_FILES = ("onet-skills.yaml", "big-five.yaml", "riasec.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResponseOption(_Strict):
    value: int
    label: str = Field(min_length=1, max_length=120)


class ResponseScale(_Strict):
    """The answers an item accepts, e.g. 1 'Very inaccurate' ... 5 'Very accurate'."""

    prompt: str = Field(default="", max_length=300,
                        description="the question every item on this scale answers")
    options: list[ResponseOption] = Field(min_length=2, max_length=11)

    @model_validator(mode="after")
    def _distinct_values(self) -> ResponseScale:
        values = [option.value for option in self.options]
        if len(set(values)) != len(values):
            raise ValueError("response scale values must be distinct")
        return self

    @property
    def minimum(self) -> int:
        return min(option.value for option in self.options)

    @property
    def maximum(self) -> int:
        return max(option.value for option in self.options)

    def allows(self, value: int) -> bool:
        return any(option.value == value for option in self.options)


class ScoringRule(_Strict):
    """How a scale's items become its score.

    Every item contributes `keyed - offset`, where keyed is the response (keying '+') or
    `min + max - response` (keying '-'); `sum` adds the contributions, `mean` averages them.
    Only items answered on `response_scale` count (an instrument may ask a second question
    about the same scale, e.g. importance next to proficiency).
    """

    rule: Literal["sum", "mean"]
    offset: int = Field(default=0, description="subtracted per item, e.g. 1 for 0-based sums")
    response_scale: str = DEFAULT_RESPONSE_SCALE


class Scale(_Strict):
    scale_id: str = Field(pattern=IDENTIFIER)
    label: str = Field(min_length=1, max_length=120)
    description: str = Field(default="", max_length=1000)
    scoring: ScoringRule


class Item(_Strict):
    item_id: str = Field(pattern=IDENTIFIER)
    text: str = Field(min_length=1, max_length=500)
    scale: str = Field(description="scale_id this item belongs to")
    keying: Literal["+", "-"] = Field(description="'-' items are reverse scored")
    response_scale: str = DEFAULT_RESPONSE_SCALE
    required: bool = True


class TopKCode(_Strict):
    """A code made of the letters of the k highest scales (e.g. the Holland code)."""

    output_id: str = Field(pattern=IDENTIFIER)
    label: str = Field(min_length=1, max_length=120)
    kind: Literal["top_k_code"] = "top_k_code"
    k: int = Field(ge=1, le=10)
    letters: dict[str, str] = Field(description="scale_id -> one letter")


class StrengthRule(_Strict):
    """Strengths: the `count` highest scales, each at least `min_share` of its range."""

    count: int = Field(ge=1, le=20)
    min_share: float = Field(default=0.6, ge=0, le=1)


class DevelopmentRule(_Strict):
    """Development areas: the lowest scales, or the largest gaps between two ratings.

    `lowest`: the `count` lowest scales at most `max_share` of their range.
    `gap`: per scale, mean rating on `target_response_scale` (e.g. importance) minus the
    scale's mean on its scored response scale (e.g. proficiency); the `count` largest gaps of
    at least `min_gap` points.
    """

    method: Literal["lowest", "gap"]
    count: int = Field(ge=1, le=20)
    max_share: float = Field(default=0.5, ge=0, le=1)
    target_response_scale: str | None = None
    min_gap: float = Field(default=1.0, gt=0)


class ProfileRules(_Strict):
    strengths: StrengthRule | None = None
    development_areas: DevelopmentRule | None = None


class InstrumentDefinition(_Strict):
    """One version of an instrument; refuses definitions that could not be scored."""

    instrument_id: str = Field(pattern=IDENTIFIER)
    version: int = Field(ge=1)
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    attribution: str = Field(default="", max_length=1000,
                             description="frameworks it builds on and the item texts' origin")
    response_scales: dict[str, ResponseScale] = Field(min_length=1)
    scales: list[Scale] = Field(min_length=1, max_length=100)
    items: list[Item] = Field(min_length=1, max_length=500)
    derived: list[TopKCode] = Field(default_factory=list)
    profile: ProfileRules = Field(default_factory=ProfileRules)

    @model_validator(mode="after")
    def _consistent(self) -> InstrumentDefinition:
        _require_unique("scale", (scale.scale_id for scale in self.scales))
        _require_unique("item", (item.item_id for item in self.items))
        scale_ids = {scale.scale_id for scale in self.scales}
        for item in self.items:
            if item.scale not in scale_ids:
                raise ValueError(f"item {item.item_id!r} refers to unknown scale {item.scale!r}")
            self._require_response_scale(item.response_scale, f"item {item.item_id!r}")
        for scale in self.scales:
            self._require_response_scale(scale.scoring.response_scale,
                                         f"scale {scale.scale_id!r}")
            if not self.scored_items(scale.scale_id):
                raise ValueError(f"scale {scale.scale_id!r} has no item on response scale "
                                 f"{scale.scoring.response_scale!r} to score")
        for output in self.derived:
            unknown = set(output.letters) - scale_ids
            if unknown:
                raise ValueError(f"derived output {output.output_id!r} names unknown scale(s) "
                                 f"{sorted(unknown)}")
            if output.k > len(output.letters):
                raise ValueError(f"derived output {output.output_id!r} wants {output.k} "
                                 f"letters from {len(output.letters)} scales")
        development = self.profile.development_areas
        if development is not None and development.method == "gap":
            target = development.target_response_scale
            if target is None:
                raise ValueError("development rule 'gap' needs target_response_scale")
            self._require_response_scale(target, "development rule")
        return self

    def _require_response_scale(self, name: str, user: str) -> None:
        if name not in self.response_scales:
            raise ValueError(f"{user} refers to unknown response scale {name!r}")

    def scale(self, scale_id: str) -> Scale:
        return next(scale for scale in self.scales if scale.scale_id == scale_id)

    def scored_items(self, scale_id: str) -> list[Item]:
        """The items that make a scale's score (those on its scoring response scale)."""
        scale = self.scale(scale_id)
        return [item for item in self.items
                if item.scale == scale_id and item.response_scale == scale.scoring.response_scale]

    def items_on(self, scale_id: str, response_scale: str) -> list[Item]:
        return [item for item in self.items
                if item.scale == scale_id and item.response_scale == response_scale]

    def item(self, item_id: str) -> Item | None:
        return next((item for item in self.items if item.item_id == item_id), None)


def _require_unique(kind: str, ids: Iterable[str]) -> None:
    seen: set[str] = set()
    for identifier in ids:
        if identifier in seen:
            raise ValueError(f"{kind} id {identifier!r} is used twice")
        seen.add(identifier)


def parse_instrument(text: str) -> InstrumentDefinition:
    """A definition from its YAML (or JSON, a subset of YAML) text; raises on any fault."""
    return InstrumentDefinition.model_validate(yaml.safe_load(text))


@cache
def builtin_instruments() -> dict[str, InstrumentDefinition]:
    """The three instruments every tenant has, by id; a faulty file stops the service."""
    folder = resources.files("coaching_assessment") / "instruments"
    definitions = [parse_instrument((folder / name).read_text(encoding="utf-8"))
                   for name in BUILTIN_FILES]
    return {definition.instrument_id: definition for definition in definitions}
