"""Local infrastructure, installed by the project itself: `python deploy/local/infra.py CMD`.

  install   fetch and build Kafka (Maven Central) and FerretDB (Go module proxy); cached
  status    what is installed and where

Standard library only. Starting and stopping is done by `make up` (deploy/local/up.py) and
by the test fixtures (tests/support/infra.py), each with its own data folder and ports;
`local_kafka.py run` and `local_ferretdb.py run` start one server in the foreground.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import local_ferretdb
import local_kafka
import procs


def install() -> None:
    for name, module in (("Kafka", local_kafka), ("FerretDB", local_ferretdb)):
        started = time.monotonic()
        where = module.install()
        print(f"    {name:<8} ready in {time.monotonic() - started:5.1f}s  ({where})")


def status() -> None:
    home = procs.infra_home()
    print(f"infra home: {home}")
    for label, path in (("Kafka", home / f"kafka-{local_kafka.KAFKA_VERSION}"),
                        ("FerretDB", home / f"ferretdb-{local_ferretdb.FERRETDB_VERSION}")):
        print(f"  {label:<8} {'installed' if path.exists() else 'not installed'}  {path}")
    run_dir = home / "run"
    print(f"  make up data: {run_dir if run_dir.exists() else '(none yet)'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["install", "status"])
    args = parser.parse_args()
    try:
        {"install": install, "status": status}[args.command]()
    except procs.InfraError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
