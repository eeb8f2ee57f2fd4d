#!/usr/bin/env bash
# Runs a command beside a throwaway PostgreSQL: a fresh cluster from
# Debian's `postgresql` package in a temp dir, on 127.0.0.1 only, owned by
# `nobody` when run as root (PostgreSQL refuses root), stopped and removed
# afterwards. The command finds it in CCGATE_TEST_POSTGRES (a connection
# string to its `postgres` database, superuser `ccgate`, no password).
#   scripts/with-postgres.sh cargo test -p ccgate-server
set -euo pipefail

bin=${CCGATE_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -x "$bin/initdb" ] || { echo "no PostgreSQL: install Debian's postgresql" >&2; exit 1; }

dir=$(mktemp -d)
as_owner=()
if [ "$(id -u)" -eq 0 ]; then
  chown nobody:nogroup "$dir" 2>/dev/null || chown 65534:65534 "$dir"
  as_owner=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
fi
stop() {
  "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT
# Stopped by a signal: still stop the cluster and remove it.
trap 'exit 130' INT TERM

"${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U ccgate --auth=trust -E UTF8 \
  --no-sync --no-instructions >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }

# A port nobody else has: a few tries at random ones.
started=""
for _ in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 30000))
  if "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=500" \
      start >/dev/null 2>&1; then
    started=1
    break
  fi
done
[ -n "$started" ] || { tail -n 20 "$dir/postgres.log" >&2; exit 1; }

export CCGATE_TEST_POSTGRES="postgres://ccgate@127.0.0.1:$port/postgres"
echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') for the run at 127.0.0.1:$port" >&2
"$@"
