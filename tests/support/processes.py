"""Running the services as separate processes, as they run in production."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from support.infra import local_module

procs = local_module("procs")

SERVICES = ("assessment", "goals", "feedback", "notifier")


@dataclass
class ServiceProcess:
    """One service, started from its installed entry point."""

    name: str
    env: dict[str, str]
    log_dir: Path
    port: int = field(default_factory=lambda: procs.free_port())
    process: object | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        entry = Path(sys.executable).parent / f"coaching-{self.name}"
        env = {**os.environ, **self.env, "HTTP_PORT": str(self.port), "HTTP_HOST": "127.0.0.1"}
        self.process = procs.ManagedProcess(self.name, [str(entry)],
                                            self.log_dir / f"{self.name}.log", env=env)
        self.process.start()

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait for /health/ready, or fail with the service's log tail."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.process.running():
                raise AssertionError(f"{self.name} exited:\n"
                                     f"{procs.log_tail(self.process.log_path)}")
            try:
                last = httpx.get(f"{self.url}/health/ready", timeout=2)
                if last.status_code == 200:
                    return
            except httpx.HTTPError as error:
                last = error
            time.sleep(0.3)
        raise AssertionError(f"{self.name} not ready in {timeout}s ({last!r}):\n"
                             f"{procs.log_tail(self.process.log_path)}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
