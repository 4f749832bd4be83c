#!/bin/sh
# PostgreSQL 15 from Debian's package as the official image runs it, for docker/compose.local.yaml: on an
# empty data folder, initdb with POSTGRES_USER as superuser (password POSTGRES_PASSWORD, scram over TCP) and
# POSTGRES_DB created; then the server in the foreground on every address of the container. Arguments go
# to `postgres` (-c name=value).
set -eu
bin=/usr/lib/postgresql/15/bin
data="${PGDATA:-/var/lib/postgresql/data}"
mkdir -p "$data" /run/postgresql
chown postgres:postgres "$data" /run/postgresql
chmod 700 "$data"
if [ ! -s "$data/PG_VERSION" ]; then
  pwfile="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  chown postgres "$pwfile"
  runuser -u postgres -- "$bin/initdb" -D "$data" -U "$POSTGRES_USER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$data/pg_hba.conf"
  echo "CREATE DATABASE \"$POSTGRES_DB\";" \
    | runuser -u postgres -- "$bin/postgres" --single -D "$data" postgres >/dev/null
fi
exec runuser -u postgres -- "$bin/postgres" -D "$data" -c listen_addresses='*' "$@"
