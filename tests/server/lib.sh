# lib.sh — helpers shared by the black-box suites of tests/server and by
# tests/soak/run.sh (sourced, not run).  A suite sets SUITE=name, sources this file, runs its checks
# and ends with `finish`, which stops every server it started (SIGTERM,
# so that LeakSanitizer runs at exit in the sanitizer build), fails the
# suite if a server printed a sanitizer report, and prints
#   suite NAME: N passed, N failed
# (run.sh adds those lines up into its one "server: N passed, N failed").
#
# Servers are started on loopback with --port 0 and are only ever stopped
# by their own PID.  Everything a suite writes goes to its temp dir $TMP,
# removed at exit.
set -u
BIN=${FRUGAL_BIN:-build/frugal}
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
TD=${FRUGAL_TESTDATA:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/shared/testdata}
MODELS=$TD/models
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/frugal-${SUITE:-suite}.XXXXXX")
PIDS=()
pass=0 fail=0

_cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap _cleanup EXIT

ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL [${SUITE:-?}]: $*"; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }

# alive PID: the process exists and is not a zombie (any other state,
# including t: LeakSanitizer stops the threads at exit to scan them).
alive() {
    local st
    [ -e "/proc/$1/stat" ] || return 1
    st=$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null)
    [ "$st" != Z ] && [ "$st" != X ] && [ -e "/proc/$1" ]
}

# start NAME ARGS... : `frugal serve --port 0 ARGS` in the background (env
# from the caller), stderr to $TMP/NAME.log; waits for the listening line
# and sets PID and PORT (and SRV_LOG).
start() {
    local name=$1; shift
    SRV_LOG=$TMP/$name.log
    : >"$SRV_LOG"                   # before the child opens it: the wait below reads it
    "$BIN" serve --port 0 "$@" >"$TMP/$name.out" 2>"$SRV_LOG" &
    PID=$!
    PIDS+=("$PID")
    PORT=
    local i
    for i in $(seq 1 600); do
        PORT=$(sed -n 's/^frugal: listening on http:\/\/[^ ]*:\([0-9][0-9]*\)$/\1/p' "$SRV_LOG")
        [ -n "$PORT" ] && return 0
        alive "$PID" || break
        sleep 0.05
    done
    bad "server $name did not start:"; cat "$SRV_LOG"
    return 1
}

# stop_server [PID] : SIGTERM, wait up to 60 s for the exit; RC is the exit
# status (a kill -9 after the wait is a failure).  Checks it is 0.
stop_server() {
    local p=${1:-$PID} i
    kill -TERM "$p" 2>/dev/null
    for i in $(seq 1 1200); do alive "$p" || break; sleep 0.05; done
    if alive "$p"; then
        kill -9 "$p" 2>/dev/null
        bad "server $p did not exit within 60 s of SIGTERM"
    fi
    wait "$p" 2>/dev/null
    RC=$?
    local keep=() q
    for q in "${PIDS[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
    PIDS=("${keep[@]}")
    check "server $p exits 0 after SIGTERM (rc $RC)" [ "$RC" -eq 0 ]
}

# A sanitizer report in a file: ASan, LeakSanitizer or UBSan.
SAN_RE='ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer)|WARNING: (AddressSanitizer|ThreadSanitizer)'
san_scan() {
    local f
    for f in "$TMP"/*.log "$TMP"/*.err; do
        [ -e "$f" ] || continue
        if grep -Eq "$SAN_RE" "$f"; then
            bad "sanitizer report in $(basename "$f"):"
            grep -E -m 5 -A 12 "$SAN_RE" "$f" | head -60
        fi
    done
}

finish() {
    local p
    for p in "${PIDS[@]}"; do stop_server "$p"; done
    san_scan
    echo "suite ${SUITE:-?}: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit
}

# url PATH
url() { echo "http://127.0.0.1:$PORT$1"; }

# http METHOD PATH [curl args...] : prints the HTTP status; the body goes to
# $TMP/body, the headers to $TMP/head.
http() {
    local m=$1 p=$2; shift 2
    curl -s -m "${HTTP_MAX_TIME:-30}" -o "$TMP/body" -D "$TMP/head" -w '%{http_code}' -X "$m" "$@" "$(url "$p")"
}
# post PATH JSON : POST a JSON body (status printed, as http).
post() { http POST "$1" -H 'Content-Type: application/json' --data-binary "$2"; }

# jb FILTER : jq -r on the last body.
jb() { jq -r "$1" "$TMP/body" 2>/dev/null; }

# header NAME : the value of a header of the last reply ('' when absent).
header() { tr -d '\r' <"$TMP/head" | sed -n "s/^$1: *//Ip" | head -1; }

# err_shape STATUS CODE : the last body is API.md's error shape with that
# code, a non-empty message, a param key, and the type that goes with STATUS.
err_shape() {
    local want_type=invalid_request_error
    [ "$1" -ge 500 ] && want_type=server_error
    jq -e --arg c "$2" --arg t "$want_type" \
        '(.error | type == "object") and (.error.code == $c) and (.error.type == $t)
         and (.error.message | type == "string" and length > 0) and (.error | has("param"))' \
        "$TMP/body" >/dev/null 2>&1
}

# FRUGAL_SAN=1 (make server-test-san): the binary is the ASan+UBSan
# build, whose RSS (shadow memory, the allocator's quarantine of freed
# blocks) says nothing about the server's own; RSS bounds are then
# reported, not asserted.
SAN_BUILD=${FRUGAL_SAN:-0}
# rss_within WHAT USED LIMIT : USED <= LIMIT, or a note under the sanitizer.
rss_within() {
    if [ "$SAN_BUILD" = 1 ]; then
        [ "$2" -le "$3" ] || echo "note [${SUITE:-?}]: $1: RSS above idle $2 > $3 (not checked: sanitizer build)"
        return
    fi
    check "$1: RSS above idle $2 <= $3" [ "$2" -le "$3" ]
}

# rss PID : resident bytes now (VmRSS).
rss() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$1/status" 2>/dev/null; }

# metric NAME{labels} : the value of one sample from /metrics ('' if none).
metric() {
    curl -s -m 10 "$(url /metrics)" | awk -v k="$1" '$1 == k {print $2; exit}'
}

# fake_cgroup SCOPE LIMIT PCT : a fake system root for FRUGAL_SYSROOT in
# $TMP/sysroot whose process lives in cgroup v2 frugal.slice/SCOPE, limited
# to LIMIT bytes with PCT % of it in use; sets S (the root), CG (the
# cgroup's folder) and LIMIT.  set_pct PCT changes the use (atomically).
fake_cgroup() {
    S=$TMP/sysroot
    CG=$S/sys/fs/cgroup/frugal.slice/$1
    LIMIT=$2
    mkdir -p "$S/proc/self" "$CG"
    printf '0::/frugal.slice/%s\n' "$1" >"$S/proc/self/cgroup"
    printf 'max\n' >"$S/sys/fs/cgroup/frugal.slice/memory.max"
    set_pct "$3"
    printf 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n' >"$CG/memory.events"
}
set_pct() {
    printf '%s\n' "$LIMIT" >"$CG/memory.max.tmp" && mv "$CG/memory.max.tmp" "$CG/memory.max"
    printf '%s\n' $((LIMIT / 100 * $1)) >"$CG/memory.current.tmp" && mv "$CG/memory.current.tmp" "$CG/memory.current"
}

# poll SECONDS CMD... : run CMD every 50 ms until it succeeds; false after SECONDS.
poll() {
    local t=$1; shift
    local end=$(($(date +%s%N) + t * 1000000000))
    while :; do
        "$@" && return 0
        [ "$(date +%s%N)" -ge "$end" ] && return 1
        sleep 0.05
    done
}

# models_dir NAME MODEL... : a temp folder of symlinks to fixture models.
models_dir() {
    local d=$TMP/$1 m; shift
    mkdir -p "$d"
    for m in "$@"; do ln -sf "$MODELS/$m.gguf" "$d/$m.gguf"; done
    echo "$d"
}

# run_node SCRIPT [args...] : run a node client from tests/server (so it
# finds node_modules); its "node: N passed, N failed" line is added to this
# suite's counts, and its other output is shown.
run_node() {
    if ! command -v node >/dev/null || [ ! -d "$HERE/node_modules/openai" ]; then
        bad "node and tests/server/node_modules (npm ci) are needed for $1"
        return
    fi
    (cd "$HERE" && node "$@") >"$TMP/node.out" 2>&1
    local rc=$?
    grep -v '^node: [0-9]* passed, [0-9]* failed$' "$TMP/node.out"
    local line
    line=$(grep '^node: [0-9]* passed, [0-9]* failed$' "$TMP/node.out" | tail -1)
    if [ -z "$line" ]; then
        bad "node $1 ended without its summary line (exit $rc)"
        return
    fi
    local n=${line#node: } a b
    a=${n%% passed*}; b=${n#*passed, }; b=${b%% failed*}
    pass=$((pass + a)); fail=$((fail + b))
    [ "$rc" -eq 0 ] || [ "$b" -gt 0 ] || bad "node $1 exited $rc with no failure counted"
}

# ---- event streams saved by curl -N ----
# sse_events FILE : the JSON of each "data:" event but [DONE], one a line.
sse_events() { sed -n 's/^data: //p' "$1" | grep -v '^\[DONE\]$'; }
# sse_text FILE : the text of a stream (text or chat deltas joined).
sse_text() { sse_events "$1" | jq -j '.choices[]? | (.text // .delta.content // "")'; }
# sse_finish FILE : the finish reasons of a stream, space-separated.
sse_finish() { sse_events "$1" | jq -r '.choices[]? | .finish_reason // empty' | tr '\n' ' ' | sed 's/ $//'; }
# sse_usage FILE FIELD : a field of the stream's usage chunk.
sse_usage() { sse_events "$1" | jq -r "select(.usage != null) | .usage.$2"; }
# sse_done FILE : the stream ended with data: [DONE].
sse_done() { [ "$(grep '^data: ' "$1" | tail -1)" = 'data: [DONE]' ]; }

# nogrep PATTERN FILE : the file has no line matching PATTERN.
nogrep() { ! grep -q -- "$1" "$2"; }

# jqe FILTER FILE [jq args...] : the filter is true of FILE (quiet).
jqe() { local f=$1 file=$2; shift 2; jq -e "$@" "$f" "$file" >/dev/null 2>&1; }
# retry_after_ok VALUE : an integer number of seconds >= 1.
retry_after_ok() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ]; }
