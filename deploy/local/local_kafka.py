"""A real Apache Kafka broker for dev and tests, without Docker and without the release tarball.

The broker's jars come from Maven Central (see kafka/pom.xml), cached under
`infra_home()/kafka-<version>/libs`; the broker runs as one KRaft node that is both broker and
controller, on loopback, with its data in a folder of the caller's choosing.

Standard library only, so it runs before the project's virtual environment exists.

    python deploy/local/local_kafka.py install
    python deploy/local/local_kafka.py run --port 9092     # foreground, Ctrl-C stops
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

try:
    from . import procs  # imported as part of a package (deploy.local.local_kafka)
except ImportError:
    import procs  # run as a script, or with deploy/local on sys.path

KAFKA_VERSION = "4.1.1"
MIN_JAVA = 17  # every Kafka 4.x broker needs Java 17+

_HERE = Path(__file__).resolve().parent
POM = _HERE / "kafka" / "pom.xml"
LOG4J_CONFIG = _HERE / "kafka" / "log4j2.xml"

# Logged by kafka.server.KafkaRaftServer once broker and controller are both up.
STARTED_LINE = "Kafka Server started"


# --- install -------------------------------------------------------------------------------


def _install_fingerprint() -> str:
    """What the cached install was made from: a changed pom or version means a fresh install."""
    digest = hashlib.sha256(POM.read_bytes())
    digest.update(KAFKA_VERSION.encode())
    return digest.hexdigest()


def install(home: Path | None = None) -> Path:
    """Install the broker's jars (idempotent, cached) and return the libs folder.

    The first run resolves the classpath through Maven (tens of seconds, network); later runs
    only compare a marker file. The marker is written last, so an interrupted install is redone.
    Raises InfraError with the tail of `<home>/logs/kafka-install.log` on failure.
    """
    home = Path(home) if home is not None else procs.infra_home()
    root = home / f"kafka-{KAFKA_VERSION}"
    libs = root / "libs"

    def build() -> None:
        # Start from an empty folder: stale jars of another version would share the classpath.
        shutil.rmtree(libs, ignore_errors=True)
        mvn = shutil.which("mvn")
        if mvn is None:
            raise procs.InfraError("Maven (mvn) is not on PATH; it is needed to install Kafka "
                                   "from Maven Central")
        log_path = home / "logs" / "kafka-install.log"
        log_path.unlink(missing_ok=True)
        procs.run_step(
            # -Dkafka.version overrides the pom's property: KAFKA_VERSION is the one to edit.
            [mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(POM),
             "dependency:copy-dependencies", "-DincludeScope=runtime",
             f"-DoutputDirectory={libs}", f"-Dkafka.version={KAFKA_VERSION}"],
            log_path, f"installing Kafka {KAFKA_VERSION} with Maven", timeout=900)
        expected = (f"kafka_2.13-{KAFKA_VERSION}.jar", "log4j-slf4j-impl-*.jar", "log4j-core-*.jar")
        for jar in expected:
            if not any(libs.glob(jar)):
                raise procs.InfraError(f"Kafka install is missing {jar} in {libs}; last lines of "
                                       f"{log_path}:\n{procs.log_tail(log_path)}")

    return procs.cached_install(root, _install_fingerprint(), build, libs)


# --- java ----------------------------------------------------------------------------------


@functools.cache
def java_binary() -> str:
    """`$JAVA_HOME/bin/java` if JAVA_HOME is set, else `java` on PATH; checked to be Java 17+."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        java = Path(java_home) / "bin" / "java"
        if not java.is_file():
            raise procs.InfraError(f"JAVA_HOME={java_home} has no bin/java")
        java = str(java)
    else:
        java = shutil.which("java")
        if java is None:
            raise procs.InfraError(f"no java on PATH and JAVA_HOME unset: Kafka {KAFKA_VERSION} "
                                   f"needs Java {MIN_JAVA}+")
    result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    banner = (result.stderr or result.stdout).strip()
    # 'openjdk version "17.0.15" ...' or, before Java 9, 'java version "1.8.0_392"'.
    match = re.search(r'version "(\d+)(?:\.(\d+))?', banner)
    if result.returncode != 0 or match is None:
        raise procs.InfraError(f"could not tell the version of {java}: {banner!r}")
    major = int(match.group(1))
    if major == 1 and match.group(2):
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise procs.InfraError(f"Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+, but {java} is Java "
                               f"{major}; set JAVA_HOME to a JDK {MIN_JAVA} or newer")
    return java


def _size_bytes(size: str) -> int:
    """A JVM memory size like '512m' or '1g' in bytes."""
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", size)
    if match is None:
        raise ValueError(f"not a JVM memory size: {size!r} (expected e.g. '512m', '1g')")
    return int(match.group(1)) * 1024 ** " kmg".index(match.group(2).lower() or " ")


def _cluster_id() -> str:
    """A random cluster id, as `kafka-storage.sh random-uuid` makes it (without a JVM start)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):  # Kafka refuses ids that would read as a command-line flag
            return cid


# --- the broker ----------------------------------------------------------------------------


class KafkaServer(procs.LocalServer):
    """One local KRaft node (broker and controller) on 127.0.0.1, its data in data_dir.

    Ports are fixed at construction, so stop() then start() on the same object comes back at
    the same address with the same data. A new object on the same data_dir also keeps the data
    (storage is formatted only once), even with other ports.
    """

    def __init__(self, data_dir: Path, port: int | None = None,
                 controller_port: int | None = None, heap: str = "512m") -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port if port is not None else procs.free_port()
        self.controller_port = (controller_port if controller_port is not None
                                else procs.free_port())
        if self.controller_port == self.port:
            raise ValueError(f"broker and controller need different ports (both {self.port})")
        self.heap = heap
        _size_bytes(heap)  # fail early on a typo
        self.log_path = self.data_dir / "kafka.log"
        self.config_path = self.data_dir / "server.properties"
        self.log_dirs = self.data_dir / "data"
        self._process: procs.ManagedProcess | None = None
        self.stop_timeout = 30  # a clean broker shutdown flushes logs and hands over

    @property
    def bootstrap_servers(self) -> str:
        """Where clients connect: '127.0.0.1:<port>'."""
        return f"127.0.0.1:{self.port}"

    def __repr__(self) -> str:
        return (f"KafkaServer({self.bootstrap_servers}, controller port {self.controller_port}, "
                f"data {self.data_dir})")

    def _write_config(self) -> None:
        listeners = (f"PLAINTEXT://127.0.0.1:{self.port},"
                     f"CONTROLLER://127.0.0.1:{self.controller_port}")
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            # A dynamic quorum (formatted with --standalone): the controller's endpoint lives in
            # the metadata log and is updated at election, so a restart may change ports.
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "listeners": listeners,
            "advertised.listeners": listeners,
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.log_dirs),
            "auto.create.topics.enable": "true",
            "num.partitions": "3",
            # One node: every internal topic at replication factor 1; few partitions so the
            # first consumer group or transaction does not wait for 50 partitions to be created.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "3",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "share.coordinator.state.topic.num.partitions": "3",
            "group.initial.rebalance.delay.ms": "0",
            # After a crash (kill()) the restarted broker waits until the controller has expired
            # the dead incarnation's session: 9 s by default, 5 s here. Heartbeats stay well
            # inside it, so a busy 2-core machine does not fence the only broker.
            "broker.heartbeat.interval.ms": "1000",
            "broker.session.timeout.ms": "5000",
            # The default (128 MiB) is allocated up front; Kafka wants more than 1 MiB per
            # cleaner thread (exactly 1 MiB is refused).
            "log.cleaner.dedupe.buffer.size": str(4 * 1024 * 1024),
        }
        text = "# Written by deploy/local/local_kafka.py at every start; edits are overwritten.\n"
        text += "".join(f"{key}={value}\n" for key, value in settings.items())
        self.config_path.write_text(text)

    @staticmethod
    def _java_argv(libs: Path, jvm_options: list[str], main_class: str, *args: str) -> list[str]:
        return [java_binary(), *jvm_options, f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
                "-Djava.awt.headless=true", "-cp", str(libs / "*"), main_class, *args]

    def formatted(self) -> bool:
        """Whether the storage in data_dir was already formatted (then its data is kept)."""
        return (self.log_dirs / "meta.properties").is_file()

    def _format(self, libs: Path) -> None:
        procs.run_step(
            self._java_argv(libs, [], "kafka.tools.StorageTool", "format", "--standalone",
                            "--cluster-id", _cluster_id(), "--config", str(self.config_path)),
            self.log_path, f"formatting Kafka storage in {self.log_dirs}", timeout=120)

    def start(self, timeout: float = 90) -> None:
        """Start the broker and wait until it serves clients; InfraError with the log tail if not.

        Ready means the process logged "Kafka Server started" (broker unfenced, listeners
        accepting requests) and the client port accepts connections: the port alone opens
        before the broker can answer requests.
        """
        if self.running():
            return
        for port in (self.port, self.controller_port):
            if procs.port_open(port):
                raise procs.InfraError(f"cannot start Kafka: port {port} is already in use")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        libs = install()
        self._write_config()
        if not self.formatted():
            self._format(libs)

        # -Xms above -Xmx would stop the JVM, so a heap below 256m is also the initial heap.
        initial_heap = self.heap if _size_bytes(self.heap) < 256 * 1024 ** 2 else "256m"
        argv = self._java_argv(libs, [f"-Xms{initial_heap}", f"-Xmx{self.heap}", "-XX:+UseG1GC"],
                               "kafka.Kafka", str(self.config_path))
        # The log is appended to across restarts: look for the started line only past this point.
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._process = procs.ManagedProcess(f"kafka {self.bootstrap_servers}", argv,
                                             self.log_path, cwd=self.data_dir)
        started_at = time.monotonic()
        self._process.start()
        try:
            self._wait_ready(offset, started_at + timeout)
        except BaseException:
            self._process.kill()  # no half-started broker left behind
            raise

    def _wait_ready(self, log_offset: int, deadline: float) -> None:
        process = self._process
        seen_started = False
        while True:
            if not process.running():
                raise self._failure(f"Kafka exited (code {process.popen.returncode}) while "
                                    f"starting", log_offset)
            if not seen_started:
                seen_started = STARTED_LINE in self._log_since(log_offset)
            if seen_started and procs.port_open(self.port):
                return
            if time.monotonic() > deadline:
                raise self._failure(f"Kafka did not start on {self.bootstrap_servers} in time",
                                    log_offset)
            time.sleep(0.2)

    def _log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def _failure(self, what: str, log_offset: int) -> procs.InfraError:
        """An InfraError with this run's errors and the log tail.

        Kafka logs its whole shutdown after a fatal startup error, which pushes the cause out of
        the tail, so the ERROR lines and their "Caused by" lines are quoted first.
        """
        causes = [line for line in self._log_since(log_offset).splitlines()
                  if " ERROR " in line or " FATAL " in line or line.startswith("Caused by:")]
        report = f"{what}; see {self.log_path}"
        if causes:
            report += "\nerrors:\n" + "\n".join(dict.fromkeys(causes[:12]))  # dedupe, keep order
        return procs.InfraError(f"{report}\nlast lines:\n{procs.log_tail(self.log_path, 20)}")


# --- command line --------------------------------------------------------------------------


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="local_kafka.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="install (or check) the cached broker jars")
    run = commands.add_parser("run", help="run a broker in the foreground until Ctrl-C")
    run.add_argument("--port", type=int, default=9092, help="client port (default 9092)")
    run.add_argument("--controller-port", type=int, default=None,
                     help="KRaft controller port (default: a free one)")
    run.add_argument("--data-dir", type=Path, default=None,
                     help="broker data (default: <infra home>/kafka-data, kept between runs)")
    run.add_argument("--heap", default="512m", help="JVM max heap (default 512m)")
    args = parser.parse_args(argv)

    try:
        if args.command == "install":
            began = time.monotonic()
            libs = install()
            print(f"Kafka {KAFKA_VERSION} jars in {libs} ({time.monotonic() - began:.1f}s)")
            return 0

        data_dir = args.data_dir or procs.infra_home() / "kafka-data"
        server = KafkaServer(data_dir, port=args.port, controller_port=args.controller_port,
                             heap=args.heap)
        # SIGTERM (e.g. from a supervisor) stops the broker like Ctrl-C does.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        began = time.monotonic()
        try:
            server.start()
            print(f"Kafka {KAFKA_VERSION} ready on {server.bootstrap_servers} after "
                  f"{time.monotonic() - began:.1f}s; data in {server.data_dir}, log in "
                  f"{server.log_path}. Ctrl-C stops it.", flush=True)
            while server.running():
                time.sleep(0.5)
            print(f"Kafka exited; last lines of {server.log_path}:\n"
                  f"{procs.log_tail(server.log_path)}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            if server.running():
                print("stopping Kafka ...", flush=True)
                server.stop()
    except procs.InfraError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(_main())
