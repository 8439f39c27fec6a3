"""Operations material: alert rules, the topic list, and the runbook that explains them.

Every alert expression must parse as PromQL, name only metrics the services export (or the
standard `up` and kube-state-metrics series), and point at a runbook section that exists.
The topic-provisioning script must create every stream some event travels on and a
dead-letter topic for every service.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ALERTS = REPO / "deploy" / "k8s" / "monitoring" / "alerts.yaml"
RUNBOOK = REPO / "deploy" / "README.md"
TOPIC_SCRIPT = REPO / "deploy" / "k8s" / "base" / "topics" / "provision-topics.sh"
SERVICES = sorted(p.parent.name for p in REPO.glob("services/*/pyproject.toml"))
# Series that come from Prometheus itself and kube-state-metrics, not from the services.
EXTERNAL_SERIES = re.compile(r"^(up|kube_[a-z_]+)$")


def exported_series() -> set[str]:
    """Every series name the services' metric families produce."""
    from coaching_shared.observability import METRICS

    suffixes = {"counter": ("_total", "_created"), "gauge": ("",),
                "histogram": ("_bucket", "_sum", "_count", "_created")}
    names = set()
    for metric in vars(METRICS).values():
        names |= {f"{metric._name}{suffix}" for suffix in suffixes[metric._type]}
    return names


def selectors(expression: promql_parser.Expr) -> list[str]:
    """The metric names an expression selects."""
    found: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node.name)
            return
        for attribute in ("expr", "lhs", "rhs", "vector_selector", "param"):
            child = getattr(node, attribute, None)
            if isinstance(child, promql_parser.Expr):
                visit(child)
        for child in getattr(node, "args", None) or []:
            visit(child)

    visit(expression)
    return found


def runbook_anchors() -> set[str]:
    """GitHub-style anchors of the runbook's headings."""
    headings = re.findall(r"^#+\s+(.+)$", RUNBOOK.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


def rule_problems(rule: dict[str, Any]) -> list[str]:
    """One alerting rule: parses, known metrics, severity, texts and a runbook section."""
    name = rule.get("alert", "?")
    problems: list[str] = []
    try:
        expression = promql_parser.parse(rule.get("expr", ""))
    except ValueError as error:
        return [f"{name}: expression does not parse: {error}"]
    known = exported_series()
    for series in selectors(expression):
        if series not in known and not EXTERNAL_SERIES.match(series):
            problems.append(f"{name}: {series} is not a metric the services export")
    if rule.get("labels", {}).get("severity") not in {"warning", "critical"}:
        problems.append(f"{name}: severity is not warning or critical")
    annotations = rule.get("annotations", {})
    for field in ("summary", "description", "runbook"):
        if not annotations.get(field):
            problems.append(f"{name}: no {field}")
    anchor = annotations.get("runbook", "").partition("#")[2]
    if anchor not in runbook_anchors():
        problems.append(f"{name}: the runbook has no section #{anchor}")
    return problems


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    assert document["kind"] == "PrometheusRule"
    groups = document["spec"]["groups"]
    assert all(group.get("name") and group.get("rules") for group in groups)
    return [rule for group in groups for rule in group["rules"]]


def test_alert_rules_parse_and_each_has_a_runbook_section() -> None:
    rules = alert_rules()
    assert len({rule["alert"] for rule in rules}) == len(rules), "duplicate alert names"
    assert [p for rule in rules for p in rule_problems(rule)] == []


def test_the_lag_metric_the_runbook_relies_on_is_alerted_on() -> None:
    used = {s for rule in alert_rules() for s in selectors(promql_parser.parse(rule["expr"]))}
    assert {"coaching_consumer_lag_messages", "coaching_events_in_total",
            "coaching_outbox_pending_documents"} <= used


@pytest.mark.parametrize(("edit", "fragment"), [
    (lambda r: r.update(expr="sum by (service (rate(coaching_events_in_total[5m]))"),
     "does not parse"),
    (lambda r: r.update(expr="coaching_consumer_lag > 10"), "not a metric"),
    (lambda r: r["annotations"].update(runbook="deploy/README.md#nowhere"), "no section"),
    (lambda r: r["labels"].update(severity="page-me"), "severity"),
], ids=["syntax", "unknown-metric", "dangling-runbook", "severity"])
def test_a_broken_alert_is_caught(edit: Any, fragment: str) -> None:
    rule = alert_rules()[0]
    edit(rule)
    assert any(fragment in p for p in rule_problems(rule))


def script_list(variable: str) -> set[str]:
    match = re.search(rf'^{variable}="([^"]*)"', TOPIC_SCRIPT.read_text(), flags=re.M)
    assert match, f"{variable} not set in {TOPIC_SCRIPT.name}"
    return set(match.group(1).split())


def test_topic_provisioning_covers_every_stream_and_dead_letter_topic() -> None:
    from coaching_shared.schemas import platform_events

    streams = {model.stream for model in platform_events().values()}
    assert streams <= script_list("STREAMS")
    assert script_list("CONSUMERS") == set(SERVICES)
