"""The Kubernetes manifests: rendered with kustomize, validated offline, invariants per service.

Every kustomization under deploy/k8s is rendered with the kustomize that `make install` builds
(deploy/local/local_tools.py), every object is validated against the Kubernetes JSON schemas
(kubernetes-validate), the KEDA ScaledObject CRD is checked by shape, and for every service
found under services/*/pyproject.toml the deployable renders must carry probes, limits, a
restricted security context, a PDB, a NetworkPolicy and autoscaling on its consumer lag.
A deliberately broken overlay (tests/fixtures/deploy/broken-overlay) must be caught.
"""

from __future__ import annotations

import copy
import functools
import importlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kube_schemas

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "deploy" / "k8s"
BROKEN_OVERLAY = REPO / "tests" / "fixtures" / "deploy" / "broken-overlay"
TOPIC_SCRIPT = K8S / "base" / "topics" / "provision-topics.sh"
# The oldest Kubernetes minor the manifests promise to work on, and the newest schemas shipped.
KUBERNETES_VERSIONS = ("1.30", kube_schemas.latest_version())
# What a service may reach: DNS, Kafka, MongoDB. Outbound beyond that, by service.
INFRASTRUCTURE_PORTS = {53, 9092, 9093, 27017}
OUTBOUND_PORTS = {"notifier": {443, 465, 587}}
# Overlays that are deployed as they are; KEDA ones must autoscale on lag.
DEPLOYABLE = {"overlays/production": True, "overlays/without-keda": False}

SERVICES = sorted(p.parent.name for p in REPO.glob("services/*/pyproject.toml"))

sys.path.insert(0, str(REPO / "deploy" / "local"))
import local_tools  # noqa: E402  (deploy/local is not a package)

Manifest = dict[str, Any]


# -- rendering -----------------------------------------------------------------------------

@functools.cache
def kustomize() -> Path:
    """The project's kustomize, built on first use (cached under .infra/)."""
    return local_tools.install()


def render(directory: Path) -> list[Manifest]:
    """`kustomize build` of one directory, as a list of objects."""
    result = subprocess.run([str(kustomize()), "build", str(directory)], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, f"kustomize build {directory} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@functools.cache
def rendered(relative: str) -> tuple[Manifest, ...]:
    return tuple(render(K8S / relative))


def kustomizations() -> list[str]:
    return sorted(str(p.parent.relative_to(K8S)) for p in K8S.rglob("kustomization.yaml"))


def find(objects: list[Manifest] | tuple[Manifest, ...], kind: str,
         name: str) -> Manifest | None:
    return next((o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name),
                None)


def platform_settings(objects: list[Manifest] | tuple[Manifest, ...]) -> dict[str, str]:
    """The data of the rendered coaching-platform ConfigMap (name carries a hash suffix)."""
    for obj in objects:
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"].startswith(
                "coaching-platform-"):
            return obj.get("data", {})
    raise AssertionError("no coaching-platform ConfigMap rendered")


# -- what the services' code says ----------------------------------------------------------

@functools.cache
def consumed_topics(service: str) -> frozenset[str]:
    """The topics the service really subscribes to: its app, wired as in production."""
    app_module = importlib.import_module(f"coaching_{service}.app")
    app = app_module.create_app()
    return frozenset(app.state.runtime.consumer.topics)


def settings_fields(service: str) -> set[str]:
    """Environment variable names the service reads (its settings fields, upper case)."""
    module = importlib.import_module(f"coaching_{service}.settings")
    from coaching_shared.settings import ServiceSettings

    classes = [c for c in vars(module).values() if isinstance(c, type)
               and issubclass(c, ServiceSettings) and c is not ServiceSettings]
    assert classes, f"coaching_{service}.settings defines no ServiceSettings subclass"
    return {name.upper() for cls in classes for name in cls.model_fields}


def topic_script_variables() -> set[str]:
    return set(re.findall(r"\$\{([A-Z_]+)", TOPIC_SCRIPT.read_text()))


# -- invariant checks: each returns the problems it finds (empty = fine) --------------------

def _quantity(value: str | int | float) -> float:
    """A Kubernetes quantity as a number (cpu in cores, memory in bytes)."""
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    for suffix, factor in sorted(units.items(), key=lambda item: -len(item[0])):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_problems(workload: Manifest) -> list[str]:
    """A restricted security context, resources and pinned images (any pod template)."""
    problems: list[str] = []
    pod = workload["spec"]["template"]["spec"]
    pod_security = pod.get("securityContext", {})
    if pod_security.get("runAsNonRoot") is not True:
        problems.append("pod securityContext.runAsNonRoot is not true")
    if pod_security.get("runAsUser", 0) == 0:
        problems.append("pod runs as uid 0 (or no runAsUser)")
    if pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append("pod seccompProfile is not RuntimeDefault")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("service account token is mounted")
    for container in pod.get("containers", []):
        resources = container.get("resources", {})
        for resource in ("cpu", "memory"):
            request = resources.get("requests", {}).get(resource)
            limit = resources.get("limits", {}).get(resource)
            if request is None or limit is None:
                problems.append(f"{resource} request or limit missing")
            elif _quantity(request) > _quantity(limit):
                problems.append(f"{resource} request {request} exceeds limit {limit}")
        security = container.get("securityContext", {})
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append("allowPrivilegeEscalation is not false")
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append("root filesystem is writable")
        if security.get("privileged"):
            problems.append("container is privileged")
        if "ALL" not in security.get("capabilities", {}).get("drop", []):
            problems.append("capabilities are not all dropped")
        image = container.get("image", "")
        if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
            problems.append(f"image {image!r} is not pinned to a version")
    return problems


def deployment_problems(deployment: Manifest) -> list[str]:
    """pod_problems, plus one container with both probes, reachable on all interfaces."""
    problems = pod_problems(deployment)
    containers = deployment["spec"]["template"]["spec"].get("containers", [])
    if len(containers) != 1:
        problems.append(f"expected one container, found {len(containers)}")
    for container in containers:
        ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        for probe, path in (("livenessProbe", "/health/live"),
                            ("readinessProbe", "/health/ready")):
            http = container.get(probe, {}).get("httpGet", {})
            if http.get("path") != path:
                problems.append(f"{probe} does not GET {path}")
            elif http.get("port") not in ports and http.get("port") not in ports.values():
                problems.append(f"{probe} port {http.get('port')} is not a container port")
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        if env.get("HTTP_HOST") != "0.0.0.0":
            problems.append("HTTP_HOST is not 0.0.0.0: the probes could not reach the API")
    return problems


def scaled_object_problems(scaled: Manifest, service: str, deployment: Manifest,
                           hpa: Manifest | None, settings: dict[str, str],
                           consumed: frozenset[str]) -> list[str]:
    """The KEDA ScaledObject (a CRD, so no schema): shape, target, and lag triggers."""
    problems: list[str] = []
    if scaled.get("apiVersion") != "keda.sh/v1alpha1":
        problems.append(f"apiVersion {scaled.get('apiVersion')} is not keda.sh/v1alpha1")
    spec = scaled.get("spec")
    if not isinstance(spec, dict):
        return [*problems, "spec missing"]
    target = spec.get("scaleTargetRef", {})
    if not isinstance(target, dict) or target.get("name") != deployment["metadata"]["name"]:
        problems.append("scaleTargetRef.name is not the service's Deployment")
    if target.get("kind", "Deployment") != "Deployment":
        problems.append("scaleTargetRef.kind is not Deployment")
    for field in ("minReplicaCount", "maxReplicaCount", "pollingInterval", "cooldownPeriod"):
        if field in spec and not (isinstance(spec[field], int) and spec[field] >= 0):
            problems.append(f"{field} is not a non-negative integer")
    low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    partitions = int(settings.get("TOPIC_PARTITIONS", "0"))
    if not isinstance(high, int) or high > partitions:
        problems.append(f"maxReplicaCount {high} exceeds the {partitions} topic partitions")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        problems.append("minReplicaCount exceeds maxReplicaCount")
    if scaled["metadata"].get("annotations", {}).get(
            "scaledobject.keda.sh/transfer-hpa-ownership") == "true":
        adopted = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("name")
        if hpa is None or adopted != hpa["metadata"]["name"]:
            problems.append("adopts an HPA that is not the service's")
    triggers = spec.get("triggers")
    if not isinstance(triggers, list) or not triggers:
        return [*problems, "no triggers"]
    lag_topics: set[str] = set()
    prefix = settings.get("TOPIC_PREFIX", "")
    env_sources = set(settings)
    for trigger in triggers:
        metadata = trigger.get("metadata") if isinstance(trigger, dict) else None
        if not isinstance(metadata, dict) or not trigger.get("type"):
            problems.append(f"trigger without type or metadata: {trigger}")
            continue
        if any(not isinstance(v, str) for v in metadata.values()):
            problems.append(f"{trigger['type']} trigger metadata values must be strings")
        if trigger["type"] != "kafka":
            continue
        lag_topics.add(metadata.get("topic", ""))
        if metadata.get("consumerGroup") != f"{prefix}coaching-{service}":
            problems.append(f"kafka trigger group {metadata.get('consumerGroup')!r} is not "
                            f"the service's group {prefix}coaching-{service}")
        if "bootstrapServers" not in metadata and \
                metadata.get("bootstrapServersFromEnv") not in env_sources:
            problems.append("kafka trigger has no bootstrap servers the pod's env provides")
        threshold = metadata.get("lagThreshold", "")
        if not (isinstance(threshold, str) and threshold.isdigit() and int(threshold) > 0):
            problems.append(f"lagThreshold {threshold!r} is not a positive integer string")
    if not lag_topics:
        problems.append("no kafka lag trigger")
    expected = {topic.replace("coaching.", f"{prefix}coaching.", 1) for topic in consumed}
    if missing := sorted(expected - lag_topics):
        problems.append(f"no lag trigger for consumed topics {missing}")
    return problems


def network_policy_problems(policies: list[Manifest], pod_labels: dict[str, str],
                            service: str) -> list[str]:
    """Ingress and egress both restricted; egress only to DNS, Kafka, MongoDB (+ outbound)."""
    mine = [p for p in policies if _selects(p["spec"]["podSelector"].get("matchLabels", {}),
                                            pod_labels)]
    if not mine:
        return ["no NetworkPolicy selects the pods"]
    problems: list[str] = []
    types = {t for p in mine for t in p["spec"].get("policyTypes", [])}
    if not {"Ingress", "Egress"} <= types:
        problems.append(f"NetworkPolicies restrict only {sorted(types)}")
    allowed = INFRASTRUCTURE_PORTS | OUTBOUND_PORTS.get(service, set())
    for policy in mine:
        for rule in policy["spec"].get("egress", []):
            ports = {p.get("port") for p in rule.get("ports", [])}
            if not ports:
                problems.append(f"{policy['metadata']['name']}: egress to every port")
            elif extra := ports - allowed:
                problems.append(f"{policy['metadata']['name']}: egress to ports {extra}")
            for peer in rule.get("to", []) or [{}]:
                if not peer:
                    problems.append(f"{policy['metadata']['name']}: egress to anywhere")
                if "ipBlock" in peer and service not in OUTBOUND_PORTS:
                    problems.append(f"{policy['metadata']['name']}: egress to an ipBlock")
                # kustomize merges the service's labels into peer podSelectors: such a rule
                # would only match the service itself (the DNS trap).
                if _selects(peer.get("podSelector", {}).get("matchLabels", {}), pod_labels):
                    problems.append(f"{policy['metadata']['name']}: egress peer selects the "
                                    "service's own pods")
    return problems


def service_problems(objects: tuple[Manifest, ...] | list[Manifest], service: str,
                     keda: bool) -> list[str]:
    """Everything one service must have in one deployable render."""
    name = f"coaching-{service}"
    deployment = find(objects, "Deployment", name)
    if deployment is None:
        return [f"{name}: no Deployment"]
    problems = deployment_problems(deployment)
    pod_labels = deployment["spec"]["template"]["metadata"].get("labels", {})
    settings = platform_settings(objects)
    partitions = int(settings.get("TOPIC_PARTITIONS", "0"))
    svc = find(objects, "Service", name)
    if svc is None or not _selects(svc["spec"].get("selector", {}), pod_labels):
        problems.append("no Service selecting the pods")
    hpa = find(objects, "HorizontalPodAutoscaler", name)
    if hpa is None or hpa["spec"]["scaleTargetRef"]["name"] != name:
        problems.append("no HorizontalPodAutoscaler on the Deployment")
    elif hpa["spec"]["maxReplicas"] > partitions:
        problems.append(f"HPA maxReplicas {hpa['spec']['maxReplicas']} exceeds the "
                        f"{partitions} topic partitions")
    pdb = find(objects, "PodDisruptionBudget", name)
    if pdb is None or not _selects(pdb["spec"]["selector"].get("matchLabels", {}),
                                   pod_labels):
        problems.append("no PodDisruptionBudget selecting the pods")
    elif "minAvailable" not in pdb["spec"] and "maxUnavailable" not in pdb["spec"]:
        problems.append("PodDisruptionBudget allows nothing")
    scaled = find(objects, "ScaledObject", name)
    if keda:
        if scaled is None:
            problems.append("no KEDA ScaledObject")
        else:
            problems += scaled_object_problems(scaled, service, deployment, hpa, settings,
                                               consumed_topics(service))
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    problems += network_policy_problems(policies, pod_labels, service)
    return [f"{name}: {problem}" for problem in problems]


def schema_problems(objects: tuple[Manifest, ...] | list[Manifest]) -> list[str]:
    """Objects that fail the Kubernetes schemas (CRDs are checked by shape elsewhere)."""
    problems = []
    for obj in objects:
        for version in KUBERNETES_VERSIONS:
            try:
                kube_schemas.validate(obj, version, strict=True)
            except kube_schemas.SchemaNotFoundError:
                if "." not in obj.get("apiVersion", "").split("/")[0]:
                    problems.append(f"{obj['kind']}: no schema for a core kind")
            except kube_schemas.ValidationError as error:
                where = "/".join(str(p) for p in error.path)
                problems.append(f"{obj['kind']} {obj['metadata'].get('name')} "
                                f"(k8s {version}) at {where}: {error.message}")
    return problems


# -- the tests -----------------------------------------------------------------------------

def test_services_are_discovered() -> None:
    assert {"assessment", "goals", "feedback", "notifier"} <= set(SERVICES)


@pytest.mark.parametrize("kustomization", kustomizations())
def test_every_kustomization_renders_and_passes_the_kubernetes_schemas(
        kustomization: str) -> None:
    objects = rendered(kustomization)
    assert objects, f"{kustomization} renders nothing"
    assert schema_problems(objects) == []


@pytest.mark.parametrize("overlay", sorted(DEPLOYABLE))
@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_deployed_with_its_invariants(overlay: str, service: str) -> None:
    assert service_problems(rendered(overlay), service, keda=DEPLOYABLE[overlay]) == []


@pytest.mark.parametrize("overlay", sorted(DEPLOYABLE))
def test_production_topics_are_replicated(overlay: str) -> None:
    settings = platform_settings(rendered(overlay))
    assert int(settings["TOPIC_REPLICATION_FACTOR"]) >= 3
    assert int(settings["TOPIC_MIN_INSYNC_REPLICAS"]) == 2
    job = find(rendered(overlay), "Job", "coaching-topics")
    assert job is not None, "no topic provisioning Job"
    assert pod_problems(job) == []


@pytest.mark.parametrize("service", SERVICES)
def test_configured_variables_are_ones_the_service_reads(service: str) -> None:
    """A misspelt variable would be ignored silently (settings ignore unknown names)."""
    objects = rendered("overlays/production")
    readable = settings_fields(service)
    platform_extra = set(platform_settings(objects)) - readable - topic_script_variables()
    assert platform_extra == set()
    own = next(o for o in objects if o["kind"] == "ConfigMap"
               and o["metadata"]["name"].startswith(f"coaching-{service}-"))
    assert set(own.get("data", {})) - readable == set()


def test_without_keda_has_no_custom_resources() -> None:
    kinds = {o["kind"] for o in rendered("overlays/without-keda")}
    assert "ScaledObject" not in kinds and "HorizontalPodAutoscaler" in kinds


def test_the_broken_fixture_overlay_is_caught() -> None:
    """A careless edit in an overlay: every invariant it breaks is reported."""
    objects = render(BROKEN_OVERLAY)
    schema = schema_problems(objects)
    assert any("Deployment coaching-goals" in p and "replicas" in p for p in schema), schema
    problems = service_problems(objects, "goals", keda=True)
    expected = ["readinessProbe does not GET /health/ready", "pod runs as uid 0",
                "memory request or limit missing", "root filesystem is writable",
                "maxReplicaCount 48 exceeds the 12 topic partitions",
                "no lag trigger for consumed topics",
                "egress to every port"]
    for fragment in expected:
        assert any(fragment in p for p in problems), (fragment, problems)
    assert service_problems(objects, "feedback", keda=True) == []


@pytest.mark.parametrize("breakage", [
    ("livenessProbe", lambda d: d["spec"]["template"]["spec"]["containers"][0].pop(
        "livenessProbe")),
    ("cpu request or limit missing", lambda d: d["spec"]["template"]["spec"]["containers"][0][
        "resources"]["limits"].pop("cpu")),
    ("runAsNonRoot", lambda d: d["spec"]["template"]["spec"]["securityContext"].update(
        runAsNonRoot=False)),
    ("allowPrivilegeEscalation", lambda d: d["spec"]["template"]["spec"]["containers"][0][
        "securityContext"].update(allowPrivilegeEscalation=True)),
    ("not pinned", lambda d: d["spec"]["template"]["spec"]["containers"][0].update(
        image="ghcr.io/coaching-platform/coaching-goals:latest")),
], ids=lambda b: b[0])
def test_each_deployment_invariant_catches_its_breakage(breakage: tuple[str, Any]) -> None:
    fragment, breaks = breakage
    deployment = copy.deepcopy(find(rendered("overlays/production"), "Deployment",
                                    "coaching-goals"))
    assert deployment_problems(deployment) == []
    breaks(deployment)
    assert any(fragment in p for p in deployment_problems(deployment))
