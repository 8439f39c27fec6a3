#!/usr/bin/env bash
# Installs what `make up` and `make test` need, on a fresh machine or a warm one (then in
# seconds): uv, the locked Python environment, and the local Kafka broker and FerretDB server.
set -euo pipefail
cd "$(dirname "$0")/../.."

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "error: '$1' is required ($2) but not on PATH" >&2
    exit 1
  }
}
need python3 "Python 3.11+ runs the services"
need java "Java 17+ runs the Kafka broker"
need mvn "Maven fetches the Kafka jars from Maven Central"
need go "Go builds FerretDB from the Go module proxy"

if ! command -v uv >/dev/null 2>&1 && ! python3 -m uv --version >/dev/null 2>&1; then
  echo "==> installing uv from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check uv
fi
UV=$(command -v uv || echo "python3 -m uv")

echo "==> Python environment (uv sync --frozen, from uv.lock)"
$UV sync --frozen --quiet

echo "==> Kafka and FerretDB (cached under .infra/ after the first run)"
$UV run --frozen python deploy/local/infra.py install
