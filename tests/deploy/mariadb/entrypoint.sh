#!/bin/bash
# First start (an empty /var/lib/mysql): creates the system tables, then
# MARIADB_DATABASE and MARIADB_USER with MARIADB_PASSWORD (granted all on that
# database), and a root password (MARIADB_ROOT_PASSWORD, or a random one
# with MARIADB_RANDOM_ROOT_PASSWORD, printed once) - as the official image
# does. Then runs mariadbd as mysql, listening on every interface.
set -euo pipefail
datadir=/var/lib/mysql
if [ "${1:-}" = mariadbd ]; then
  shift
  chown -R mysql:mysql "$datadir" /run/mysqld
  if [ ! -d "$datadir/mysql" ]; then
    mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db \
      --auth-root-authentication-method=normal > /dev/null
    mariadbd --user=mysql --datadir="$datadir" --skip-networking \
      --socket=/run/mysqld/init.sock & pid=$!
    for _ in $(seq 300); do
      mariadb-admin --socket=/run/mysqld/init.sock ping > /dev/null 2>&1 && break
      sleep 0.1
    done
    root=${MARIADB_ROOT_PASSWORD:-}
    if [ -z "$root" ] && [ -n "${MARIADB_RANDOM_ROOT_PASSWORD:-}" ]; then
      root=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
      echo "GENERATED ROOT PASSWORD: $root"
    fi
    sql_quote() { printf "%s" "$1" | sed "s/'/''/g"; }
    {
      [ -n "$root" ] && echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$(sql_quote "$root")';"
      if [ -n "${MARIADB_DATABASE:-}" ]; then
        echo "CREATE DATABASE IF NOT EXISTS \`${MARIADB_DATABASE}\`;"
      fi
      if [ -n "${MARIADB_USER:-}" ]; then
        echo "CREATE USER '$(sql_quote "$MARIADB_USER")'@'%' IDENTIFIED BY '$(sql_quote "${MARIADB_PASSWORD:-}")';"
        [ -n "${MARIADB_DATABASE:-}" ] && \
          echo "GRANT ALL ON \`${MARIADB_DATABASE}\`.* TO '$(sql_quote "$MARIADB_USER")'@'%';"
      fi
      echo "FLUSH PRIVILEGES;"
    } | mariadb --socket=/run/mysqld/init.sock -uroot
    kill "$pid"
    wait "$pid" || true
  fi
  exec mariadbd --user=mysql --datadir="$datadir" --bind-address=0.0.0.0 "$@"
fi
exec "$@"
