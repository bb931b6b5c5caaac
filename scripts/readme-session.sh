#!/usr/bin/env bash
# Runs the README's session as a new user would: a fresh dev stack in an empty
# directory, then every ```sh block the README marks <!-- session -->, in
# order, in one shell, pausing ASSETGW_SESSION_PAUSE seconds (default 0) after
# the first block as a person reading would: long enough (35 s) for the late
# answers to come and the bank cache to expire, so every block must hold at
# any pace. Checks the key lines of what they print, and that no command was
# mistyped. The stack listens on free ports (ASSETGW_GATEWAY points
# the commands at it), so a stack already running on the README's ports is
# left alone.
#
#   bash scripts/readme-session.sh [DIRECTORY_HOLDING_assetgw]   (default target/release)
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "${1:-$root/target/release}" && pwd)
[[ -x "$bin/assetgw" ]] || { echo "no assetgw in $bin: build it first" >&2; exit 2; }
work=$(mktemp -d)
dev=
finish() {
  [[ -n "$dev" ]] && kill -TERM "$dev" 2>/dev/null && wait "$dev" 2>/dev/null
  rm -rf "$work"
}
trap finish EXIT
export PATH="$bin:$PATH"

# The stack, on free ports: the shipped configuration with its ports moved.
for attempt in 1 2 3; do
  base=$((20000 + RANDOM % 30000))
  rm -rf "$work/config" "$work/data" && cp -r "$root/config" "$work/config"
  sed -i "s/127.0.0.1:50051/127.0.0.1:$base/" "$work/config/assetgw.toml"
  for n in 1 2 3 4 5 6; do
    sed -i "s/127.0.0.1:5006$n/127.0.0.1:$((base + n))/" "$work/config/assetgw.toml"
  done
  (cd "$work" && exec assetgw dev >"$work/dev.log" 2>&1) &
  dev=$!
  for _ in $(seq 1 300); do
    grep -q "assetgw dev stack is up" "$work/dev.log" 2>/dev/null && break 2
    kill -0 "$dev" 2>/dev/null || break
    sleep 0.2
  done
  kill -TERM "$dev" 2>/dev/null; wait "$dev" 2>/dev/null; dev=
  grep -q "cannot listen" "$work/dev.log" || { cat "$work/dev.log" >&2; echo "the dev stack did not start" >&2; exit 1; }
done
[[ -n "$dev" ]] || { echo "no free ports for the dev stack after 3 tries" >&2; exit 1; }
export ASSETGW_GATEWAY="https://127.0.0.1:$base"

# The session's blocks, in order.
awk -v pause="${ASSETGW_SESSION_PAUSE:-0}" '
     /^<!-- session -->$/ { marked = 1; next }
     marked && /^```sh$/ { inside = 1; next }
     inside && /^```$/ { inside = 0; marked = 0; if (++blocks == 1) print "sleep " pause; next }
     inside { print }' "$root/README.md" >"$work/session.sh"
[[ -s "$work/session.sh" ]] || { echo "README.md marks no session blocks" >&2; exit 1; }
(cd "$work" && bash "$work/session.sh") >"$work/transcript" 2>&1

missing=0
expect() {
  grep -qF -- "$1" "$work/transcript" || { echo "missing from the session's output: $1" >&2; missing=1; }
}
refuse() {
  ! grep -qF -- "$1" "$work/transcript" || { echo "the session printed: $1" >&2; missing=1; }
}
tab=$'\t'
expect "  5  rank 3       （2025）沪0101执503号  112000000 of 300000000"
expect "  1  secured      招商银行  56000000 of 56000000"
expect "the period for an objection ended at"
expect "DISTRIBUTION_STATE_PAID${tab}[\"（2025）京0105执501号\",\"（2025）粤0304执502号\"]"
expect "112000000${tab}112000000${tab}112000000"
expect "  2  participant  （2025）沪0101执603号  15000001 of 30000000"
expect "participates in proceeds"
expect "Totals: 4 assets (deposit 1, real_estate 1, patent 1, securities 1); deposits EUR 405,985.07"
expect "pending (answers later)"
expect "4 registry answer(s) pending, kept under search"
expect " of 12 "
expect "#12   debtor #"
expect "bank-icbc, securities-csdc"
expect "Totals: 1 asset (deposit 1); deposits CNY 6.00"
expect 'query.case_number: is a `民初` case, not an enforcement case'
expect "query.debtors[0].resident_id: has 3 characters; a resident identity number has 18"
expect "placed as first seizure, rank 1, effective until"
expect "placed as waiting seizure, rank 2; it waits behind （2024）京0105执1234号"
expect "placed as waiting seizure, rank 3; it waits behind （2023）粤0304执88号"
expect "only the holding court may act on it (R7)"
expect "released; （2023）粤0304执88号 now effective until"
expect "now held by （2025）粤0305执100号, rank, references and dates unchanged (R10)"
expect "first （2025）粤0305执100号, 1 waiting; this case rank 1"
expect "promoted${tab}（2023）粤0304执88号 now effective until"
expect "acknowledged the seize order, reference realestate-mnr-000002, until"
expect "holder_changed${tab}now held by （2025）粤0305执100号"
expect "every enforcement case against it is suspended, and a new seizure is refused until the review ends (R24)"
expect "  （2024）粤0304执90号  粤0304  suspended"
expect "  （2027）京0105破申1号  京0105  active"
expect "rank 2  waiting  （2024）沪0101执8号"
expect "every court holding a seizure on the debtor's assets lifts it by the end of"
expect "（2024）沪0101执8号${tab}true"
expect "terminated for now on"
expect "research_found${tab}re-search 1 of （2024）京0105执77号:"
grep -qE "^1${tab}[1-9][0-9]*${tab}[1-9][0-9]*$" "$work/transcript" ||
  { echo "missing from the session's output: the re-search's round, found and new" >&2; missing=1; }
expect "belongs to court 粤0304; this caller is court 京0105"
expect "error: Unauthenticated: name the acting enforcement officer"
expect "every chain intact"
expect '"method":"SearchStream"'
expect "error: no audit record names case （2024）京0105执9999号"
expect "records in between were deleted"
expect "record 3 ("
# The count depends on the pace (a registry answering later while one reads adds a record).
grep -qE "audit trail verified: [0-9]+ records, every chain intact" "$work/transcript" ||
  { echo "missing from the session's output: audit trail verified: N records" >&2; missing=1; }
grep -qF "INFO assetgw::tools::dev: created the development PKI" "$work/dev.log" ||
  { echo "missing from the stack's log: the README's first line" >&2; missing=1; }
for typo in "command not found" "unexpected argument" "Usage:" "No such file"; do
  refuse "$typo"
done
if [[ $missing -ne 0 ]]; then
  echo "--- the session's output ---" >&2
  cat "$work/transcript" >&2
  exit 1
fi
echo "README session: $(grep -c '' "$work/session.sh") lines run, every key line present"
