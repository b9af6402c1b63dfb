#!/usr/bin/env bash
# tests/deb/run.sh — the Debian package, installed for real (make deb-test;
# make test runs it).
#
# Without root: only packaging/memory-limits (the unit's memory limits from
# the INI's budget) and the package's contents are checked, and the install
# check is skipped with a line saying so.  As root (CI): `dpkg -i` the
# package into this machine, check the installed unit with
# `systemd-analyze verify` (when present) and the package with lintian (when
# installed: its tags are printed, not counted), start the INSTALLED binary
# with the INSTALLED config as the frugal user (setpriv: CI has no systemd
# as PID 1; only --port 0 is added, so a server on 8080 does not collide),
# with a tiny model copied into /var/lib/frugal/models, send one chat
# completion that must answer 200, stop it, then `dpkg -r` (the conffile and
# the user stay) and `dpkg --purge` (files, conffile, user, group and
# /var/lib/frugal are gone).  A frugal package already installed is purged
# first; the test purges what it installed even when it fails.  With
# FRUGAL_DEB_CROSS (make deb-test on x86 with aarch64-linux-gnu-gcc), the
# arm64 package is inspected too: architecture, Depends, the same files, an
# AArch64 binary that runs under qemu-aarch64.
# Prints "deb: N passed, N failed".
set -u
DEB=${FRUGAL_DEB:?FRUGAL_DEB=path/to/frugal_VERSION_ARCH.deb}
TD=${FRUGAL_TESTDATA:-$(cd "$(dirname "$0")/../../.." && pwd)/shared/testdata}
HERE=$(cd "$(dirname "$0")" && pwd)
ML=$HERE/../../packaging/memory-limits
TMP=$(mktemp -d "${TMPDIR:-/tmp}/frugal-deb.XXXXXX")
PID= installed=0
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL [deb]: $*"; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; return 1; fi; }
cleanup() {
    [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
    [ $installed -eq 1 ] && dpkg --purge frugal >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT
finish() { echo "deb: $pass passed, $fail failed"; [ $fail -eq 0 ]; exit; }

# ---- memory-limits: MemoryHigh/MemoryMax from [memory] budget ----
d=$TMP/dropin
printf '[server]\nbudget = 1G\n[memory]\n  budget = 5G ; a Pi 4 8 GB\n' >"$TMP/a.ini"
"$ML" "$TMP/a.ini" "$d" >/dev/null
check "memory-limits: 5G gives MemoryHigh=6016M (5G + 1/8 + 256M)" grep -qx 'MemoryHigh=6016M' "$d/50-memory.conf"
check "memory-limits: 5G gives MemoryMax=6912M (5G + 1/4 + 512M)" grep -qx 'MemoryMax=6912M' "$d/50-memory.conf"
check "memory-limits: the drop-in is a [Service] section" grep -qx '\[Service\]' "$d/50-memory.conf"
printf '[memory]\nbudget = 1.5GiB\n' >"$TMP/b.ini"
"$ML" "$TMP/b.ini" "$d" >/dev/null
check "memory-limits: 1.5GiB gives MemoryMax=2432M" grep -qx 'MemoryMax=2432M' "$d/50-memory.conf"
printf '[memory]\nbudget = 5X\n' >"$TMP/c.ini"
"$ML" "$TMP/c.ini" "$d" >/dev/null 2>"$TMP/c.err"; rc=$?
check "memory-limits: a bad size fails (rc $rc)" [ $rc -ne 0 ]
check "memory-limits: a bad size names the value" grep -q "'5X' is not a size" "$TMP/c.err"
check "memory-limits: a bad size leaves the drop-in" grep -qx 'MemoryMax=2432M' "$d/50-memory.conf"
printf '[memory]\nbudget = 60%%\n' >"$TMP/p.ini"
"$ML" "$TMP/p.ini" "$d" >/dev/null
check "memory-limits: a percentage removes the drop-in (the unit's 85%/90% apply)" [ ! -e "$d/50-memory.conf" ]
"$ML" "$TMP/b.ini" "$d" >/dev/null
printf '[memory]\n;budget = 5G\n' >"$TMP/n.ini"
"$ML" "$TMP/n.ini" "$d" >/dev/null
check "memory-limits: no budget removes the drop-in" [ ! -e "$d/50-memory.conf" ]

# ---- the package's contents ----
check "package: $DEB exists" [ -f "$DEB" ]
dpkg-deb -c "$DEB" >"$TMP/contents" 2>/dev/null
for f in ./usr/bin/frugal ./lib/systemd/system/frugal.service ./etc/frugal/frugal.ini \
         ./usr/lib/frugal/memory-limits ./var/lib/frugal/models/ ./var/lib/frugal/data/ \
         ./usr/share/doc/frugal/copyright ./usr/share/man/man1/frugal.1.gz; do
    check "package: has $f" grep -q " $f\$" "$TMP/contents"
done
check "package: files are root's (--root-owner-group)" \
    bash -c "! grep -v ' root/root ' '$TMP/contents' | grep -q ."
check "package: /etc/frugal/frugal.ini is a conffile" \
    bash -c "dpkg-deb -I '$DEB' conffiles | grep -qx /etc/frugal/frugal.ini"
dep=$(dpkg-deb -f "$DEB" Depends)
check "package: Depends has the libraries and adduser ($dep)" \
    bash -c "[[ '$dep' == *libmicrohttpd* && '$dep' == *libjansson* && '$dep' == *libc6* && '$dep' == *adduser* ]]"

# ---- the cross-built arm64 package (make deb CC=aarch64-linux-gnu-gcc) ----
X=${FRUGAL_DEB_CROSS:-}
if [ -n "$X" ] && [ -f "$X" ]; then
    check "arm64: Architecture is arm64" [ "$(dpkg-deb -f "$X" Architecture)" = arm64 ]
    xdep=$(dpkg-deb -f "$X" Depends)
    check "arm64: Depends has the libraries and adduser ($xdep)" \
        bash -c "[[ '$xdep' == *libmicrohttpd* && '$xdep' == *libc6* && '$xdep' == *adduser* ]]"
    dpkg-deb -c "$X" | awk '{print $6}' | grep -v '^\./usr/share/doc/frugal/' >"$TMP/x.list"
    awk '{print $6}' "$TMP/contents" | grep -v '^\./usr/share/doc/frugal/' >"$TMP/n.list"
    check "arm64: the same files as the native package" cmp -s "$TMP/x.list" "$TMP/n.list"
    dpkg-deb --fsys-tarfile "$X" | tar -xOf - ./usr/bin/frugal >"$TMP/frugal-arm64"
    chmod +x "$TMP/frugal-arm64"
    check "arm64: /usr/bin/frugal is an AArch64 ELF" \
        bash -c "readelf -h '$TMP/frugal-arm64' | grep -q 'Machine:.*AArch64'"
    check "arm64: /usr/bin/frugal is stripped" bash -c "! readelf -S '$TMP/frugal-arm64' | grep -q '\.symtab'"
    if command -v qemu-aarch64 >/dev/null; then
        check "arm64: the packaged binary runs under qemu (serve --help)" \
            bash -c "qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu cortex-a72 '$TMP/frugal-arm64' serve --help >/dev/null 2>&1"
    fi
elif [ -n "$X" ]; then
    bad "arm64: $X was not built"
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "deb: skipping the install check (dpkg -i needs root; CI runs as root)"
    finish
fi

# ---- install ----
exec 9>"$([ -d /run/lock ] && echo /run/lock || echo /tmp)/frugal-deb-test.lock"
flock 9
# db:Status-Status: installed, config-files, ..., not-installed (or no line).
pkg_state() { dpkg-query -W -f='${db:Status-Status}' frugal 2>/dev/null; }
if [ -n "$(pkg_state)" ] && [ "$(pkg_state)" != not-installed ]; then
    echo "deb: purging the frugal package installed before this test"
    dpkg --purge frugal >/dev/null
fi
installed=1
dpkg -i "$DEB" >"$TMP/install.log" 2>&1; rc=$?
check "dpkg -i: exit 0 (rc $rc)" [ $rc -eq 0 ] || cat "$TMP/install.log"
check "installed: dpkg says installed ($(pkg_state))" [ "$(pkg_state)" = installed ]
check "installed: /usr/bin/frugal runs" bash -c "/usr/bin/frugal serve --help >/dev/null 2>&1"
check "installed: user frugal exists" bash -c "getent passwd frugal >/dev/null"
uid=$(id -u frugal 2>/dev/null || echo -1)
check "installed: frugal is a system user (uid $uid)" bash -c "[ $uid -ge 0 ] && [ $uid -lt 1000 ]"
check "installed: frugal's home is /var/lib/frugal" [ "$(getent passwd frugal | cut -d: -f6)" = /var/lib/frugal ]
check "installed: group frugal exists" bash -c "getent group frugal >/dev/null"
for dd in /var/lib/frugal /var/lib/frugal/models /var/lib/frugal/data; do
    check "installed: $dd is frugal's" [ "$(stat -c %U:%G "$dd" 2>/dev/null)" = frugal:frugal ]
done
check "installed: the service is enabled (without systemd running)" \
    [ -L /etc/systemd/system/multi-user.target.wants/frugal.service ]
check "installed: no memory drop-in while the budget is unset" \
    [ ! -e /etc/systemd/system/frugal.service.d/50-memory.conf ]
U=/lib/systemd/system/frugal.service
for kv in User=frugal Restart=on-failure ProtectSystem=strict ProtectHome=yes NoNewPrivileges=yes \
          PrivateTmp=yes ReadWritePaths=/var/lib/frugal CapabilityBoundingSet= MemoryHigh=85% MemoryMax=90% \
          'ExecReload=/bin/kill -HUP $MAINPID'; do
    check "unit: $kv" grep -qxF "$kv" "$U"
done
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify --man=no "$U" >"$TMP/verify" 2>&1; rc=$?
    check "systemd-analyze verify $U: clean (rc $rc)" bash -c "[ $rc -eq 0 ] && [ ! -s '$TMP/verify' ]" ||
        cat "$TMP/verify"
else
    echo "deb: systemd-analyze not installed; the unit is not verified"
fi
if command -v lintian >/dev/null; then
    echo "deb: lintian (reported, not counted):"
    lintian --tag-display-limit 0 "$DEB" 2>&1 | sed 's/^/  /'
else
    echo "deb: lintian not installed; skipped"
fi

# ---- serve one request: the installed binary, config and user ----
M=$TD/models/tiny-llama-q8_0.gguf
install -o frugal -g frugal -m 0640 "$M" /var/lib/frugal/models/tiny.gguf
: >"$TMP/serve.log"
(cd /var/lib/frugal && exec setpriv --reuid=frugal --regid=frugal --init-groups --no-new-privs \
    --inh-caps=-all --bounding-set=-all /usr/bin/frugal serve --config /etc/frugal/frugal.ini --port 0) \
    >/dev/null 2>"$TMP/serve.log" &
PID=$!
PORT=
for _ in $(seq 1 600); do
    PORT=$(sed -n 's/^frugal: listening on http:\/\/127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$TMP/serve.log")
    [ -n "$PORT" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
done
check "serve: the installed config starts a server on 127.0.0.1" [ -n "$PORT" ] || cat "$TMP/serve.log"
if [ -n "$PORT" ]; then
    check "serve: runs as the frugal user" \
        [ "$(awk '/^Uid:/ {print $2}' "/proc/$PID/status" 2>/dev/null)" = "$uid" ]
    s=$(curl -s -o "$TMP/models.json" -w '%{http_code}' "http://127.0.0.1:$PORT/v1/models")
    check "serve: /v1/models lists the model in /var/lib/frugal/models ($s)" \
        bash -c "[ $s = 200 ] && jq -e '[.data[].id] | index(\"tiny\")' '$TMP/models.json' >/dev/null"
    s=$(curl -s -o "$TMP/chat.json" -w '%{http_code}' "http://127.0.0.1:$PORT/v1/chat/completions" \
        -H 'Content-Type: application/json' \
        -d '{"model": "tiny", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4, "temperature": 0}')
    check "serve: a chat completion answers 200 (got $s)" [ "$s" = 200 ] || cat "$TMP/chat.json"
    check "serve: the answer has a message and usage" \
        bash -c "jq -e '.choices[0].message.role == \"assistant\" and .usage.completion_tokens > 0' '$TMP/chat.json' >/dev/null"
    # What `systemctl reload frugal` does (ExecReload): SIGHUP rescans the models.
    install -o frugal -g frugal -m 0640 "$M" /var/lib/frugal/models/tiny2.gguf
    kill -HUP "$PID"
    found=0
    for _ in $(seq 1 100); do
        curl -s "http://127.0.0.1:$PORT/v1/models" | jq -e '[.data[].id] | index("tiny2")' >/dev/null 2>&1 &&
            { found=1; break; }
        sleep 0.05
    done
    check "serve: SIGHUP (systemctl reload) offers a model added to /var/lib/frugal/models" [ $found = 1 ]
    kill -TERM "$PID"
    for _ in $(seq 1 200); do kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
    wait "$PID"; rc=$?
    check "serve: stops on SIGTERM with exit 0 (rc $rc)" [ $rc -eq 0 ] || tail -5 "$TMP/serve.log"
    PID=
fi

# ---- remove keeps the configuration; purge removes everything ----
dpkg -r frugal >"$TMP/remove.log" 2>&1; rc=$?
check "dpkg -r: exit 0 (rc $rc)" [ $rc -eq 0 ] || cat "$TMP/remove.log"
check "removed: the binary is gone" [ ! -e /usr/bin/frugal ]
check "removed: the unit is gone" [ ! -e "$U" ]
check "removed: the conffile stays" [ -f /etc/frugal/frugal.ini ]
check "removed: dpkg keeps config-files ($(pkg_state))" [ "$(pkg_state)" = config-files ]
check "removed: the user stays" bash -c "getent passwd frugal >/dev/null"
check "removed: the models stay" [ -f /var/lib/frugal/models/tiny.gguf ]
# Install again over the kept, edited conffile: postinst derives the unit's
# memory limits from its absolute budget.
sed -i 's/^;budget = 5G$/budget = 2G/' /etc/frugal/frugal.ini
check "reinstall: the kept conffile now sets budget = 2G" grep -qx 'budget = 2G' /etc/frugal/frugal.ini
dpkg -i "$DEB" >"$TMP/install2.log" 2>&1; rc=$?
check "reinstall: dpkg -i over the kept conffile: exit 0 (rc $rc)" [ $rc -eq 0 ] || cat "$TMP/install2.log"
check "reinstall: the administrator's conffile is kept" grep -qx 'budget = 2G' /etc/frugal/frugal.ini
D=/etc/systemd/system/frugal.service.d/50-memory.conf
check "reinstall: budget 2G gives the drop-in MemoryHigh=2560M" grep -qx 'MemoryHigh=2560M' "$D"
check "reinstall: budget 2G gives the drop-in MemoryMax=3072M" grep -qx 'MemoryMax=3072M' "$D"
if command -v systemd-analyze >/dev/null; then
    mkdir -p "$TMP/unit/frugal.service.d" && cp "$U" "$TMP/unit/" && cp "$D" "$TMP/unit/frugal.service.d/"
    systemd-analyze verify --man=no "$TMP/unit/frugal.service" >"$TMP/verify2" 2>&1; rc=$?
    check "reinstall: the unit with its drop-in verifies (rc $rc)" bash -c "[ $rc -eq 0 ] && [ ! -s '$TMP/verify2' ]" ||
        cat "$TMP/verify2"
fi
dpkg --purge frugal >"$TMP/purge.log" 2>&1; rc=$?
check "dpkg --purge: exit 0 (rc $rc)" [ $rc -eq 0 ] || cat "$TMP/purge.log"
installed=0
check "purged: dpkg knows no frugal ($(pkg_state))" bash -c "[ -z '$(pkg_state)' ] || [ '$(pkg_state)' = not-installed ]"
check "purged: /etc/frugal is gone" [ ! -e /etc/frugal ]
check "purged: /var/lib/frugal is gone" [ ! -e /var/lib/frugal ]
check "purged: /usr/lib/frugal is gone" [ ! -e /usr/lib/frugal ]
check "purged: the user is gone" bash -c "! getent passwd frugal >/dev/null"
check "purged: the group is gone" bash -c "! getent group frugal >/dev/null"
check "purged: the enablement link is gone" [ ! -e /etc/systemd/system/multi-user.target.wants/frugal.service ]
check "purged: no drop-in directory" [ ! -e /etc/systemd/system/frugal.service.d ]
finish
