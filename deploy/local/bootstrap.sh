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

# kcat (Debian) is how the interoperability tests read topics with a client we did not write.
if ! command -v kcat >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing kcat (Debian package)"
    apt-get install -y -qq kcat >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get install -y -qq kcat >/dev/null; }
  else
    echo "note: kcat is missing; install it (e.g. 'sudo apt-get install kcat') for its test" >&2
  fi
fi

# The official AsyncAPI parser (npm) validates the generated AsyncAPI documents in make test.
if [ ! -d tools/asyncapi-check/node_modules/@asyncapi/parser ]; then
  need node "Node.js runs the official AsyncAPI parser in the tests"
  echo "==> AsyncAPI parser (npm ci, from package-lock.json)"
  npm ci --silent --no-audit --no-fund --prefix tools/asyncapi-check >/dev/null
fi

echo "==> Kafka and FerretDB (cached under .infra/ after the first run)"
$UV run --frozen python deploy/local/infra.py install
