# Sourced by the scripts that run a judge against the emulator (conformance/run.sh,
# conformance/run-msal.sh, jco/run.sh): builds it, starts instances on free loopback ports, waits
# until each is ready, and stops them all (and removes their logs) when the script exits.
# Needs `root` (the repository) set by the caller.

emulator_pids=()
emulator_logs=()

emulator_stop_all() {
  if [ "${#emulator_pids[@]}" -gt 0 ]; then
    kill "${emulator_pids[@]}" 2>/dev/null || true
    wait "${emulator_pids[@]}" 2>/dev/null || true
  fi
  if [ "${#emulator_logs[@]}" -gt 0 ]; then
    rm -f "${emulator_logs[@]}"
  fi
}
trap emulator_stop_all EXIT

# Builds the emulator binary and sets `emulator_bin` and `target_dir`.
emulator_build() {
  cargo build --quiet -p dataverse-emulator --manifest-path "$root/Cargo.toml"
  target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
  emulator_bin="$target_dir/debug/dataverse-emulator"
}

# emulator_start VAR ARGS...: starts one emulator with ARGS, waits for its `ready` line and puts
# the path of its log (where it prints its URLs and credentials) in VAR.
emulator_start() {
  # Locals carry a prefix: the caller's VAR may be any name, `log` included.
  local _emulator_var="$1"
  shift
  local _emulator_log _emulator_pid
  _emulator_log="$(mktemp)"
  "$emulator_bin" "$@" >"$_emulator_log" 2>&1 &
  _emulator_pid=$!
  emulator_pids+=("$_emulator_pid")
  emulator_logs+=("$_emulator_log")
  for _ in $(seq 1 200); do
    grep -q '^ready' "$_emulator_log" && break
    kill -0 "$_emulator_pid" 2>/dev/null || { cat "$_emulator_log"; echo "emulator exited" >&2; exit 1; }
    sleep 0.05
  done
  grep -q '^ready' "$_emulator_log" || { cat "$_emulator_log"; echo "emulator did not start" >&2; exit 1; }
  printf -v "$_emulator_var" '%s' "$_emulator_log"
}

# emulator_field LOG NAME: the value of a `NAME: value` line the emulator printed.
emulator_field() { sed -n "s/^$2: *//p" "$1"; }
