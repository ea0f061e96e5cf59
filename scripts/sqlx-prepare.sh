#!/usr/bin/env bash
# Regenerates the committed `.sqlx/` query data that lets the workspace build
# offline (CI, fresh clones). Needs a PostgreSQL to check the queries against:
# DEV_DATABASE_URL (default: the local server on 127.0.0.1:5432). The schema
# there is rebuilt from migrations/ each time.
set -euo pipefail
cd "$(dirname "$0")/.."
url="${DEV_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/chainpay_dev}"
base="${url%/*}"
db="${url##*/}"
psql -q "$base/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
for migration in migrations/*.sql; do
  psql -q -v ON_ERROR_STOP=1 "$url" -f "$migration"
done
rm -rf .sqlx
mkdir .sqlx
# Force the macros to run again so every query writes its data file.
touch gateway/src/lib.rs
find gateway/src -name '*.rs' -exec touch {} +
SQLX_OFFLINE=false DATABASE_URL="$url" SQLX_OFFLINE_DIR="$PWD/.sqlx" cargo check --workspace --all-targets
echo "wrote $(ls .sqlx | wc -l) query files to .sqlx/"
