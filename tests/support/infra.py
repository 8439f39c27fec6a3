"""Where the tests get a real Kafka broker and a real MongoDB-wire server, in this order:

1. `KAFKA_BOOTSTRAP_SERVERS` and `MONGODB_URL` are set: use them (a cluster, a compose stack);
2. a Docker engine answers: testcontainers with pinned images;
3. otherwise: the project's own local Kafka and FerretDB, on free ports in a temp folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"
MONGO_IMAGE = "mongo:7.0.16"


@dataclass(frozen=True)
class Infrastructure:
    kafka_bootstrap_servers: str
    mongodb_url: str
    kind: str
    # Set for the local kind only: lets fault tests kill and restart the servers.
    kafka: object | None = None
    ferretdb: object | None = None


def local_module(name: str) -> ModuleType:
    """Import a module of deploy/local by path (they are scripts, not an installed package)."""
    folder = REPO_ROOT / "deploy" / "local"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextmanager
def infrastructure(workdir: Path) -> Iterator[Infrastructure]:
    """Yield running infrastructure for a test session; stop what was started."""
    kafka_env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    mongo_env = os.environ.get("MONGODB_URL")
    if kafka_env and mongo_env:
        yield Infrastructure(kafka_env, mongo_env, "external")
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.mongodb import MongoDbContainer

        with KafkaContainer(KAFKA_IMAGE).with_kraft() as kafka, \
                MongoDbContainer(MONGO_IMAGE) as mongo:
            yield Infrastructure(kafka.get_bootstrap_server(), mongo.get_connection_url(),
                                 "testcontainers")
        return
    local_kafka = local_module("local_kafka")
    local_ferretdb = local_module("local_ferretdb")
    local_kafka.install()
    local_ferretdb.install()
    with ExitStack() as stack:
        kafka = local_kafka.KafkaServer(workdir / "kafka")
        ferretdb = local_ferretdb.FerretDBServer(workdir / "ferretdb")
        stack.callback(kafka.stop)
        stack.callback(ferretdb.stop)
        ferretdb.start()
        kafka.start()
        yield Infrastructure(kafka.bootstrap_servers, ferretdb.url, "local", kafka, ferretdb)
