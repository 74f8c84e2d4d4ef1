#!/usr/bin/env bash
# Builds the emulator, starts it on a free loopback port, runs the dynamics-web-api
# conformance suite against it, and stops it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

cargo build --quiet -p dataverse-emulator --manifest-path "$root/Cargo.toml"
target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
bin="$target_dir/debug/dataverse-emulator"

if [ ! -d "$here/node_modules/dynamics-web-api" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --silent)
fi

log="$(mktemp)"
"$bin" --port 0 --rows "${EMULATOR_ROWS:-60}" >"$log" 2>&1 &
pid=$!
# A second emulator whose change-tracking delta tokens expire after one second, so the suite
# can follow an expired delta link without waiting seven days.
short_log="$(mktemp)"
"$bin" --port 0 --rows 5 --delta-token-lifetime-secs 1 >"$short_log" 2>&1 &
short_pid=$!
trap 'kill "$pid" "$short_pid" 2>/dev/null || true; wait "$pid" "$short_pid" 2>/dev/null || true; rm -f "$log" "$short_log"' EXIT

for l in "$log" "$short_log"; do
  for _ in $(seq 1 200); do
    grep -q '^ready' "$l" && break
    kill -0 "$pid" 2>/dev/null && kill -0 "$short_pid" 2>/dev/null || { cat "$l"; echo "emulator exited" >&2; exit 1; }
    sleep 0.05
  done
  grep -q '^ready' "$l" || { cat "$l"; echo "emulator did not start" >&2; exit 1; }
done

field() { sed -n "s/^$1: *//p" "$log"; }
export EMULATOR_URL="$(field 'base url')"
export EMULATOR_TENANT="$(field 'tenant id')"
export EMULATOR_CLIENT_ID="$(field 'client id')"
export EMULATOR_CLIENT_SECRET="$(field 'client secret')"
export EMULATOR_PUBLIC_CLIENT_ID="$(field 'public client')"
export EMULATOR_PASSWORD="$(field 'password')"
export EMULATOR_SHORT_DELTA_URL="$(sed -n 's/^base url: *//p' "$short_log")"

cd "$here"
node --test
