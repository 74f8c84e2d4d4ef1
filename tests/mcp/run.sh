#!/usr/bin/env bash
# Drives `dynamics mcp` with a real MCP client (the official Python SDK, pinned in
# requirements.txt, in a venv under tests/mcp/.venv) against the Dataverse emulator: lists the
# tools, calls Query Entities and Create Entity, and checks --read-only and --tables.
# Needs python3 with the venv module (Debian/Ubuntu: python3-venv), cargo and node (emulator.sh
# reads cargo metadata with it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

# shellcheck source=../emulator.sh
source "$root/tests/emulator.sh"
emulator_build
cargo build --quiet -p host-harness --bin dynamics --manifest-path "$root/Cargo.toml"

venv="$here/.venv"
# A venv left without pip (an interrupted or failed creation) is made again.
if [ ! -x "$venv/bin/pip" ]; then
  python3 -m venv --clear "$venv"
  rm -f "$venv/.requirements"
fi
# Installs only when the pinned requirements changed since the last install.
stamp="$venv/.requirements"
if ! cmp -s "$here/requirements.txt" "$stamp"; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$stamp"
fi

emulator_start log --port 0 --rows 5
field() { emulator_field "$log" "$1"; }
export EMULATOR_URL="$(field 'base url')"
export EMULATOR_TOKEN_URL="$(field 'token url')"
export EMULATOR_CLIENT_ID="$(field 'client id')"
export EMULATOR_CLIENT_SECRET="$(field 'client secret')"
export EMULATOR_ADMIN_KEY="$(field 'admin key')"
export DYNAMICS_BIN="$target_dir/debug/dynamics"

"$venv/bin/python" "$here/client_test.py"
