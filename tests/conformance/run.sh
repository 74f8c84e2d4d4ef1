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
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT

for _ in $(seq 1 200); do
  grep -q '^ready' "$log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "emulator exited" >&2; exit 1; }
  sleep 0.05
done
grep -q '^ready' "$log" || { cat "$log"; echo "emulator did not start" >&2; exit 1; }

field() { sed -n "s/^$1: *//p" "$log"; }
export EMULATOR_URL="$(field 'base url')"
export EMULATOR_TENANT="$(field 'tenant id')"
export EMULATOR_CLIENT_ID="$(field 'client id')"
export EMULATOR_CLIENT_SECRET="$(field 'client secret')"
export EMULATOR_PUBLIC_CLIENT_ID="$(field 'public client')"
export EMULATOR_PASSWORD="$(field 'password')"

cd "$here"
node --test
