#!/usr/bin/env bash
# Builds the harness and drives the flow designer in headless Chromium (Debian's chromium
# package) with playwright-core. Screenshots go to artifacts/designer/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

cargo build --quiet -p host-harness --bin dynamics --manifest-path "$root/Cargo.toml"
target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"

if [ ! -d "$here/node_modules/playwright-core" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --silent)
fi
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  echo "Chromium is missing: apt-get install chromium (or set CHROMIUM)" >&2
  exit 1
fi

export DYNAMICS_BIN="$target_dir/debug/dynamics"
export SCREENSHOT_DIR="${SCREENSHOT_DIR:-$root/artifacts/designer}"
cd "$here"
node --test --test-concurrency=1 designer.test.mjs
echo "screenshots: $SCREENSHOT_DIR"
