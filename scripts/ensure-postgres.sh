#!/usr/bin/env bash
# Makes sure PostgreSQL answers on 127.0.0.1:5432 for the store tests: starts
# the installed cluster, installs one first if we may (root with apt-get),
# otherwise says what to do. Skipped when SENDMESH_TEST_POSTGRES_URL is set.
set -euo pipefail
host=127.0.0.1
port=5432
wait_s=60

answers() { timeout 1 bash -c ": </dev/tcp/$host/$port" 2>/dev/null; }

wait_until_up() {
  for _ in $(seq "$wait_s"); do
    answers && { echo "PostgreSQL is up on $host:$port"; return 0; }
    sleep 1
  done
  echo "PostgreSQL did not answer on $host:$port within ${wait_s}s; see /var/log/postgresql/" >&2
  return 1
}

# "15 main" for the first cluster on this machine, if any.
first_cluster() { pg_lsclusters --no-header 2>/dev/null | awk 'NR==1 {print $1, $2}'; }

# The tests connect as postgres without a password (tests/servers.py); a
# cluster we created ourselves is a local test cluster, so loopback is trusted.
trust_loopback() {
  local hba="/etc/postgresql/$1/$2/pg_hba.conf"
  sed -i -E 's#^(host\s+all\s+all\s+127\.0\.0\.1/32\s+)\S+#\1trust#' "$hba"
}

if [[ -n "${SENDMESH_TEST_POSTGRES_URL:-}" ]]; then
  echo "SENDMESH_TEST_POSTGRES_URL is set: using that server"
  exit 0
fi
if answers; then
  echo "PostgreSQL answers on $host:$port"
  exit 0
fi
installed_now=no
if ! command -v pg_ctlcluster >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "installing postgresql"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
    installed_now=yes
  else
    echo "PostgreSQL is not running on $host:$port and not installed." >&2
    echo "Install it (Debian/Ubuntu: sudo apt-get install postgresql), start it," >&2
    echo "or point the tests at a server with SENDMESH_TEST_POSTGRES_URL." >&2
    exit 1
  fi
fi
read -r version cluster <<<"$(first_cluster)" || true
if [[ -z "${version:-}" ]]; then
  version=$(ls /usr/lib/postgresql | sort -n | tail -1)
  cluster=main
  echo "creating cluster $version/$cluster"
  pg_createcluster "$version" "$cluster"
  installed_now=yes
fi
if [[ $installed_now == yes ]]; then
  trust_loopback "$version" "$cluster"
fi
if answers; then
  # The package may have started the cluster before pg_hba.conf was changed.
  [[ $installed_now == yes ]] && pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" reload
  echo "PostgreSQL answers on $host:$port"
  exit 0
fi
echo "starting PostgreSQL $version/$cluster"
pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start
wait_until_up
