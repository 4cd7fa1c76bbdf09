#!/usr/bin/env bash
# Installs the Debian packages the tests need (PostgreSQL 15, Redis 7, Chromium and its
# driver for the dashboard tests, promtool from Prometheus for the alert-rule tests) when
# they are missing and we are root; otherwise prints
# exactly what to install and fails.
set -euo pipefail
need=()
pg_bin="$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || true)"
[ -x "${pg_bin}/initdb" ] || need+=(postgresql-15)
command -v redis-server >/dev/null || need+=(redis-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
command -v promtool >/dev/null || need+=(prometheus)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${need[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The packages start system-wide services; the tests run their own throwaway servers.
  for svc in redis-server postgresql prometheus; do
    (service "$svc" stop || true) >/dev/null 2>&1
  done
else
  echo "missing: ${need[*]}. Install them with:  sudo apt-get install -y ${need[*]}" >&2
  echo "or point the tests at running servers with TEST_DATABASE_URL and TEST_REDIS_URL" >&2
  exit 1
fi
