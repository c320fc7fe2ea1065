#!/usr/bin/env bash
# Starts the local services the test suite talks to when they are not
# running, and installs the Debian tools some tests drive. Safe to run
# repeatedly; needs root (or sudo) only when something is missing.
set -euo pipefail

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }

installed_pg=false
if ! command -v pg_isready >/dev/null 2>&1; then
  echo "ensure-services: installing PostgreSQL"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  installed_pg=true
fi
# A freshly installed Debian cluster asks for passwords on TCP; the tests
# connect as postgres over 127.0.0.1 without one (a throwaway CI database).
if $installed_pg; then
  for hba in /etc/postgresql/*/main/pg_hba.conf; do
    [ -f "$hba" ] || continue
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
  done
  for v in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$v" main reload 2>/dev/null || true
  done
fi
if ! pg_up; then
  echo "ensure-services: starting PostgreSQL"
  for v in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
  done
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
pg_up || { echo "ensure-services: PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }

# Tools used by benchmarks and tests.
bash "$(dirname "$0")/install-nginx.sh"
bash "$(dirname "$0")/install-boot-tools.sh"
bash "$(dirname "$0")/install-swupdate.sh"
bash "$(dirname "$0")/install-chromium.sh"
bash "$(dirname "$0")/install-firefox.sh"
echo "ensure-services: ready"
