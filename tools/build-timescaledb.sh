#!/usr/bin/env bash
# Build TimescaleDB from ../shared/vendor against the machine's PostgreSQL 15, once: the build is cached outside
# the repository (TRADEDB_BUILD_CACHE, default ~/.cache/tradedb) and installed into PostgreSQL 15's folders.
# Silent when it is installed already. Needs root for apt-get and the install (CI runs as root).
set -euo pipefail
version=2.28.3
here="$(cd "$(dirname "$0")/.." && pwd)"
vendor="${TRADEDB_VENDOR:-$here/../shared/vendor}"
pg_config=/usr/lib/postgresql/15/bin/pg_config
cache="${TRADEDB_BUILD_CACHE:-$HOME/.cache/tradedb}"
[ -x "$pg_config" ] || { echo "PostgreSQL 15 is not installed ($pg_config)" >&2; exit 1; }
[ -f "$("$pg_config" --pkglibdir)/timescaledb-$version.so" ] && exit 0
tarball="$vendor/timescaledb-$version.tar.gz"
[ -f "$tarball" ] || { echo "the TimescaleDB source is not at $tarball (set TRADEDB_VENDOR)" >&2; exit 1; }
(cd "$vendor" && grep " timescaledb-$version.tar.gz" SHA256SUMS | sha256sum -c --quiet -)
"$here/tools/apt-install.sh" postgresql-server-dev-15 cmake
mkdir -p "$cache"
src="$cache/timescaledb-$version"
if [ ! -f "$src/build/src/timescaledb-$version.so" ]; then
    rm -rf "$src" && tar -xzf "$tarball" -C "$cache"
    started=$(date +%s)
    (cd "$src" && ./bootstrap -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
        -DPG_CONFIG="$pg_config" >/dev/null 2>&1 && make -C build -j"$(nproc)" >/dev/null 2>&1)
    echo "built TimescaleDB $version in $(( $(date +%s) - started )) s (cached in $src)" >&2
fi
make -C "$src/build" install >/dev/null
echo "installed TimescaleDB $version into PostgreSQL 15" >&2
