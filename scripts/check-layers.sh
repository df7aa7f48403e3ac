#!/usr/bin/env bash
# check-layers.sh - the module layering of docs/architecture.md, checked.
#
# Every module is a static library and every target sees src/ (so that
# headers are included as "module/name.h"); neither the compiler nor the
# linker would stop core/ from including roles/. This script does: each
# module may include its own headers and those of the modules listed for it
# below, nothing else. Run by CTest (unit/layering) in make test.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A allowed=(
    [core]=""
    [net]="core"
    [http]="core net"
    [ws]="core net http"
    [store]="core"
    [bus]="core"
    [roles]="core net http ws store bus"
    [cli]="core net http ws"
)

status=0
for module in "${!allowed[@]}"; do
    [ -d "src/$module" ] || continue
    ok=" $module ${allowed[$module]} "
    # #include "other/x.h" lines of every file of the module.
    while IFS=: read -r file line text; do
        other=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]+"([a-z_]+)\/.*/\1/' <<<"$text")
        if [[ "$ok" != *" $other "* ]]; then
            echo "$file:$line: $module/ must not include $other/ (allowed: ${allowed[$module]:-nothing})" >&2
            status=1
        fi
    done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]+"[a-z_]+/' "src/$module"/*.[ch] /dev/null || true)
done
# A module folder this table does not know is a layer nobody placed.
for dir in src/*/; do
    module=$(basename "$dir")
    [ -n "${allowed[$module]+x}" ] || { echo "src/$module/: not in scripts/check-layers.sh" >&2; status=1; }
done
[ $status -eq 0 ] && echo "layering: every include follows docs/architecture.md"
exit $status
