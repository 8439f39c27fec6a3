"""Event contracts as artefacts: JSON Schema per event, and the compatibility rules between
a committed schema and the one the code now generates.

`coachctl contracts write` regenerates `contracts/events/*.json` (with the other contract
documents); `check` fails, naming the field and what to do, when the code broke a published
contract without a new event version, or when the committed files are stale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import coaching_shared.contracts  # noqa: F401  (registers every event type)
from coaching_shared.events import Event, registered_events, topic_name

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def event_schema(model: type[Event]) -> dict[str, Any]:
    """The JSON Schema of an event's data, with its CloudEvents type, topic and key."""
    schema = model.model_json_schema(mode="serialization")
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"urn:coaching:event:{model.ce_type()}",
        **schema,
        "x-cloudevents-type": model.ce_type(),
        "x-topic": topic_name(model.stream),
        "x-kafka-key": "client_id",
    }


def platform_events() -> dict[str, type[Event]]:
    """The platform's published event types (not ones a test or a tool registered)."""
    return {ce_type: model for ce_type, model in sorted(registered_events().items())
            if model.__module__.startswith("coaching_shared.contracts")}


def all_event_schemas() -> dict[str, dict[str, Any]]:
    """Every platform event's schema, keyed by file name (`<ce_type>.json`)."""
    return {f"{ce_type}.json": event_schema(model)
            for ce_type, model in platform_events().items()}


@dataclass(frozen=True)
class Incompatibility:
    ce_type: str
    field: str
    problem: str

    def __str__(self) -> str:
        return (f"{self.ce_type}: field '{self.field}' {self.problem}. Published consumers "
                f"rely on it: keep the field as it was and publish the change as a new "
                f"version of the event (a new model with version = {_next_version(self.ce_type)}"
                f"), consumed alongside the old one until every reader has moved.")


def _next_version(ce_type: str) -> int:
    return int(ce_type.rsplit(".v", 1)[1]) + 1


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    reference = schema.get("$ref")
    if reference and reference.startswith("#/$defs/"):
        return _resolve(root["$defs"][reference.removeprefix("#/$defs/")], root)
    return schema


def _types(schema: dict[str, Any], root: dict[str, Any]) -> set[str]:
    """The JSON types a (sub)schema admits, following refs and anyOf branches."""
    schema = _resolve(schema, root)
    if "anyOf" in schema:
        return set().union(*(_types(branch, root) for branch in schema["anyOf"]))
    if "enum" in schema:
        return {f"enum:{value}" for value in schema["enum"]}
    if "const" in schema:
        return {f"enum:{schema['const']}"}
    kind = schema.get("type")
    if kind is None:
        return {"any"}
    return set(kind) if isinstance(kind, list) else {kind}


def compare(old: dict[str, Any], new: dict[str, Any], path: str = "") -> list[Incompatibility]:
    """Breaking changes from old to new: removed, retyped or newly required fields."""
    ce_type = old.get("x-cloudevents-type", "?")
    return _compare_objects(ce_type, old, old, new, new, path)


def _compare_objects(ce_type: str, old: dict[str, Any], old_root: dict[str, Any],
                     new: dict[str, Any], new_root: dict[str, Any],
                     path: str) -> list[Incompatibility]:
    old, new = _resolve(old, old_root), _resolve(new, new_root)
    found: list[Incompatibility] = []
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    for name, old_field in old_props.items():
        where = f"{path}{name}"
        if name not in new_props:
            found.append(Incompatibility(ce_type, where, "was removed or renamed"))
            continue
        old_kinds = _types(old_field, old_root)
        new_kinds = _types(new_props[name], new_root)
        if name in new_required and name not in old_required:
            # Old events in the topic may lack it: new readers would reject them on replay.
            found.append(Incompatibility(ce_type, where, "became required"))
            old_kinds.discard("null")
        if old_kinds != new_kinds:
            # Narrowing fails on old events in the topic, widening fails in old readers.
            found.append(Incompatibility(
                ce_type, where, f"changed type from {sorted(old_kinds)} to {sorted(new_kinds)}"))
            continue
        old_sub, new_sub = _resolve(old_field, old_root), _resolve(new_props[name], new_root)
        if "properties" in old_sub and "properties" in new_sub:
            found += _compare_objects(ce_type, old_sub, old_root, new_sub, new_root, f"{where}.")
        old_items, new_items = old_sub.get("items"), new_sub.get("items")
        if isinstance(old_items, dict) and isinstance(new_items, dict):
            found += _compare_objects(ce_type, old_items, old_root, new_items, new_root,
                                      f"{where}[].")
    for name in sorted(new_required - old_required - set(old_props)):
        found.append(Incompatibility(ce_type, f"{path}{name}", "is new and required"))
    return found


def check(folder: Path) -> list[str]:
    """Problems between the committed schemas in folder and the code; empty means all good."""
    problems: list[str] = []
    generated = all_event_schemas()
    committed = {path.name: json.loads(path.read_text()) for path in folder.glob("*.json")}
    for name, old in sorted(committed.items()):
        if name not in generated:
            problems.append(f"{old.get('x-cloudevents-type', name)}: the event is no longer "
                            "defined in code, but consumers may still read it. Keep its model "
                            "until the topic no longer carries it, then delete its schema file.")
            continue
        problems += [str(issue) for issue in compare(old, generated[name])]
    stale = sorted(name for name, schema in generated.items() if committed.get(name) != schema)
    if stale and not problems:
        problems.append("generated event schemas are stale (" + ", ".join(stale) + "): run "
                        "`uv run coachctl contracts write` and commit the result")
    return problems


def write(folder: Path) -> list[str]:
    """Write every schema (never deletes: retiring an event is a deliberate step)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in all_event_schemas().items():
        text = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        target = folder / name
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
            written.append(name)
    return written
