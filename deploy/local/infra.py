"""Local infrastructure, installed by the project itself: `python deploy/local/infra.py CMD`.

  install   fetch and build Kafka (Maven Central) and FerretDB (Go module proxy); cached
  start     run Kafka and FerretDB in the background (data in .infra/run/), print their URLs
  stop      stop what `start` started
  status    what is installed, what runs and where

Standard library only. `make up` reuses servers that `start` left running (else it runs its
own); the test fixtures always start private ones on free ports in a temporary folder.
`local_kafka.py run` and `local_ferretdb.py run` run one server in the foreground.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import local_ferretdb
import local_kafka
import local_tools
import procs


def install() -> None:
    for name, module in (("Kafka", local_kafka), ("FerretDB", local_ferretdb),
                         ("kustomize", local_tools)):
        started = time.monotonic()
        where = module.install()
        print(f"    {name:<8} ready in {time.monotonic() - started:5.1f}s  ({where})")


def state_file() -> Path:
    return procs.infra_home() / "run" / "infra.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_servers() -> dict | None:
    """The servers `start` left running, if both are still alive."""
    try:
        state = json.loads(state_file().read_text())
    except (FileNotFoundError, ValueError):
        return None
    if all(_alive(server["pid"]) for server in state.values()):
        return state
    return None


def start() -> None:
    if (state := running_servers()) is not None:
        print("already running:")
    else:
        run_dir = procs.infra_home() / "run"
        ferretdb = local_ferretdb.FerretDBServer(run_dir / "ferretdb", port=_port_or_free(27017))
        kafka = local_kafka.KafkaServer(run_dir / "kafka", port=_port_or_free(9092))
        ferretdb.start()
        try:
            kafka.start()
        except procs.InfraError:
            ferretdb.stop()
            raise
        state = {"kafka": {"pid": kafka.pid, "url": kafka.bootstrap_servers},
                 "ferretdb": {"pid": ferretdb.pid, "url": ferretdb.url}}
        state_file().write_text(json.dumps(state, indent=2))
        print("started (stop with: make infra-stop):")
    print(f"  export KAFKA_BOOTSTRAP_SERVERS={state['kafka']['url']}")
    print(f"  export MONGODB_URL={state['ferretdb']['url']}")


def stop() -> None:
    try:
        state = json.loads(state_file().read_text())
    except (FileNotFoundError, ValueError):
        print("nothing to stop")
        return
    for name, server in state.items():
        if _alive(server["pid"]):
            os.killpg(server["pid"], signal.SIGTERM)
            deadline = time.monotonic() + 30
            while _alive(server["pid"]) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(server["pid"]):
                os.killpg(server["pid"], signal.SIGKILL)
        print(f"stopped {name}")
    state_file().unlink()


def _port_or_free(preferred: int) -> int:
    return preferred if not procs.port_open(preferred) else procs.free_port()


def status() -> None:
    home = procs.infra_home()
    print(f"infra home: {home}")
    for label, path in (("Kafka", home / f"kafka-{local_kafka.KAFKA_VERSION}"),
                        ("FerretDB", home / f"ferretdb-{local_ferretdb.FERRETDB_VERSION}")):
        print(f"  {label:<8} {'installed' if path.exists() else 'not installed'}  {path}")
    state = running_servers()
    if state is None:
        print("  servers: not running (make infra-start)")
    else:
        for name, server in state.items():
            print(f"  {name:<8} running, pid {server['pid']}, {server['url']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["install", "start", "stop", "status"])
    args = parser.parse_args()
    try:
        {"install": install, "start": start, "stop": stop, "status": status}[args.command]()
    except procs.InfraError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
