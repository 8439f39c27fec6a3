"""Process plumbing for the local infrastructure: ports, readiness waits, start and stop.

Standard library only, so it runs before the project's virtual environment exists.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


class InfraError(RuntimeError):
    """A piece of local infrastructure could not be installed or started."""


def infra_home() -> Path:
    """Where installs are cached: `$COACHING_INFRA_HOME`, else `<repo>/.infra` (git-ignored)."""
    home = Path(os.environ.get("COACHING_INFRA_HOME", REPO_ROOT / ".infra"))
    home.mkdir(parents=True, exist_ok=True)
    return home


def cached_install(folder: Path, stamp: str, build: Callable[[], None], product: Path) -> Path:
    """Run build() unless folder holds a finished install with this stamp; return product.

    The `.installed` marker is written only after build() succeeded, so an interrupted
    install is redone; a file lock serialises concurrent installers (parallel test sessions,
    CI jobs sharing a cache).
    """
    marker = folder / ".installed"

    def done() -> bool:
        return marker.is_file() and marker.read_text() == stamp and product.exists()

    if done():
        return product
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be installing right now
        if done():
            return product
        marker.unlink(missing_ok=True)
        build()
        if not product.exists():
            raise InfraError(f"the install finished but {product} is missing")
        marker.write_text(stamp)
    return product


def go_tool() -> str:
    """The Go toolchain, for tools built from the Go module proxy."""
    fallback = Path(os.environ.get("GOROOT", "/usr/local/go")) / "bin" / "go"
    go = shutil.which("go") or (str(fallback) if fallback.is_file() else None)
    if go is None:
        raise InfraError("the Go toolchain is needed to build FerretDB and kustomize: "
                         "`go` is not on PATH")
    return go


def go_env() -> dict[str, str]:
    """Environment for go commands; the Go caches stay at their (shared) defaults."""
    env = dict(os.environ)
    env["CGO_ENABLED"] = "0"  # pure-Go builds: no C toolchain involved
    # "auto" uses the local Go when it is new enough and otherwise fetches the toolchain a
    # go.mod asks for through the module proxy; a distribution's go.env may say "local",
    # which would just fail on an older Go. An explicit GOTOOLCHAIN in the caller's
    # environment wins.
    env.setdefault("GOTOOLCHAIN", "auto")
    env["GOWORK"] = "off"  # a go.work above the build folder must not pull the build into it
    return env


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, or a note that there is none."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def run_step(argv: list[str], log_path: Path, what: str, cwd: Path | None = None,
             env: dict[str, str] | None = None, timeout: float = 1800) -> None:
    """Run an install step to completion, its output in log_path; fail with the log tail."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"\n$ {' '.join(argv)}\n".encode())
        log.flush()
        result = subprocess.run(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                timeout=timeout, check=False)
    if result.returncode != 0:
        raise InfraError(f"{what} failed (exit {result.returncode}); "
                         f"last lines of {log_path}:\n"
                         f"{log_tail(log_path)}")


@dataclass
class ManagedProcess:
    """A long-running child process with its output in a log file.

    Started in its own process group so stop() also ends anything it spawned.
    """

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.popen = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd,
                                          start_new_session=True)
        finally:
            log.close()

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_for_port(self, port: int, timeout: float) -> None:
        """Wait until the process accepts connections on port, or fail with its log tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                code = self.popen.returncode if self.popen else None
                raise InfraError(f"{self.name} exited (code {code}) before listening on port "
                                 f"{port}; last lines of {self.log_path}:\n"
                                 f"{log_tail(self.log_path)}")
            if port_open(port):
                return
            time.sleep(0.2)
        raise InfraError(f"{self.name} did not listen on port {port} within {timeout:.0f}s; "
                         f"last lines of {self.log_path}:\n{log_tail(self.log_path)}")

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash, for fault-injection tests."""
        if self.running():
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:  # it died on its own meanwhile
                pass
            self.popen.wait()

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the process group, then SIGKILL what is left after timeout."""
        if not self.running():
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


class LocalServer:
    """What the local servers (Kafka, FerretDB) share: one managed process, stop and kill.

    Subclasses set `self._process` in their start().
    """

    _process: ManagedProcess | None = None
    stop_timeout: float = 20

    def stop(self, timeout: float | None = None) -> None:
        """Shut down cleanly (SIGTERM), SIGKILL after timeout seconds."""
        if self._process is not None:
            self._process.stop(self.stop_timeout if timeout is None else timeout)

    def kill(self) -> None:
        """SIGKILL, as in a crash (fault-injection tests); start() again recovers the data."""
        if self._process is not None:
            self._process.kill()

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (its process group has the same id)."""
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        """Whether the server process is alive (not necessarily ready)."""
        return self._process is not None and self._process.running()

    def __enter__(self):  # the subclass, started
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
