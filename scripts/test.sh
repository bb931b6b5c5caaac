#!/usr/bin/env bash
# The test suite: unit, property and integration tests (mock registries and
# gateways over real gRPC on loopback, the ledger on a real SQLite file and on
# the PostgreSQL server at 127.0.0.1:5432, database `test`). Starts that
# server when it is installed but not running, and makes the virtualenv of the
# Python interop test (.venv, grpcio from PyPI), and installs redis-server
# (the replica tests start private Redis servers) and prometheus (promtool and
# a live Prometheus for the alert tests) when missing and apt can. With
# CI=true a test that needs PostgreSQL, Redis, Python or Prometheus fails
# instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v pg_isready >/dev/null && ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  if [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  fi
fi

if ! command -v redis-server >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing redis-server for the replica tests"
  apt-get install -y -qq redis-server >/dev/null || true
fi

# Prometheus and promtool (Debian's package) for the alert-rule and live-Prometheus tests.
if ! command -v promtool >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing prometheus for the alert tests"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null || true
fi

requirements=tests/interop/requirements.txt
if ! cmp -s "$requirements" .venv/installed.txt 2>/dev/null; then
  echo "making .venv for the Python interop test"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" .venv/installed.txt
fi
export ASSETGW_PYTHON="$PWD/.venv/bin/python"

cargo test --locked --all-targets "$@"
