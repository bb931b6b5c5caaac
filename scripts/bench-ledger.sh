#!/usr/bin/env bash
# Ledger placements per second on SQLite and PostgreSQL, 1 and 64 concurrent
# writers, beside the disk's fsync rate measured in the same run; then the
# outbox draining a backlog of ORDERS orders to six mock registries (one and
# two sets of lanes), and the others' delivery delay while one registry hangs.
# Usage: scripts/bench-ledger.sh [OPS] [ORDERS]   (PostgreSQL at 127.0.0.1:5432, database test)
set -euo pipefail
cd "$(dirname "$0")/.."
ops=${1:-2000}
orders=${2:-10000}
cargo build --release --locked -q
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "== SQLite ($dir/bench.db)"
./target/release/assetgw ledger bench --ops "$ops" --url "sqlite://$dir/bench.db" --fsync-dir "$dir"
schema="bench_$$"
psql -h 127.0.0.1 -U postgres -d test -qc "CREATE SCHEMA $schema"
echo "== PostgreSQL (schema $schema)"
./target/release/assetgw ledger bench --ops "$ops" --fsync-dir "$dir" \
  --url "postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3D$schema"
pg="postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3D$schema"
export RUST_LOG=warn
echo "== outbox, SQLite"
./target/release/assetgw ledger bench-outbox --orders "$orders" --url "sqlite://$dir/outbox.db"
./target/release/assetgw ledger bench-outbox --orders $((orders / 5)) --hung --url "sqlite://$dir/outbox-hung.db"
echo "== outbox, PostgreSQL"
for replicas in 1 2; do
  psql -h 127.0.0.1 -U postgres -d test -qc "SET client_min_messages = warning; DROP SCHEMA $schema CASCADE; CREATE SCHEMA $schema"
  ./target/release/assetgw ledger bench-outbox --orders "$orders" --replicas "$replicas" --url "$pg"
done
psql -h 127.0.0.1 -U postgres -d test -qc "SET client_min_messages = warning; DROP SCHEMA $schema CASCADE"
