"""The platform as separate OS processes that a fault injector may kill, pause and restart.

Kafka and FerretDB keep their data folder and port across restarts (as a node restarted by
its supervisor would); each service replica keeps its HTTP port. Every member can be
SIGKILLed, SIGSTOPped and SIGCONTinued through its process group.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from support.infra import local_module
from support.processes import ServiceProcess

procs = local_module("procs")
local_kafka = local_module("local_kafka")
local_ferretdb = local_module("local_ferretdb")

SERVICES = ("assessment", "goals", "feedback", "notifier")
KAFKA, FERRETDB = "kafka", "ferretdb"


@dataclass
class Member:
    """One process of the cluster: a server (Kafka, FerretDB) or a service replica."""

    name: str
    kind: str  # kafka, ferretdb or a service name
    server: Any = None  # KafkaServer / FerretDBServer
    service: ServiceProcess | None = None
    # Held while the member is deliberately down or starting: the watchdog leaves it alone.
    lock: threading.Lock = field(default_factory=threading.Lock)
    starts: int = 0

    @property
    def pid(self) -> int | None:
        if self.server is not None:
            return self.server.pid
        process = self.service.process if self.service else None
        return process.pid if process is not None else None

    def running(self) -> bool:
        if self.server is not None:
            return self.server.running()
        return self.service is not None and self.service.process is not None \
            and self.service.process.running()

    def start(self) -> None:
        """Start (or restart) on the same data folder and port; servers wait until ready."""
        self.starts += 1
        if self.server is not None:
            self.server.start()
        else:
            self.service.start()

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash or an OOM kill would."""
        if self.server is not None:
            self.server.kill()
        else:
            self.service.kill()

    def signal(self, number: int) -> None:
        pid = self.pid
        if pid is not None:
            try:
                os.killpg(pid, number)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        self.signal(signal.SIGCONT)  # a paused process could not handle SIGTERM
        if self.server is not None:
            self.server.stop()
        elif self.service is not None:
            self.service.stop()

    def ready(self) -> bool:
        """Servers are ready once start() returned; services when /health/ready says so."""
        if not self.running():
            return False
        if self.server is not None:
            return True
        try:
            return httpx.get(f"{self.service.url}/health/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


@dataclass
class Cluster:
    """Kafka, FerretDB and the four services (some with several replicas), each a process."""

    workdir: Path
    replicas: dict[str, int]
    service_env: dict[str, dict[str, str]]
    members: list[Member] = field(default_factory=list)

    @property
    def kafka(self) -> Member:
        return self.member(KAFKA)

    @property
    def ferretdb(self) -> Member:
        return self.member(FERRETDB)

    def member(self, name: str) -> Member:
        return next(m for m in self.members if m.name == name)

    def replicas_of(self, service: str) -> list[Member]:
        return [m for m in self.members if m.kind == service]

    def urls(self, service: str) -> list[str]:
        return [m.service.url for m in self.replicas_of(service)]

    def start(self, ready_timeout: float = 180) -> None:
        """Start everything and wait until every service answers ready."""
        local_kafka.install()
        local_ferretdb.install()
        ferretdb = local_ferretdb.FerretDBServer(self.workdir / FERRETDB)
        kafka = local_kafka.KafkaServer(self.workdir / KAFKA)
        self.members = [Member(FERRETDB, FERRETDB, server=ferretdb),
                        Member(KAFKA, KAFKA, server=kafka)]
        for member in self.members:
            member.start()
        common = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
                  "MONGODB_URL": ferretdb.url}
        for service in SERVICES:
            count = self.replicas.get(service, 1)
            for number in range(1, count + 1):
                name = service if count == 1 else f"{service}-{number}"
                process = ServiceProcess(service, {**common, **self.service_env.get(service, {})},
                                         self.workdir / "logs" / name)
                self.members.append(Member(name, service, service=process))
        for member in self.members[2:]:
            member.start()
        wait_until(lambda: all(m.ready() for m in self.members), ready_timeout,
                   lambda: "not ready: " + ", ".join(m.name for m in self.members
                                                     if not m.ready()))

    def stop(self) -> None:
        for member in reversed(self.members):
            member.stop()

    def restart_dead(self) -> list[str]:
        """Start members that died on their own (e.g. a service that could not reach Kafka
        while starting), as a process supervisor would; the names restarted."""
        restarted = []
        for member in self.members:
            if member.lock.acquire(blocking=False):
                try:
                    if not member.running():
                        member.start()
                        restarted.append(member.name)
                finally:
                    member.lock.release()
        return restarted

    def log_paths(self) -> dict[str, str]:
        paths = {}
        for member in self.members:
            path = member.server.log_path if member.server is not None \
                else member.service.log_dir / f"{member.kind}.log"
            paths[member.name] = str(path)
        return paths


def wait_until(condition, timeout: float, describe=lambda: "", interval: float = 0.5) -> None:
    """Poll condition() until true; AssertionError with describe() after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {describe()}")
        time.sleep(interval)


@contextmanager
def running_cluster(workdir: Path, replicas: dict[str, int],
                    service_env: dict[str, dict[str, str]]) -> Iterator[Cluster]:
    cluster = Cluster(workdir, replicas, service_env)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def clock_epoch() -> str:
    """One epoch for every feedback replica and restart: the compressed calendar never jumps."""
    return datetime.now().astimezone().isoformat()
