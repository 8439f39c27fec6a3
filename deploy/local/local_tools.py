"""Manifest tooling for the deployment checks: kustomize, built from the Go module proxy.

`make test` renders deploy/k8s with kustomize and validates every object offline
(tests/test_deploy_k8s.py). kustomize is a Go module, so it is built here like FerretDB:

    python deploy/local/local_tools.py install     # once; later runs return at once
    python deploy/local/local_tools.py path        # where the binary is

Standard library only, so it runs before the project's virtual environment exists.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__:  # imported as part of a package (deploy.local.…)
    from . import procs
else:  # run as a script, or with deploy/local on sys.path
    import procs

# v5.8.1 is the newest kustomize whose go.mod accepts the machine's Go (1.24+); newer ones
# ask for a toolchain download first.
KUSTOMIZE_VERSION = "v5.8.1"
KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"


def _install_dir(home: Path) -> Path:
    return home / f"kustomize-{KUSTOMIZE_VERSION}"


def kustomize_path(home: Path | None = None) -> Path:
    """Where install() puts the kustomize binary (it may not exist yet)."""
    return _install_dir(home or procs.infra_home()) / "bin" / "kustomize"


def install(home: Path | None = None) -> Path:
    """Build kustomize once into `<home>/kustomize-<version>/bin/` and return its path.

    A marker file is written only after a successful build, so a later call returns at once;
    concurrent callers are serialised with a file lock. Build output goes to
    `<home>/logs/kustomize-install.log`; a failure raises procs.InfraError with its tail.
    """
    home = Path(home) if home is not None else procs.infra_home()
    binary = kustomize_path(home)

    def build() -> None:
        env = procs.go_env()
        env["GOBIN"] = str(binary.parent)
        env["GOFLAGS"] = "-buildvcs=false -trimpath"
        procs.run_step([procs.go_tool(), "install", f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}"],
                       home / "logs" / "kustomize-install.log",
                       f"building kustomize {KUSTOMIZE_VERSION}", cwd=_install_dir(home), env=env)

    return procs.cached_install(_install_dir(home), f"{KUSTOMIZE_VERSION}\n", build, binary)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["install", "path"])
    args = parser.parse_args()
    try:
        if args.command == "install":
            started = time.monotonic()
            where = install()
            print(f"kustomize ready in {time.monotonic() - started:.1f}s ({where})")
        else:
            print(kustomize_path())
    except procs.InfraError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
