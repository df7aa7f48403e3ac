#!/usr/bin/env bash
# Builds BUILD/houston_<version>_<arch>.deb from an existing build:
#   scripts/make-deb.sh [BUILD]        (make deb runs it after make build)
# The tree is staged with `cmake --install` (prefix /usr, DESTDIR), the
# binary stripped, Depends computed by dpkg-shlibdeps from the binary's
# shared libraries, and the package written by dpkg-deb with root as owner.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[[ -x $build/houston && -f $build/houston.1.gz ]] || { echo "make-deb: run make build first" >&2; exit 1; }

upstream=$("$build/houston" --version | awk '{print $2}')
version="$upstream-1"
arch=$(dpkg --print-architecture)
stage=$(realpath -m "$build/deb")
out="$build/houston_${version}_${arch}.deb"
rm -rf "$stage" && mkdir -p "$stage"

DESTDIR="$stage" cmake --install "$build" --prefix /usr > /dev/null
# Debian 12 keeps units in /lib/systemd/system (usr-merge moves it later).
mkdir -p "$stage/lib/systemd"
mv "$stage/usr/lib/systemd/system" "$stage/lib/systemd/system"
rmdir -p --ignore-fail-on-non-empty "$stage/usr/lib/systemd"
install -D -m 0644 deploy/houston.default "$stage/etc/default/houston"
rm -f "$stage/usr/share/doc/houston/houston.default"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/usr/bin/houston"

doc="$stage/usr/share/doc/houston"
install -m 0644 deploy/deb/copyright "$doc/copyright"
when=$(git log -1 --format=%ct 2>/dev/null || date +%s)
{
    echo "houston ($version) unstable; urgency=medium"
    echo
    echo "  * Package built from the houston source tree (make deb)."
    echo
    echo " -- houston developers <dev@houston.example.org>  $(date -u -R -d "@$when")"
} | gzip -9n > "$doc/changelog.Debian.gz"
gzip -9n "$doc"/*.md "$doc"/*.yaml 2>/dev/null || true
find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -type f -exec chmod 0644 {} +
chmod 0755 "$stage/usr/bin/houston"

# Depends from the libraries the binary links (dpkg-shlibdeps wants a
# debian/control to read; a minimal one in a scratch directory will do).
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/debian"
printf 'Source: houston\n\nPackage: houston\nArchitecture: any\n' > "$scratch/debian/control"
depends=$(cd "$scratch" && dpkg-shlibdeps -O -e "$stage/usr/bin/houston" 2>/dev/null |
          sed -n 's/^shlibs:Depends=//p')
[[ -n $depends ]] || { echo "make-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

mkdir -p "$stage/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
    -e "s/@DEPENDS@/$depends/" deploy/deb/control.in > "$stage/DEBIAN/control"
install -m 0644 deploy/deb/conffiles "$stage/DEBIAN/conffiles"
(cd "$stage" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z |
    xargs -0 md5sum) > "$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/"*

SOURCE_DATE_EPOCH=$when dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" > /dev/null
echo "$out"
