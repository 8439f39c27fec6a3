"""The definition format: built-ins load and are complete; bad definitions are refused."""

from __future__ import annotations

import pytest
import yaml
from coaching_assessment.domain.instruments import (
    InstrumentDefinition,
    builtin_instruments,
    parse_instrument,
)
from coaching_assessment.domain.scoring import score_instrument
from pydantic import ValidationError

VALID = {
    "instrument_id": "feedback-culture", "version": 1, "title": "Feedback culture",
    "response_scales": {"default": {"options": [
        {"value": 0, "label": "never"}, {"value": 1, "label": "sometimes"},
        {"value": 2, "label": "often"}, {"value": 3, "label": "always"}]}},
    "scales": [{"scale_id": "asking", "label": "Asking", "scoring": {"rule": "sum"}},
               {"scale_id": "giving", "label": "Giving", "scoring": {"rule": "mean"}}],
    "items": [{"item_id": "a1", "text": "I ask for feedback.", "scale": "asking",
               "keying": "+"},
              {"item_id": "a2", "text": "I avoid hearing criticism.", "scale": "asking",
               "keying": "-"},
              {"item_id": "g1", "text": "I tell peers what went well.", "scale": "giving",
               "keying": "+"}],
    "profile": {"strengths": {"count": 1}},
}


def refused(change) -> str:
    definition = yaml.safe_load(yaml.safe_dump(VALID))
    change(definition)
    with pytest.raises(ValidationError) as caught:
        InstrumentDefinition.model_validate(definition)
    return str(caught.value)


def test_a_custom_instrument_is_scored_by_the_same_engine():
    custom = InstrumentDefinition.model_validate(VALID)
    score = score_instrument(custom, {"a1": 3, "a2": 1, "g1": 2})
    asking, giving = score.scales
    # asking: 3 + (0 + 3 - 1) = 5 of 0..6; giving: 2 of 0..3
    assert (asking.score, asking.minimum, asking.maximum) == (5, 0, 6)
    assert (giving.score, giving.minimum, giving.maximum) == (2, 0, 3)
    assert [f.scale_id for f in score.strengths] == ["asking"]  # 83% beats 67%


def test_unknown_scale_is_refused():
    def change(d):
        d["items"][0]["scale"] = "listening"
    assert "item 'a1' refers to unknown scale 'listening'" in refused(change)


def test_item_without_keying_is_refused():
    def change(d):
        del d["items"][1]["keying"]
    message = refused(change)
    assert "items.1.keying" in message and "Field required" in message


def test_empty_response_scale_is_refused():
    def change(d):
        d["response_scales"]["default"]["options"] = []
    assert "response_scales.default.options" in refused(change)

    def no_scales(d):
        d["response_scales"] = {}
    assert "response_scales" in refused(no_scales)


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d["items"].append(dict(d["items"][0])), "item id 'a1' is used twice"),
    (lambda d: d["items"][0].update(keying="reverse"), "items.0.keying"),
    (lambda d: d["items"][0].update(response_scale="agree"),
     "item 'a1' refers to unknown response scale 'agree'"),
    (lambda d: d["scales"].append({"scale_id": "empty", "label": "E",
                                   "scoring": {"rule": "sum"}}),
     "scale 'empty' has no item"),
    (lambda d: d["response_scales"]["default"]["options"].append(
        {"value": 1, "label": "again"}), "response scale values must be distinct"),
    (lambda d: d.update(profile={"development_areas": {"method": "gap", "count": 2}}),
     "development rule 'gap' needs target_response_scale"),
    (lambda d: d.update(derived=[{"output_id": "code", "label": "C", "k": 3,
                                  "letters": {"asking": "A", "giving": "G"}}]),
     "wants 3 letters from 2 scales"),
    (lambda d: d["items"][0].update(item_id="a.1"), "items.0.item_id"),
])
def test_other_faults_are_refused_with_a_clear_reason(change, expected):
    assert expected in refused(change)


def test_built_in_instruments_are_complete():
    instruments = builtin_instruments()
    skills, big_five, riasec = (instruments[name]
                                for name in ("onet-skills", "big-five", "riasec"))
    assert len(skills.scales) == 35 and len(skills.items) == 70
    for scale in skills.scales:
        assert {i.response_scale for i in skills.items if i.scale == scale.scale_id} == {
            "proficiency", "importance"}
    assert [s.scale_id for s in big_five.scales] == [
        "extraversion", "agreeableness", "conscientiousness", "emotional_stability",
        "intellect"]
    for scale in big_five.scales:
        keyings = [i.keying for i in big_five.items if i.scale == scale.scale_id]
        assert len(keyings) == 10 and {"+", "-"} <= set(keyings)
    assert len(riasec.items) == 60
    assert all(len(riasec.scored_items(s.scale_id)) == 10 for s in riasec.scales)
    assert "".join(riasec.derived[0].letters.values()) == "RIASEC"
    for definition in instruments.values():
        texts = [item.text for item in definition.items if item.response_scale != "importance"]
        assert len(set(texts)) == len(texts), definition.instrument_id


def test_yaml_and_json_texts_parse_alike():
    import json

    assert parse_instrument(json.dumps(VALID)) == InstrumentDefinition.model_validate(VALID)
