#!/usr/bin/env bash
# Builds the emulator, starts it on a free loopback port, runs the dynamics-web-api
# conformance suite against it, and stops it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

# shellcheck source=../emulator.sh
source "$root/tests/emulator.sh"
emulator_build

if [ ! -d "$here/node_modules/dynamics-web-api" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --silent)
fi

emulator_start log --port 0 --rows "${EMULATOR_ROWS:-60}"
# A second emulator whose change-tracking delta tokens expire after one second, so the suite
# can follow an expired delta link without waiting seven days.
emulator_start short_log --port 0 --rows 5 --delta-token-lifetime-secs 1

field() { emulator_field "$log" "$1"; }
export EMULATOR_URL="$(field 'base url')"
export EMULATOR_TENANT="$(field 'tenant id')"
export EMULATOR_CLIENT_ID="$(field 'client id')"
export EMULATOR_CLIENT_SECRET="$(field 'client secret')"
export EMULATOR_PUBLIC_CLIENT_ID="$(field 'public client')"
export EMULATOR_PASSWORD="$(field 'password')"
export EMULATOR_SHORT_DELTA_URL="$(emulator_field "$short_log" 'base url')"

cd "$here"
node --test
