#!/usr/bin/env bash
# Runs a command against a throwaway MariaDB server: a new data directory in
# a temporary folder, a free loopback port, started as this script's child and
# stopped (and deleted) when the command ends. The command gets
# HOUSTON_TEST_STORE_URL=mysql://root@127.0.0.1:PORT/houston.
# Exits 77 (CTest's "skipped") when mariadbd is not installed - except in CI
# (CI=true, .ci/run), where the MariaDB runs must not be skipped silently:
# there it fails.
set -euo pipefail

if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; then
    if [ "${CI:-}" = true ]; then
        echo "mariadbd is not installed (Debian package mariadb-server): CI needs it" >&2
        exit 1
    fi
    echo "mariadbd is not installed (Debian package mariadb-server): skipped"
    exit 77
fi
PATH=$PATH:/usr/sbin

dir=$(mktemp -d /tmp/houston-mariadb-XXXXXX)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
    if [ -n "${pid:-}" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" && wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

mariadb-install-db --no-defaults --datadir="$dir/data" --user="$(id -un)" \
    --auth-root-authentication-method=normal --skip-test-db > "$dir/install.log" 2>&1 ||
    { cat "$dir/install.log"; exit 1; }
mkdir -p "$dir/tmp" # its own temporary files, not /tmp's shared #sql names
mariadbd --no-defaults --datadir="$dir/data" --socket="$dir/sock" --port="$port" \
    --bind-address=127.0.0.1 --user="$(id -un)" --skip-grant-tables --skip-log-bin \
    --innodb-buffer-pool-size=32M --innodb-log-file-size=16M --pid-file="$dir/pid" \
    --tmpdir="$dir/tmp" \
    > "$dir/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
    if mariadb-admin --no-defaults --socket="$dir/sock" ping > /dev/null 2>&1; then
        break
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$dir/server.log"; exit 1; }
    sleep 0.1
done
mariadb --no-defaults --socket="$dir/sock" -e "CREATE DATABASE houston"
HOUSTON_TEST_STORE_URL="mysql://root@127.0.0.1:$port/houston" "$@"
