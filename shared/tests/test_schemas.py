"""The compatibility gate: breaking contract changes are caught, additive ones pass."""

from __future__ import annotations

import json

from coaching_shared.schemas import all_event_schemas, check, compare, write
from pydantic import BaseModel


class Contact(BaseModel):
    email: str
    phone: str | None = None


def schema(model: type[BaseModel]) -> dict:
    return {**model.model_json_schema(mode="serialization"),
            "x-cloudevents-type": "coaching.Sample.v1"}


class V1(BaseModel):
    goal_id: str
    target: float
    note: str | None = None
    contact: Contact
    tags: list[Contact] = []


def test_additive_optional_field_passes():
    class Added(V1):
        colour: str | None = None

    assert compare(schema(V1), schema(Added)) == []


def test_removed_field_is_named():
    class Removed(BaseModel):
        goal_id: str
        note: str | None = None
        contact: Contact
        tags: list[Contact] = []

    problems = compare(schema(V1), schema(Removed))
    assert [(p.field, p.problem) for p in problems] == [("target", "was removed or renamed")]
    assert "version = 2" in str(problems[0])


def test_type_change_is_named():
    class Retyped(V1):
        target: str  # type: ignore[assignment]

    problems = compare(schema(V1), schema(Retyped))
    assert [p.field for p in problems] == ["target"]
    assert "changed type" in problems[0].problem


def test_widening_a_type_breaks_old_readers():
    class Widened(V1):
        target: float | str  # type: ignore[assignment]

    assert [p.field for p in compare(schema(V1), schema(Widened))] == ["target"]


def test_new_required_field_and_optional_made_required_are_named():
    class Stricter(V1):
        note: str  # type: ignore[assignment]
        owner: str

    problems = {(p.field, p.problem) for p in compare(schema(V1), schema(Stricter))}
    assert problems == {("note", "became required"), ("owner", "is new and required")}


def test_nested_and_list_item_changes_are_named_by_path():
    class Contact2(BaseModel):
        phone: str | None = None

    class Nested(BaseModel):
        goal_id: str
        target: float
        note: str | None = None
        contact: Contact2
        tags: list[Contact2] = []

    fields = sorted(p.field for p in compare(schema(V1), schema(Nested)))
    assert fields == ["contact.email", "tags[].email"]


def test_check_reports_stale_and_removed_schemas(tmp_path):
    write(tmp_path)
    assert check(tmp_path) == []
    name = next(iter(all_event_schemas()))
    committed = json.loads((tmp_path / name).read_text())
    committed["description"] = "an older text"
    (tmp_path / name).write_text(json.dumps(committed))
    assert "stale" in check(tmp_path)[0]
    (tmp_path / "coaching.Retired.v1.json").write_text(json.dumps(
        {"x-cloudevents-type": "coaching.Retired.v1", "properties": {}}))
    assert any("no longer defined" in problem for problem in check(tmp_path))
