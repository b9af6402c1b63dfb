#!/usr/bin/env bash
# mkdeb.sh — build frugal's Debian package with dpkg-deb (no debian/ tree,
# no debhelper: the package is one binary, one unit and one config file).
#
#   packaging/mkdeb.sh BIN ARCH VERSION OUT.deb      (make deb calls it)
#
# BIN is the frugal binary for ARCH (a Debian architecture: amd64, arm64),
# so the same script packages the native build and the cross build.  The
# tree it builds:
#   /usr/bin/frugal                          BIN, stripped (build/ keeps the symbols)
#   /lib/systemd/system/frugal.service       packaging/frugal.service (Debian 12
#                                            packages still ship units under /lib)
#   /etc/frugal/frugal.ini                   packaging/frugal.ini, a conffile
#   /usr/lib/frugal/memory-limits            the unit's MemoryHigh/MemoryMax from the budget
#   /var/lib/frugal/{models,data}            made frugal's by postinst
#   /usr/share/doc/frugal/                   copyright, changelog.gz, README.md.gz
#   /usr/share/man/man1/frugal.1.gz          packaging/frugal.1
# Depends: dpkg-shlibdeps on BIN when dpkg-dev is installed (cross binaries
# too: it picks ARCH's objdump and the :ARCH libraries' symbols files), else
# the packages owning the libraries BIN links (readelf -d, dpkg -S), plus
# adduser for postinst.  DEB_MAINTAINER names the maintainer (a placeholder
# otherwise, which lintian reports as bogus-mail-host).
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: $0 BIN ARCH VERSION OUT.deb" >&2; exit 2; }
bin=$1 arch=$2 version=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
[ -x "$bin" ] || { echo "mkdeb: $bin is not an executable" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/frugal-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
# Set DEB_MAINTAINER to a real address before publishing the package.
maint=${DEB_MAINTAINER:-frugal developers <frugal@localhost>}
gnu=$(dpkg-architecture -a"$arch" -qDEB_HOST_GNU_TYPE 2>/dev/null) ||
    { echo "mkdeb: unknown architecture '$arch'" >&2; exit 1; }

install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/frugal" \
    "$root/usr/lib/frugal" "$root/usr/share/doc/frugal" "$root/usr/share/man/man1" "$root/var/lib/frugal/models" "$root/var/lib/frugal/data"
install -m 0755 "$bin" "$root/usr/bin/frugal"
strip=${STRIP:-}
if [ -z "$strip" ]; then
    if [ "$arch" = "$(dpkg --print-architecture)" ]; then strip=strip; else strip=$gnu-strip; fi
fi
"$strip" --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/frugal"
install -m 0644 "$here/frugal.service" "$root/lib/systemd/system/frugal.service"
install -m 0644 "$here/frugal.ini" "$root/etc/frugal/frugal.ini"
install -m 0755 "$here/memory-limits" "$root/usr/lib/frugal/memory-limits"
install -m 0644 "$here/copyright" "$root/usr/share/doc/frugal/copyright"
gzip -9n <"$here/frugal.1" >"$root/usr/share/man/man1/frugal.1.gz"
gzip -9n <"$top/README.md" >"$root/usr/share/doc/frugal/README.md.gz"
date=$(git -C "$top" log -1 --format=%aD 2>/dev/null || date -R)
printf 'frugal (%s) unstable; urgency=medium\n\n  * Built from %s.\n\n -- %s  %s\n' \
    "$version" "$(git -C "$top" describe --always --dirty 2>/dev/null || echo 'a source tree')" "$maint" "$date" |
    gzip -9n >"$root/usr/share/doc/frugal/changelog.gz"
for s in postinst prerm postrm; do install -m 0755 "$here/$s" "$root/DEBIAN/$s"; done
echo /etc/frugal/frugal.ini >"$root/DEBIAN/conffiles"

# ---- Depends ----
shlibs=
if command -v dpkg-shlibdeps >/dev/null; then
    mkdir -p "$work/src/debian"
    printf 'Source: frugal\n\nPackage: frugal\nArchitecture: any\n' >"$work/src/debian/control"
    shlibs=$(cd "$work/src" && DEB_HOST_ARCH=$arch dpkg-shlibdeps -O "$root/usr/bin/frugal" 2>"$work/shlibdeps.err" |
             sed -n 's/^shlibs:Depends=//p') || true
    [ -n "$shlibs" ] || { echo "mkdeb: dpkg-shlibdeps failed; listing the libraries' packages instead:" >&2
                          cat "$work/shlibdeps.err" >&2; }
fi
if [ -z "$shlibs" ]; then
    for lib in $(readelf -d "$root/usr/bin/frugal" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        pkg=$(dpkg -S "*/$gnu/$lib" 2>/dev/null | sed -n "s/^\([^:,]*\)\(:$arch\)\{0,1\}: .*/\1/p" | head -n 1)
        [ -n "$pkg" ] || { echo "mkdeb: no installed package has $lib for $arch" >&2; exit 1; }
        case ", $shlibs, " in *", $pkg, "*) ;; *) shlibs=${shlibs:+$shlibs, }$pkg ;; esac
    done
fi

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<EOT
Package: frugal
Version: $version
Architecture: $arch
Maintainer: $maint
Installed-Size: $size
Depends: $shlibs, adduser
Section: net
Priority: optional
Description: memory-frugal AI inference server for small machines
 frugal serves GGUF language and embedding models over OpenAI-compatible
 HTTP APIs from one small process: weights are mapped read-only, models
 load on demand within a memory budget, and what cannot be afforded is
 answered with 503 and Retry-After instead of dying by the OOM killer.
 .
 This package runs it as the frugal system service (frugal.service):
 settings in /etc/frugal/frugal.ini, models in /var/lib/frugal/models.
EOT
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
    xargs -0 md5sum >DEBIAN/md5sums)
mkdir -p "$(dirname "$out")"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "mkdeb: $out ($arch, Depends: $shlibs, adduser)"
