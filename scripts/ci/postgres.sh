#!/usr/bin/env bash
# Starts a local PostgreSQL for the scale tests (installed from Debian if missing) and creates
# the role and database they use: postgres://fleetml:fleetml@127.0.0.1:5432/fleetml_test.
# Tests read FLEETML_TEST_POSTGRES (this URL by default) and skip, saying why, when nothing
# answers there. Idempotent: safe to run when the cluster is already up.
set -euo pipefail

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi

version=$(pg_lsclusters --no-header | awk 'NR==1 {print $1}')
cluster=$(pg_lsclusters --no-header | awk 'NR==1 {print $2}')
if [ -z "${version}" ]; then
  version=$(ls /usr/lib/postgresql | sort -n | tail -1)
  cluster=main
  pg_createcluster "${version}" "${cluster}" >/dev/null
fi
if ! pg_lsclusters --no-header | awk -v v="${version}" -v c="${cluster}" '$1==v && $2==c {print $4}' | grep -q online; then
  pg_ctlcluster --skip-systemctl-redirect "${version}" "${cluster}" start
fi

as_postgres() { (cd /tmp && runuser -u postgres -- "$@"); }
for _ in $(seq 1 30); do as_postgres pg_isready -q && break; sleep 1; done
as_postgres psql -qtAc "SELECT 1 FROM pg_roles WHERE rolname = 'fleetml'" | grep -q 1 ||
  as_postgres psql -qc "CREATE ROLE fleetml LOGIN CREATEDB PASSWORD 'fleetml'"
as_postgres psql -qtAc "SELECT 1 FROM pg_database WHERE datname = 'fleetml_test'" | grep -q 1 ||
  as_postgres psql -qc "CREATE DATABASE fleetml_test OWNER fleetml"
as_postgres psql -qc "ALTER ROLE fleetml CREATEDB"
echo "postgres: postgres://fleetml:fleetml@127.0.0.1:5432/fleetml_test"
