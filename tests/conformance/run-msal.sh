#!/usr/bin/env bash
# Builds the emulator, starts it over HTTPS (--tls) on a free loopback port, and runs
# @azure/msal-node, unmodified, against its Entra ID endpoints (msal-node.judge.js), trusting
# the CA certificate the emulator generated through NODE_EXTRA_CA_CERTS.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

# shellcheck source=../emulator.sh
source "$root/tests/emulator.sh"
emulator_build

if [ ! -d "$here/node_modules/@azure/msal-node" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --silent)
fi

# The emulator removes its CA file when it stops (SIGTERM).
emulator_start log --port 0 --rows 5 --tls

field() { emulator_field "$log" "$1"; }
export EMULATOR_URL="$(field 'base url')"
export EMULATOR_TENANT="$(field 'tenant id')"
export EMULATOR_CLIENT_ID="$(field 'client id')"
export EMULATOR_CLIENT_SECRET="$(field 'client secret')"
export EMULATOR_PUBLIC_CLIENT_ID="$(field 'public client')"
export EMULATOR_USERNAME="$(field 'username')"
export EMULATOR_PASSWORD="$(field 'password')"
export EMULATOR_CLIENT_CERTIFICATE="$(field 'client certificate')"
export NODE_EXTRA_CA_CERTS="$(field 'ca certificate')"
[ -s "$NODE_EXTRA_CA_CERTS" ] || { cat "$log"; echo "no CA certificate file" >&2; exit 1; }

cd "$here"
node --test msal-node.judge.js
