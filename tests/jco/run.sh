#!/usr/bin/env bash
# A second host: builds the connector component (the test-artifacts crate's build script builds it), transpiles
# it with jco into tests/jco/generated/, starts the emulator on a free loopback port, runs
# connector.test.mjs in Node (host.mjs implements the world's http and log imports) and stops the
# emulator. DYNAMICS_COMPONENT=path runs another component of the world instead of building one.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
manifest="$root/Cargo.toml"

node_json() { node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{$1})"; }

# shellcheck source=../emulator.sh
source "$root/tests/emulator.sh"
emulator_build

component="${DYNAMICS_COMPONENT:-}"
if [ -z "$component" ]; then
  # The artifacts crate alone: its build script builds the component, and says where in its env.
  component="$(cargo build --quiet -p test-artifacts --message-format=json --manifest-path "$manifest" | node_json '
    for (const line of s.split("\n")) {
      if (!line) continue;
      const m = JSON.parse(line);
      const hit = m.reason === "build-script-executed" && m.env.find(([k]) => k === "DYNAMICS_CONNECTOR_WASM");
      if (hit) { console.log(hit[1]); break; }
    }')"
  component="${component:-$target_dir/test-artifacts/wasm32-wasip2/component/dynamics_connector.wasm}"
fi
[ -f "$component" ] || { echo "no component at $component" >&2; exit 1; }

if [ ! -x "$here/node_modules/.bin/jco" ] || [ ! -d "$here/node_modules/@bytecodealliance/preview2-shim" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --silent)
fi

# `--instantiation async`: the output imports nothing itself; host.mjs hands it the WASI shims and
# its own http and log for each instance.
out="$here/generated"
rm -rf "$out"
"$here/node_modules/.bin/jco" transpile "$component" -o "$out" --name connector \
  --instantiation async --no-typescript --quiet

emulator_start log --port 0 --rows "${EMULATOR_ROWS:-12}"

field() { emulator_field "$log" "$1"; }
export EMULATOR_URL="$(field 'base url')"
export EMULATOR_TOKEN_URL="$(field 'token url')"
export EMULATOR_CLIENT_ID="$(field 'client id')"
export EMULATOR_CLIENT_SECRET="$(field 'client secret')"
export JCO_OUT="$out"

cd "$here"
node --test connector.test.mjs
