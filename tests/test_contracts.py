"""The committed integration contracts: current, compatible, and valid for outside tools."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from coaching_cli import contracts
from coaching_shared.schemas import check as check_event_schemas

REPO = Path(__file__).resolve().parents[1]
CONTRACTS = REPO / "contracts"
VALIDATOR = REPO / "tools" / "asyncapi-check" / "validate.mjs"


def test_committed_contracts_are_current_and_compatible():
    assert contracts.check(CONTRACTS) == []


def test_every_service_has_its_documents_and_the_catalog_names_every_event():
    catalog = json.loads((CONTRACTS / "catalog.json").read_text())
    for service in contracts.SERVICES:
        asyncapi = json.loads((CONTRACTS / "asyncapi" / f"{service}.json").read_text())
        assert (CONTRACTS / "openapi" / f"{service}.json").is_file()
        for message in asyncapi["components"]["messages"].values():
            # every message documents the CloudEvents headers, the key and a real payload
            assert message["headers"] == {"$ref": "#/components/schemas/CloudEventsHeaders"}
            assert message["bindings"]["kafka"]["key"]["type"] == "string"
            assert "EmptyPayload" not in json.dumps(message["payload"])
    goal_set = catalog["events"]["coaching.GoalSet.v1"]
    assert goal_set["producer"] == "goals" and goal_set["topic"] == "coaching.goals"
    assert {"feedback", "notifier"} <= set(goal_set["consumers"])
    assert catalog["events"]["coaching.ClientEnrolled.v1"]["producer"].startswith("external")
    for entry in catalog["events"].values():
        assert (CONTRACTS / entry["schema"]).is_file()


def _events_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "events"
    shutil.copytree(CONTRACTS / "events", folder)
    return folder


def test_gate_fails_on_a_breaking_change_naming_the_field(tmp_path):
    folder = _events_copy(tmp_path)
    # As if the code had dropped a required field that the committed contract promised.
    path = folder / "coaching.GoalSet.v1.json"
    committed = json.loads(path.read_text())
    committed["properties"]["owner_id"] = {"type": "string", "title": "Owner Id"}
    committed["required"].append("owner_id")
    path.write_text(json.dumps(committed))
    problems = check_event_schemas(folder)
    assert len(problems) == 1
    assert "coaching.GoalSet.v1: field 'owner_id' was removed or renamed" in problems[0]
    assert "new version of the event" in problems[0]


def test_gate_passes_an_additive_change_and_only_asks_to_regenerate(tmp_path):
    folder = _events_copy(tmp_path)
    # As if the code had added an optional field the committed contract does not have yet.
    path = folder / "coaching.GoalSet.v1.json"
    committed = json.loads(path.read_text())
    assert "parent_goal_id" not in committed.get("required", [])
    del committed["properties"]["parent_goal_id"]
    path.write_text(json.dumps(committed))
    problems = check_event_schemas(folder)
    assert len(problems) == 1 and "stale" in problems[0]


def test_official_asyncapi_parser_accepts_every_document():
    node = shutil.which("node")
    assert node is not None, "Node.js is needed for the AsyncAPI parser"
    if not (VALIDATOR.parent / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.fail("the AsyncAPI parser is not installed: run make install")
    documents = sorted(str(path) for path in (CONTRACTS / "asyncapi").glob("*.json"))
    result = subprocess.run([node, str(VALIDATOR), *documents], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("valid AsyncAPI 3.0.0") == len(contracts.SERVICES)
