"""The container image recipe and the compose stack, checked without a Docker engine.

The Dockerfile is parsed (dockerfile-parse) and its invariants asserted: multi-stage, a slim
Python base, dependencies from uv.lock, an unprivileged user, a health check, no build tools
in the final stage. The compose file is parsed (PyYAML) and must name every service found
under services/, with Kafka in KRaft mode, MongoDB as a replica set with its init step, topic
provisioning, and the demo's SMTP and webhook sinks. Broken variants are caught as well.
"""

from __future__ import annotations

import importlib
import io
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
COMPOSE = REPO / "deploy" / "compose" / "compose.yaml"
SERVICES = sorted(p.parent.name for p in REPO.glob("services/*/pyproject.toml"))
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|cc|clang|make|build-essential|uv|pip install|"
                         r"apt-get install|apk add)\b")


# -- Dockerfile ----------------------------------------------------------------------------

def dockerfile_stages(text: str) -> list[list[dict[str, Any]]]:
    """Instructions grouped by build stage, ARG defaults before the first FROM substituted."""
    # Parse from memory: given no file, dockerfile-parse writes ./Dockerfile.
    parser = DockerfileParser(fileobj=io.StringIO(text))
    stages: list[list[dict[str, Any]]] = []
    global_args: dict[str, str] = {}
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            value = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m.group(1), m.group(0)),
                           instruction["value"])
            stages.append([{**instruction, "value": value}])
        elif stages:
            stages[-1].append(instruction)
        elif instruction["instruction"] == "ARG" and "=" in instruction["value"]:
            name, default = instruction["value"].split("=", 1)
            global_args[name.strip()] = default.strip()
    return stages


def dockerfile_problems(text: str) -> list[str]:
    """What a service image must be, per the deployment issue."""
    stages = dockerfile_stages(text)
    if len(stages) < 2:
        return ["not a multi-stage build"]
    problems: list[str] = []
    final = stages[-1]
    base = final[0]["value"].split()[0]
    if not re.fullmatch(r"python:3\.11[\w.-]*-slim[\w.-]*", base):
        problems.append(f"final stage is based on {base}, not a slim Python 3.11 image")
    body = "\n".join(f"{i['instruction']} {i['value']}" for stage in stages[:-1]
                     for i in stage)
    if not re.search(r"uv sync --frozen --no-dev", body):
        problems.append("the build does not install from the lock (uv sync --frozen --no-dev)")
    users = [i["value"].split(":")[0] for i in final if i["instruction"] == "USER"]
    if not users or users[-1] in {"root", "0"}:
        problems.append("the final stage runs as root")
    checks = [i["value"] for i in final if i["instruction"] == "HEALTHCHECK"]
    if not checks or "/health/live" not in checks[-1]:
        problems.append("no HEALTHCHECK on /health/live")
    for instruction in final:
        if instruction["instruction"] == "RUN" and BUILD_TOOLS.search(instruction["value"]):
            problems.append(f"the final stage installs or runs build tools: "
                            f"{instruction['value']}")
        if instruction["instruction"] == "COPY" and "--from=uv" in instruction["value"]:
            problems.append("the final stage copies the uv binary")
    env = " ".join(i["value"] for i in final if i["instruction"] == "ENV")
    if "HTTP_HOST=0.0.0.0" not in env:
        problems.append("the container does not listen on all interfaces (HTTP_HOST)")
    entrypoints = [i["value"] for i in final if i["instruction"] == "ENTRYPOINT"]
    if not entrypoints or not entrypoints[-1].lstrip().startswith("["):
        problems.append("no exec-form ENTRYPOINT: signals would not reach the service")
    return problems


def test_the_dockerfile_meets_every_image_invariant() -> None:
    assert dockerfile_problems(DOCKERFILE.read_text()) == []


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_console_script_the_image_runs(service: str) -> None:
    """The image links coaching-<service>, the script each package declares."""
    project = tomllib.loads((REPO / "services" / service / "pyproject.toml").read_text())
    assert f"coaching-{service}" in project["project"]["scripts"]
    assert 'ln -s "coaching-${SERVICE}"' in DOCKERFILE.read_text()


BROKEN_DOCKERFILE = """\
FROM python:3.11 AS runtime
RUN apt-get update && apt-get install -y gcc
COPY . /app
RUN pip install /app
CMD coaching-goals
"""


@pytest.mark.parametrize(("edit", "fragment"), [
    (lambda t: t.replace("USER 10001:10001", "USER root"), "runs as root"),
    (lambda t: re.sub(r"HEALTHCHECK .*?\]\n", "", t, flags=re.S), "no HEALTHCHECK"),
    (lambda t: t.replace("ARG PYTHON_IMAGE=python:3.11-slim-bookworm",
                         "ARG PYTHON_IMAGE=python:3.11-bookworm"), "not a slim"),
    (lambda t: t.replace("USER 10001:10001",
                         "RUN apt-get update && apt-get install -y build-essential\n"
                         "USER 10001:10001"), "build tools"),
    (lambda t: BROKEN_DOCKERFILE, "not a multi-stage build"),
], ids=["root", "no-healthcheck", "fat-base", "compiler", "single-stage"])
def test_a_broken_dockerfile_is_caught(edit: Any, fragment: str) -> None:
    problems = dockerfile_problems(edit(DOCKERFILE.read_text()))
    assert any(fragment in p for p in problems), problems


# -- compose -------------------------------------------------------------------------------

def settings_fields(service: str) -> set[str]:
    from coaching_shared.settings import ServiceSettings

    module = importlib.import_module(f"coaching_{service}.settings")
    return {name.upper() for cls in vars(module).values()
            if isinstance(cls, type) and issubclass(cls, ServiceSettings)
            for name in cls.model_fields}


def compose_problems(compose: dict[str, Any]) -> list[str]:
    """The stack the issue asks for, every service included."""
    services = compose.get("services", {})
    problems: list[str] = []
    kafka = services.get("kafka", {})
    if not str(kafka.get("image", "")).startswith("apache/kafka:"):
        problems.append("Kafka is not the official apache/kafka image")
    roles = str(kafka.get("environment", {}).get("KAFKA_PROCESS_ROLES", ""))
    if set(roles.split(",")) != {"broker", "controller"}:
        problems.append("Kafka does not run in KRaft mode (broker,controller)")
    mongo = services.get("mongo", {})
    if not str(mongo.get("image", "")).startswith("mongo:"):
        problems.append("MongoDB is not the official mongo image")
    if "--replSet" not in mongo.get("command", []):
        problems.append("MongoDB is not started as a replica set")
    if "rs.initiate" not in " ".join(services.get("mongo-init", {}).get("entrypoint", [])):
        problems.append("no init step initiates the replica set")
    topics = services.get("kafka-init", {})
    script = next((v.split(":")[0] for v in topics.get("volumes", [])
                   if "provision-topics.sh" in v), None)
    if script is None or not (COMPOSE.parent / script).is_file():
        problems.append("no topic-provisioning step running provision-topics.sh")
    for sink in ("mailpit", "webhook-sink"):
        if sink not in services:
            problems.append(f"no {sink} for the demo")
    for name in SERVICES:
        service = services.get(name)
        if service is None:
            problems.append(f"{name}: not in the compose file")
            continue
        build = service.get("build", {})
        if build.get("args", {}).get("SERVICE") != name:
            problems.append(f"{name}: not built with SERVICE={name}")
        if not (COMPOSE.parent / build.get("context", "") / build.get("dockerfile", "")
                ).is_file():
            problems.append(f"{name}: its Dockerfile does not exist")
        env = service.get("environment", {})
        if "replicaSet=" not in str(env.get("MONGODB_URL", "")):
            problems.append(f"{name}: MONGODB_URL does not name the replica set")
        if unknown := set(env) - settings_fields(name):
            problems.append(f"{name}: sets variables it never reads: {sorted(unknown)}")
        for needed in ("kafka-init", "mongo-init"):
            condition = service.get("depends_on", {}).get(needed, {}).get("condition")
            if condition != "service_completed_successfully":
                problems.append(f"{name}: does not wait for {needed}")
        if service.get("read_only") is not True:
            problems.append(f"{name}: root filesystem is writable")
    smtp_host = services.get("notifier", {}).get("environment", {}).get("SMTP_HOST")
    if "notifier" in services and smtp_host not in services:
        problems.append(f"notifier: SMTP_HOST {smtp_host} is not a compose service")
    return problems


def load_compose(text: str) -> dict[str, Any]:
    return yaml.safe_load(text)


def test_the_compose_file_parses_and_names_every_service() -> None:
    compose = load_compose(COMPOSE.read_text())
    assert set(SERVICES) <= set(compose["services"])
    assert compose_problems(compose) == []


@pytest.mark.parametrize(("edit", "fragment"), [
    (lambda c: c["services"].pop("goals"), "goals: not in the compose file"),
    (lambda c: c["services"]["kafka"]["environment"].update(KAFKA_PROCESS_ROLES="broker"),
     "KRaft"),
    (lambda c: c["services"]["mongo"].update(command=["--bind_ip_all"]), "replica set"),
    (lambda c: c["services"]["feedback"]["environment"].update(KAFKA_BOOTSRAP_SERVERS="x"),
     "never reads"),
    (lambda c: c["services"]["notifier"]["depends_on"].pop("mongo-init"),
     "does not wait for mongo-init"),
], ids=["missing-service", "zookeeper-mode", "standalone-mongo", "misspelt-variable",
        "no-init-wait"])
def test_a_broken_compose_file_is_caught(edit: Any, fragment: str) -> None:
    compose = load_compose(COMPOSE.read_text())
    edit(compose)
    problems = compose_problems(compose)
    assert any(fragment in p for p in problems), problems
