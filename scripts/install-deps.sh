#!/usr/bin/env bash
# Installs the Debian packages houston needs, if any is missing.
#   scripts/install-deps.sh build   what `make run` needs (compiler, libraries)
#   scripts/install-deps.sh test    that, plus what `make test` needs
#   scripts/install-deps.sh fuzz    that, plus clang for `make fuzz`
#   scripts/install-deps.sh bench   build, plus nginx + nchan and wrk for `make bench`
#   scripts/install-deps.sh deploy  podman, podman-compose, runc, mmdebstrap (make deploy-test)
# As root it runs apt-get; otherwise it prints the exact command and fails.
set -euo pipefail

mode=${1:-build}
build_pkgs=(gcc make cmake pkg-config libuv1-dev libhttp-parser-dev libjansson-dev
            libsqlite3-dev libssl-dev libmariadb-dev libhiredis-dev)
test_pkgs=(libcmocka-dev python3 python3-pytest python3-pytest-timeout python3-websockets
           python3-yaml python3-cryptography httpie clang-format cppcheck prometheus mariadb-server redis-server nginx-light
           faketime sqlite3
           chromium fonts-liberation
           dpkg-dev binutils lintian systemd man-db groff-base)

fuzz_pkgs=(clang-14 libclang-rt-14-dev)
# nchan is the reference of `make bench`; the bench starts nginx itself
bench_pkgs=(nginx-light libnginx-mod-nchan wrk)
# make deploy-test: the image and the compose stack, built and run without a
# registry (tests/deploy/deploy_test.py)
deploy_pkgs=(podman podman-compose runc mmdebstrap python3-websockets)

case "$mode" in
build) wanted=("${build_pkgs[@]}") ;;
test) wanted=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
fuzz) wanted=("${build_pkgs[@]}" "${test_pkgs[@]}" "${fuzz_pkgs[@]}") ;;
bench) wanted=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
deploy) wanted=("${deploy_pkgs[@]}") ;;
*) echo "usage: $0 build|test|fuzz|bench|deploy" >&2; exit 2 ;;
esac

missing=()
for pkg in "${wanted[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
# The browser test also needs Node.js 20+ and npm (the machine's own, not a
# Debian package: Debian 12's nodejs is 18, too old for playwright-core).
if [[ "$mode" != build ]] && ! command -v npm > /dev/null; then
    echo "houston: the browser test (make browser) needs Node.js 20+ with npm on PATH" >&2
fi
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "houston: missing Debian packages: ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
    echo "houston: run this, then try again:"
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}"
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
