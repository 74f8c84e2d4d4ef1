#!/usr/bin/env bash
# Builds the emulator, starts it over HTTPS (--tls) on a free loopback port, and runs
# @azure/msal-node, unmodified, against its Entra ID endpoints (msal-node.judge.js), trusting
# the CA certificate the emulator generated through NODE_EXTRA_CA_CERTS.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

cargo build --quiet -p dataverse-emulator --manifest-path "$root/Cargo.toml"
target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
bin="$target_dir/debug/dataverse-emulator"

if [ ! -d "$here/node_modules/@azure/msal-node" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --silent)
fi

log="$(mktemp)"
"$bin" --port 0 --rows 5 --tls >"$log" 2>&1 &
pid=$!
# The emulator removes its CA file when it stops (SIGTERM).
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
export EMULATOR_USERNAME="$(field 'username')"
export EMULATOR_PASSWORD="$(field 'password')"
export NODE_EXTRA_CA_CERTS="$(field 'ca certificate')"
[ -s "$NODE_EXTRA_CA_CERTS" ] || { cat "$log"; echo "no CA certificate file" >&2; exit 1; }

cd "$here"
node --test msal-node.judge.js
