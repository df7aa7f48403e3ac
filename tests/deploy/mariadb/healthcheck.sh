#!/bin/bash
# The official image's health check, for the flags deploy/docker-compose.yml
# uses: --connect (a TCP client of MARIADB_USER gets in) and
# --innodb_initialized (InnoDB is up). Exit 0 when every check passes.
set -u
client=(mariadb --protocol=tcp -h 127.0.0.1 -u"${MARIADB_USER:-root}"
        -p"${MARIADB_PASSWORD:-${MARIADB_ROOT_PASSWORD:-}}" -N -B)
for check in "$@"; do
  case "$check" in
  --connect) "${client[@]}" -e 'SELECT 1' > /dev/null 2>&1 || exit 1 ;;
  --innodb_initialized)
    [ "$("${client[@]}" -e "SELECT 1 FROM information_schema.ENGINES WHERE engine = 'InnoDB'
                               AND support IN ('YES', 'DEFAULT')" 2>/dev/null)" = 1 ] || exit 1 ;;
  *) echo "healthcheck.sh: unknown check $check" >&2; exit 2 ;;
  esac
done
