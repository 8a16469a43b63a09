#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on 127.0.0.1; start them, or install them from Debian's packages, if not.
# Also install Prometheus (server and promtool) for the metrics tests when it is missing.
set -euo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

if ! command -v pg_ctlcluster >/dev/null || ! command -v redis-server >/dev/null; then
  echo "Installing PostgreSQL and Redis from Debian's packages..."
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql redis-server
fi

# Prometheus (the server and promtool) for the metrics tests, which run their own server on a free port. Only the
# package: its recommended node exporter is not needed.
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  echo "Installing Prometheus from Debian's packages..."
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus
fi

if ! pg_up; then
  echo "Starting PostgreSQL..."
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
fi
if ! redis_up; then
  echo "Starting Redis..."
  as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi

for _ in $(seq 1 30); do pg_up && redis_up && break; sleep 1; done
pg_up || { echo "PostgreSQL is not answering on 127.0.0.1:5432" >&2; exit 1; }
redis_up || { echo "Redis is not answering on 127.0.0.1:6379" >&2; exit 1; }

# A fresh Debian cluster only trusts local socket peers: let the test role in over TCP from localhost.
if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
  hba="$(cd / && as_postgres psql -tAc 'show hba_file' 2>/dev/null || true)"
  if [ -n "$hba" ]; then
    as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    (cd / && as_postgres psql -tAc 'select pg_reload_conf()' >/dev/null)
  fi
fi
echo "PostgreSQL and Redis are up."
