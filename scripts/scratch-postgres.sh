#!/usr/bin/env bash
# Starts a throw-away PostgreSQL cluster on a Unix socket (as the tests do:
# the machine's initdb/pg_ctl, run as `postgres` when we are root) and
# prints its DATABASE_URL. `scripts/scratch-postgres.sh stop <dir>` stops it.
# Used by .ci/run for `cargo sqlx prepare --check`, which needs a live schema.
set -euo pipefail
bin_dir() {
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
bin=$(bin_dir)
if [ "${1:-start}" = stop ]; then
  as_owner "$bin/pg_ctl" -D "$2/data" -m immediate -w stop >/dev/null
  rm -rf "$2"
  exit 0
fi
dir=$(mktemp -d /tmp/chainpay-scratch-pg.XXXXXX)
chmod 755 "$dir"
[ "$(id -u)" = 0 ] && chown postgres "$dir"
as_owner "$bin/initdb" -D "$dir/data" -U chainpay --auth=trust --encoding=UTF8 --locale=C >/dev/null
as_owner "$bin/pg_ctl" -D "$dir/data" -o "-k $dir -c listen_addresses=''" -l "$dir/log" -w start >/dev/null
echo "postgres://chainpay@localhost/chainpay_ci?host=$dir"
