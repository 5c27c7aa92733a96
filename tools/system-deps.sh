#!/usr/bin/env bash
# Install the system packages the test suite uses when they are missing (Debian; needs root, else it says so).
# pgbouncer: the connection tests run PgBouncer in transaction mode in front of PostgreSQL.
# chromium, redis-server, prometheus, pgbackrest: see below.
set -u
missing=()
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
# chromium: the tear-sheet test opens the HTML in a real headless browser and reads its screenshot.
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
# redis-server: the events tests start their own Redis per test on a free port.
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
# prometheus: its promtool checks and unit-tests the alerting rules (deploy/prometheus).
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# pgbackrest: point-in-time recovery (tradedb pitr) is tested with it.
command -v pgbackrest >/dev/null 2>&1 || missing+=(pgbackrest)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: ${missing[*]} not installed (needs root and apt-get); the tests that need it will be skipped" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -q >/dev/null 2>&1
    apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || echo "note: could not install ${missing[*]}" >&2
}
# The package may start its own service; tests start their own instances on free ports.
if command -v service >/dev/null 2>&1; then
    service pgbouncer stop >/dev/null 2>&1
    [[ " ${missing[*]} " == *" redis-server "* ]] && service redis-server stop >/dev/null 2>&1
    [[ " ${missing[*]} " == *" prometheus "* ]] && service prometheus stop >/dev/null 2>&1
fi
exit 0
