"""FerretDB (MongoDB wire protocol on SQLite or PostgreSQL) built from the Go module proxy.

MongoDB's own server cannot be downloaded here, so dev and CI run FerretDB v1.24.2 instead
(see shared/INFRA.md for the recipe and for the MongoDB feature subset it supports).

    python deploy/local/local_ferretdb.py install
    python deploy/local/local_ferretdb.py run --port 27017 \
        [--backend postgresql --postgresql-url URL]

Standard library only, so it runs before the project's virtual environment exists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

if __package__:  # imported as part of a package (deploy.local.…)
    from . import procs
else:  # run as a script, or with deploy/local on sys.path
    import procs

FERRETDB_VERSION = "v1.24.2"
FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
BACKENDS = ("sqlite", "postgresql")
# Our two changes to FerretDB (README "Data"): update, findAndModify and delete run one at a
# time per database, so a single-document write is atomic as on MongoDB (FerretDB 1.24 reads,
# then writes back, and two writers of one document lose one of the writes); and a filter that
# pins `_id` reads through the `_id` index even when it has other conditions too (FerretDB
# 1.24 on SQLite reads the whole collection for anything but a bare `{_id: value}`).
PATCHES = [Path(__file__).with_name(name) for name in
           ("ferretdb-serialize-writes.patch", "ferretdb-use-id-index.patch")]

# For shells whose PATH lacks Go: $GOROOT, else where the official Go tarball installs.


def _install_dir(home: Path) -> Path:
    return home / f"ferretdb-{FERRETDB_VERSION}"


def binary_path(home: Path | None = None) -> Path:
    """Where install() puts the ferretdb binary (it may not exist yet)."""
    return _install_dir(home or procs.infra_home()) / "bin" / "ferretdb"


def _make_writable(root: Path) -> None:
    """The module cache is read-only (files 0444, dirs 0555); the build copy must not be."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in [dirpath, *(os.path.join(dirpath, f) for f in filenames)]:
            mode = os.lstat(name).st_mode
            if not stat.S_ISLNK(mode):
                os.chmod(name, mode | stat.S_IWUSR)


def _rmtree(path: Path) -> None:
    if path.exists():
        _make_writable(path)
        shutil.rmtree(path)


def _download_module(go: str, env: dict[str, str], log_path: Path, cwd: Path) -> dict:
    """`go mod download -json` FerretDB; returns its JSON record (Dir, Origin, ...)."""
    argv = [go, "mod", "download", "-json", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"]
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
                            check=False)
    with log_path.open("a") as log:
        log.write(f"\n$ {' '.join(argv)}\n{result.stdout}{result.stderr}")
    try:
        info = json.loads(result.stdout)
    except json.JSONDecodeError:
        info = {}
    if result.returncode != 0 or "Dir" not in info:
        detail = info.get("Error") or result.stderr.strip() or procs.log_tail(log_path)
        hint = ""
        if "sum.golang.org" in detail:  # FerretDB's go.sum still pins all its dependencies
            hint = "\n(checksum database unreachable? GOSUMDB=off in the environment skips it)"
        raise procs.InfraError(f"go mod download of {FERRETDB_MODULE}@{FERRETDB_VERSION} failed "
                         f"(exit {result.returncode}): {detail}{hint}\nfull log: {log_path}")
    return info


def install(home: Path | None = None) -> Path:
    """Build FerretDB once into `<home>/ferretdb-<version>/bin/ferretdb` and return that path.

    home defaults to procs.infra_home(). Later calls return at once (a marker file is written only
    after a successful build). Concurrent callers are serialised with a file lock. Build output
    goes to `<home>/logs/ferretdb-install.log`; a failure raises procs.InfraError with its tail.
    """
    home = Path(home) if home is not None else procs.infra_home()
    target = _install_dir(home)
    binary = target / "bin" / "ferretdb"
    return procs.cached_install(target, _stamp(),
                                lambda: _build(home, target, binary), binary)


def _stamp() -> str:
    """What the install marker records: the version and a digest of the patches applied."""
    digest = hashlib.sha256(b"".join(patch.read_bytes() for patch in PATCHES)).hexdigest()
    return f"{FERRETDB_VERSION}\npatches {digest[:16]}\n"


def _build(home: Path, target: Path, binary: Path) -> None:
    log_path = home / "logs" / "ferretdb-install.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a") as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"\n=== building FerretDB {FERRETDB_VERSION}, {stamp}\n")
    go, env = procs.go_tool(), procs.go_env()
    info = _download_module(go, env, log_path, cwd=target)

    # `go install ...@version` would build a binary that panics at start: build/version/version.txt
    # is git-ignored upstream and so missing from the module. Build a writable copy with it added.
    src = target / "src"
    _rmtree(src)  # leftovers of an interrupted build
    shutil.copytree(info["Dir"], src, symlinks=True)
    _make_writable(src)
    version_dir = src / "build" / "version"
    (version_dir / "version.txt").write_text(f"{FERRETDB_VERSION}\n")
    commit = (info.get("Origin") or {}).get("Hash")
    if commit:
        (version_dir / "commit.txt").write_text(f"{commit}\n")  # shown by --version / in logs
    for patch in PATCHES:
        procs.run_step(["patch", "--forward", "--batch", "-p1", "-i", str(patch)], log_path,
                       f"applying {patch.name} to FerretDB", cwd=src, env=env)

    tmp_binary = binary.with_name(binary.name + ".tmp")
    binary.parent.mkdir(parents=True, exist_ok=True)
    # -mod=readonly: build exactly what FerretDB's go.mod/go.sum pin, whatever GOFLAGS says.
    procs.run_step([go, "build", "-mod=readonly", "-trimpath", "-buildvcs=false", "-o",
                    str(tmp_binary), "./cmd/ferretdb"],
                   log_path, f"go build of FerretDB {FERRETDB_VERSION}", cwd=src, env=env)
    procs.run_step([str(tmp_binary), "--version"], log_path, "the freshly built ferretdb binary")
    os.replace(tmp_binary, binary)
    _rmtree(src)  # the module cache keeps the sources; a rebuild copies them again


# --- readiness check: a real OP_MSG round trip, standard library only ---

_OP_MSG = 2013


def _bson_ping() -> bytes:
    """BSON for {ping: 1, $db: "admin"}."""
    body = b"\x10ping\x00" + struct.pack("<i", 1)
    body += b"\x02$db\x00" + struct.pack("<i", len(b"admin\x00")) + b"admin\x00"
    return struct.pack("<i", 4 + len(body) + 1) + body + b"\x00"


def _bson_top_level(doc: bytes) -> dict[str, object]:
    """Top-level fields of a BSON document: numbers, bools and strings decoded, others skipped."""
    fixed = {0x01: 8, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16}
    fields: dict[str, object] = {}
    pos, end = 4, struct.unpack_from("<i", doc)[0] - 1
    while pos < end:
        kind = doc[pos]
        name_end = doc.index(b"\x00", pos + 1)
        name = doc[pos + 1:name_end].decode()
        pos = name_end + 1
        if kind == 0x01:
            fields[name] = struct.unpack_from("<d", doc, pos)[0]
        elif kind == 0x08:
            fields[name] = doc[pos] == 1
        elif kind == 0x10:
            fields[name] = struct.unpack_from("<i", doc, pos)[0]
        elif kind == 0x12:
            fields[name] = struct.unpack_from("<q", doc, pos)[0]
        if kind in fixed:
            pos += fixed[kind]
        elif kind == 0x02:  # string: int32 length (with NUL) + bytes
            size = struct.unpack_from("<i", doc, pos)[0]
            fields[name] = doc[pos + 4:pos + 4 + size - 1].decode(errors="replace")
            pos += 4 + size
        elif kind in (0x03, 0x04):  # embedded document / array: int32 total length
            pos += struct.unpack_from("<i", doc, pos)[0]
        elif kind == 0x05:  # binary: int32 length + subtype byte + data
            pos += 4 + 1 + struct.unpack_from("<i", doc, pos)[0]
        else:
            raise ValueError(f"unexpected BSON type 0x{kind:02x} in field {name!r}")
    return fields


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed mid-reply")
        data += chunk
    return data


def ping(port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> dict[str, object]:
    """Send `{ping: 1}` as an OP_MSG and return the reply's top-level fields (raises OSError)."""
    doc = _bson_ping()
    payload = struct.pack("<I", 0) + b"\x00" + doc  # flagBits, section kind 0 (body)
    request = struct.pack("<iiii", 16 + len(payload), 1, 0, _OP_MSG) + payload
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        length, _request_id, response_to, opcode = struct.unpack("<iiii", _recv_exact(sock, 16))
        if opcode != _OP_MSG or response_to != 1 or not 21 < length < 1 << 24:
            raise ConnectionError(f"not a MongoDB reply: opcode {opcode}, length {length}")
        body = _recv_exact(sock, length - 16)
    try:
        if body[4] != 0:  # after flagBits: a kind-0 (body) section
            raise ValueError(f"section kind {body[4]}")
        return _bson_top_level(body[5:])
    except (ValueError, struct.error, IndexError) as exc:
        raise ConnectionError(f"unreadable ping reply: {exc}") from exc


class FerretDBServer(procs.LocalServer):
    """A FerretDB process on 127.0.0.1 keeping its data (and log) in data_dir.

    backend "sqlite" stores one SQLite file per database under data_dir/sqlite; backend
    "postgresql" needs postgresql_url (a reachable server; FerretDB creates its own schemas).
    Restarting on the same data_dir keeps the data.
    """

    def __init__(self, data_dir: Path, port: int | None = None, backend: str = "sqlite",
                 postgresql_url: str | None = None, *, log_level: str = "INFO") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
        if backend == "postgresql" and not postgresql_url:
            raise ValueError('backend "postgresql" needs postgresql_url')
        self.data_dir = Path(data_dir).resolve()
        if backend == "sqlite" and any(c in str(self.data_dir) for c in "#?%"):
            # the SQLite URL is re-parsed after FerretDB decodes it: '#' and '?' would cut the
            # path short (the files land elsewhere), '%' would be decoded again
            raise ValueError(f"data_dir must not contain '#', '?' or '%': {self.data_dir}")
        self.port = port or procs.free_port()
        self.backend = backend
        self.postgresql_url = postgresql_url
        self.log_level = log_level
        self.log_path = self.data_dir / "ferretdb.log"
        self._process: procs.ManagedProcess | None = None

    @property
    def url(self) -> str:
        """MongoDB connection string for clients."""
        return f"mongodb://127.0.0.1:{self.port}/"

    def _argv(self, binary: Path) -> list[str]:
        argv = [str(binary), f"--listen-addr=127.0.0.1:{self.port}",
                f"--state-dir={self.data_dir}", "--telemetry=disable",
                "--debug-addr=-",  # no metrics/pprof HTTP listener (fixed port 8088 would clash)
                f"--log-level={self.log_level}", "--log-format=console"]
        if self.backend == "sqlite":
            sqlite_dir = self.data_dir / "sqlite"
            sqlite_dir.mkdir(parents=True, exist_ok=True)  # FerretDB requires an existing dir
            # file: scheme and trailing slash are both required. FerretDB decodes the URL and
            # hands SQLite the raw path, so percent-escaping cannot help: see __init__.
            # FerretDB runs SQLite in WAL mode; synchronous=NORMAL syncs the log at checkpoints
            # instead of at every commit (FerretDB commits each updated document on its own,
            # 2-4x slower with a sync each). A killed FerretDB loses nothing that way (the
            # chaos runs kill it); a power cut may lose the last commits (README, "Data").
            argv += ["--handler=sqlite",
                     f"--sqlite-url=file:{sqlite_dir}/?_pragma=synchronous(normal)"]
        else:
            argv += ["--handler=postgresql", f"--postgresql-url={self.postgresql_url}"]
        return argv

    def start(self, timeout: float = 60) -> None:
        """Start (building first if needed) and wait until a `ping` is answered with ok: 1."""
        if self.running():
            return
        binary = install()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # FERRETDB_* variables would silently fill any flag not given here: keep runs reproducible.
        env = {k: v for k, v in os.environ.items() if not k.startswith("FERRETDB_")}
        self._process = procs.ManagedProcess("ferretdb", self._argv(binary), self.log_path, env=env,
                                       cwd=self.data_dir)
        self._process.start()
        try:
            self._wait_ready(timeout)
        except BaseException:
            self._process.kill()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._process.wait_for_port(self.port, timeout)
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if not self.running():
                code = self._process.popen.returncode
                raise procs.InfraError(f"ferretdb exited (code {code}); last lines of "
                                 f"{self.log_path}:\n{procs.log_tail(self.log_path)}")
            try:
                reply = ping(self.port)
                if reply.get("ok") == 1:
                    return
                last_error = procs.InfraError(f"ping answered {reply}")
            except OSError as exc:  # ConnectionError is an OSError
                last_error = exc
            time.sleep(0.2)
        raise procs.InfraError(f"ferretdb on port {self.port} did not answer ping within "
                         f"{timeout:.0f}s ({last_error}); last lines of {self.log_path}:\n"
                         f"{procs.log_tail(self.log_path)}")

    def wait(self) -> int | None:
        """Block until the server process exits; its exit code (None if never started)."""
        return self._process.popen.wait() if self._process and self._process.popen else None


def main(argv: list[str] | None = None) -> int:
    """`install` builds the binary; `run` serves in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(description=f"Local FerretDB {FERRETDB_VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="build the ferretdb binary (cached)")
    run = commands.add_parser("run", help="run FerretDB in the foreground")
    run.add_argument("--port", type=int, default=27017)
    run.add_argument("--backend", choices=BACKENDS, default="sqlite")
    run.add_argument("--postgresql-url")
    run.add_argument("--data-dir", type=Path, help="default: <infra home>/ferretdb-data")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARN", "ERROR"])
    args = parser.parse_args(argv)

    try:
        if args.command == "install":
            started = time.monotonic()
            print(f"{install()} ({time.monotonic() - started:.1f}s)")
            return 0
        try:
            data_dir = args.data_dir or procs.infra_home() / "ferretdb-data"
            server = FerretDBServer(data_dir, args.port, args.backend, args.postgresql_url,
                                    log_level=args.log_level)
        except ValueError as exc:
            parser.error(str(exc))
        # The server runs in its own session, so Ctrl-C reaches only us: stop it on SIGINT/SIGTERM.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            server.start()
            print(f"FerretDB {FERRETDB_VERSION} ({args.backend}) at {server.url}\n"
                  f"data: {server.data_dir}\nlog: {server.log_path}\nCtrl-C stops.", flush=True)
            server.wait()
            print(f"ferretdb exited; last lines of {server.log_path}:\n"
                  f"{procs.log_tail(server.log_path)}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            server.stop()
    except procs.InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
