#!/usr/bin/env bash
# Install the Debian 12 packages that frugal's build and tests need.
# Idempotent: a no-op when everything is present.  Run as root (or with sudo).
set -eu
pkgs="build-essential pkg-config clang libclang-rt-14-dev libpcre2-dev libutf8proc-dev libjansson-dev
      libmicrohttpd-dev libinih-dev libsqlite3-dev curl python3 xxd jq iproute2"
# On amd64 also the arm64 cross build and its emulator (make CC=aarch64-linux-gnu-gcc,
# make test-arm): the cross compiler, qemu-user, and the arm64 (multiarch) -dev
# packages of the libraries the Makefile takes from pkg-config.  On an arm64
# machine the native packages above are all it needs.
if [ "$(dpkg --print-architecture)" = amd64 ]; then
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        echo "setup: adding the arm64 architecture (multiarch)"
        SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
        $SUDO dpkg --add-architecture arm64
    fi
    pkgs="$pkgs gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
          libpcre2-dev:arm64 libutf8proc-dev:arm64 libjansson-dev:arm64 libmicrohttpd-dev:arm64
          libinih-dev:arm64 libsqlite3-dev:arm64"
fi
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup: installing$missing"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
else
    echo "setup: all packages present"
fi
# promtool (Debian's prometheus package) checks /metrics; its recommends
# (node exporters, IPMI, SMART tools) are not needed.
if ! command -v promtool >/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus \
        || { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus; }
fi
# The Debian package's build and install check (make deb, make deb-test):
# dpkg-shlibdeps (dpkg-dev), systemd-analyze (systemd), adduser, setpriv.
deb_missing=""
for p in dpkg-dev systemd adduser util-linux; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || deb_missing="$deb_missing $p"
done
if [ -n "$deb_missing" ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    echo "setup: installing$deb_missing"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $deb_missing \
        || { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $deb_missing; }
fi
