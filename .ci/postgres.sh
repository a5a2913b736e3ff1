#!/usr/bin/env bash
# Starts a throwaway PostgreSQL on 127.0.0.1 for the store tests and prints its URL.
# Usage: eval "$(bash .ci/postgres.sh start)"; ...; bash .ci/postgres.sh stop
set -euo pipefail
port="${BATON_TEST_POSTGRES_PORT:-54329}"
data="${BATON_TEST_POSTGRES_DIR:-/tmp/baton-test-postgres}"

bin_dir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$d" ]; then
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    d=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  echo "$d"
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-start}" in
  start)
    bin=$(bin_dir)
    as_postgres "$bin/pg_ctl" -D "$data" stop -m immediate >/dev/null 2>&1 || true
    rm -rf "$data"
    mkdir -p "$data"
    [ "$(id -u)" = 0 ] && chown postgres "$data"
    as_postgres "$bin/initdb" -D "$data" -A trust -U baton >/dev/null
    as_postgres "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=off" start >/dev/null
    echo "export BATON_TEST_POSTGRES_URL=postgres://baton@127.0.0.1:$port/postgres"
    ;;
  stop)
    bin=$(bin_dir)
    as_postgres "$bin/pg_ctl" -D "$data" stop -m fast >/dev/null 2>&1 || true
    rm -rf "$data"
    ;;
esac
