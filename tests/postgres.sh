#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster on 127.0.0.1, exports DATABASE_URL and runs the given
# command with it (the PostgreSQL tests of `dynamics extract`), then stops the cluster and
# removes it. Without a command it prints the URL and waits until Ctrl-C.
#
#   tests/postgres.sh cargo test -p host-harness --test extract_database
#
# Needs PostgreSQL's server binaries (Debian: apt-get install postgresql; found under
# /usr/lib/postgresql/*/bin, or set PG_BIN). As root the cluster runs as the postgres user
# (PostgreSQL refuses to run as root). Trust authentication on loopback only: a test cluster.
set -euo pipefail

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
if [[ -z "$PG_BIN" || ! -x "$PG_BIN/initdb" ]]; then
  echo "postgres.sh: no initdb found (install postgresql, or set PG_BIN)" >&2
  exit 1
fi
PORT=${PG_PORT:-$((20000 + RANDOM % 20000))}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/dynamics-pg.XXXXXX")
chmod 755 "$DIR"

if [[ $(id -u) == 0 ]]; then
  USER_NAME=postgres
  chown postgres "$DIR"
  as_owner() { runuser -u postgres -- "$@"; }
else
  USER_NAME=$(id -un)
  as_owner() { "$@"; }
fi

cleanup() {
  as_owner "$PG_BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT

as_owner "$PG_BIN/initdb" -D "$DIR/data" -U "$USER_NAME" --auth=trust -E UTF8 >"$DIR/initdb.log" 2>&1 \
  || { cat "$DIR/initdb.log" >&2; exit 1; }
as_owner "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
  -o "-k $DIR -p $PORT -h 127.0.0.1 -c fsync=off" start >/dev/null \
  || { cat "$DIR/server.log" >&2; exit 1; }

export DATABASE_URL="postgres://$USER_NAME@127.0.0.1:$PORT/postgres"
echo "postgres.sh: DATABASE_URL=$DATABASE_URL" >&2
if [[ $# -gt 0 ]]; then
  "$@"
else
  echo "postgres.sh: Ctrl-C stops and removes the cluster" >&2
  while sleep 3600; do :; done
fi
