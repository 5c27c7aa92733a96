#!/usr/bin/env bash
# Build Citus from ../shared/vendor (with its one-line patch for PostgreSQL 15.20's headers) against the machine's
# PostgreSQL 15, once: the build is cached outside the repository (TRADEDB_BUILD_CACHE, default ~/.cache/tradedb)
# and installed into PostgreSQL 15's folders. Silent when it is installed already. Needs root for apt-get and the
# install (CI runs as root).
set -euo pipefail
version=13.2.2
here="$(cd "$(dirname "$0")/.." && pwd)"
vendor="${TRADEDB_VENDOR:-$here/../shared/vendor}"
pg_config=/usr/lib/postgresql/15/bin/pg_config
cache="${TRADEDB_BUILD_CACHE:-$HOME/.cache/tradedb}"
[ -x "$pg_config" ] || { echo "PostgreSQL 15 is not installed ($pg_config)" >&2; exit 1; }
[ -f "$("$pg_config" --pkglibdir)/citus.so" ] && [ -f "$("$pg_config" --sharedir)/extension/citus.control" ] && exit 0
tarball="$vendor/citus-$version.tar.gz"
[ -f "$tarball" ] || { echo "the Citus source is not at $tarball (set TRADEDB_VENDOR)" >&2; exit 1; }
(cd "$vendor" && grep " citus-$version.tar.gz" SHA256SUMS | sha256sum -c --quiet -)
# libkrb5-dev: PostgreSQL 15's server headers include gssapi.h.
"$here/tools/apt-install.sh" postgresql-server-dev-15 libcurl4-openssl-dev liblz4-dev libzstd-dev libkrb5-dev
mkdir -p "$cache"
src="$cache/citus-$version"
if [ ! -f "$src/src/backend/distributed/citus.so" ]; then
    rm -rf "$src" && tar -xzf "$tarball" -C "$cache"
    started=$(date +%s)
    (cd "$src" && patch -p1 -s < "$vendor/citus-pg15.patch" \
        && ./configure PG_CONFIG="$pg_config" >/dev/null 2>&1 && make -j"$(nproc)" >/dev/null 2>&1)
    echo "built Citus $version in $(( $(date +%s) - started )) s (cached in $src)" >&2
fi
make -C "$src" install >/dev/null 2>&1
echo "installed Citus $version into PostgreSQL 15" >&2
