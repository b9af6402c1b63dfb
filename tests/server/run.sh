#!/usr/bin/env bash
# Black-box tests of `frugal serve`: start the real binary on a free
# loopback port (--port 0; the port is read from its "listening on" line),
# talk to it with curl and a little python, check exit codes and error
# lines.  Ends with "server: N passed, N failed"; exits non-zero on failure.
#
# Covered: /health, the /metrics text format, 404, 405 + Allow, 401 with
# and without keys (Bearer, X-API-Key, key file), 413 past --max-body,
# malformed JSON on a JSON route (when one is in the table), precedence
# flag > env > INI, bad INI key / value / section, bad flag and variable
# (exit 2, one line naming the place), SIGHUP, SIGTERM and SIGINT drain
# (exit 0), a client sending its headers one byte a second dropped by a
# short --header-timeout while /health keeps answering, and the openai npm
# package (installed here with npm ci) loading under node.
#
# Then the acceptance suites, one script each (sharing lib.sh):
#   openai.sh    the official openai npm client (openai.test.mjs)
#   shapes.sh    OpenAI's other shapes: several prompts, n, echo, ids,
#                system_fingerprint, context_length_exceeded (curl, openai@6,
#                LangChain's OpenAI.generate: shapes.test.mjs)
#   rerank.sh    TEI's /rerank and Jina's/Cohere's /v1/rerank against
#                llama.cpp's scores (raw and sigmoid)
#   budget.sh    --memory-budget: LRU eviction, pins, busy models never evicted
#   pressure.sh  memory levels and temperature (throttling) from fake /proc
#                and /sys files (FRUGAL_SYSROOT)
#   load.sh      32 concurrent streams on --parallel 4 --queue 8 (load.mjs)
#   badinput.sh  bad requests, disconnects and slow clients
#   embed.sh     embeddings and rerank: the openai client and llama.cpp's
#                references, batching, the vector cache, bad input, eviction
#   durability.sh  kill -9 of the server and of `frugal index add` mid-ingest:
#                every document whole or absent, the index consistent
#   search.sh    document search: collections, ingest, every search mode,
#                rerank, ask, bad input, restart on the same --data
#   hardening.sh connection floods (slowloris.mjs), clients that never read,
#                cross-site requests and DNS rebinding, strict HTTP parsing,
#                duplicate keys, 401 before 404, 499 for clients that left
#   special.sh   special-token texts ("</s>", "<|im_end|>", ...) in chat
#                messages and in documents quoted by ask are text; a raw
#                completion prompt's are tokens (as llama-server)
#   hold.sh      what requests hold and replies show: a stalled stream and
#                forced unloads, embeddings replies (bytes, budget), no
#                absolute model paths in errors
#   disk.sh      the index on a full disk (a 2 MB tmpfs: 507
#                insufficient_storage with per-document results, the index
#                consistent, the rest stored once space is freed) and
#                --data-sync normal|full
#   tools.sh     tool calls: tools, tool_choice (required and named enforced
#                by grammar), streamed calls, the round trip, 400s naming the
#                field; curl and the openai client (tools.test.mjs), on the
#                chatml, llama3 and mistral call syntaxes
#   structured.sh  grammar-constrained output: 100 generations per tiny model
#                against 5 JSON schemas, each validated; json_object, GBNF
#                grammars, 400s for bad grammars and unsupported keywords
#   clients.sh   openai, the AI SDK and LangChain: chat, stream, a tool call
#                round trip, 100 structured outputs each, embeddings; and
#                promtool check metrics on /metrics
#   ollama.sh    Ollama's API (/api/...): NDJSON streams, counters, options,
#                keep_alive load/unload, errors in Ollama's shape, show,
#                embed, and the official ollama npm client (ollama.test.mjs)
# and one closing line for all: "server: N passed, N failed".  Under
# make server-test-san a sanitizer report in any server's stderr fails.
set -u
BIN=${FRUGAL_BIN:-build/frugal}
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }

# start NAME ARGS... : run `frugal serve --port 0 ARGS` in the background
# (env from the caller), wait for its listening line; sets PID and PORT.
start() {
    local name=$1; shift
    "$BIN" serve --port 0 "$@" >"$TMP/$name.out" 2>"$TMP/$name.log" &
    PID=$!
    PIDS+=("$PID")
    PORT=
    for _ in $(seq 1 200); do
        PORT=$(sed -n 's/^frugal: listening on http:\/\/[^ ]*:\([0-9][0-9]*\)$/\1/p' "$TMP/$name.log")
        [ -n "$PORT" ] && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "server $name did not start:"; cat "$TMP/$name.log"
    return 1
}

# stop SIG : send SIG to PID and wait for it; sets RC.
stop() {
    kill -"$1" "$PID" 2>/dev/null
    wait "$PID"
    RC=$?
}

# status METHOD PATH [curl args...] : the HTTP status; the body goes to $TMP/body, headers to $TMP/head.
status() {
    local m=$1 p=$2; shift 2
    curl -s -m 10 -o "$TMP/body" -D "$TMP/head" -w '%{http_code}' -X "$m" "$@" "http://127.0.0.1:$PORT$p"
}

# The body is the error shape with this code and type.
err_is() {
    python3 - "$TMP/body" "$1" "$2" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))["error"]
ok = e["code"] == sys.argv[2] and e["type"] == sys.argv[3] and "param" in e and e["message"]
sys.exit(0 if ok else 1)
PY
}

# ---- basic routes ----
start basic || { echo "server: $pass passed, $((fail + 1)) failed"; exit 1; }
check "listening line carries a real port ($PORT)" [ "$PORT" -gt 0 ]
check "no models directory is logged" grep -q "no models are offered" "$TMP/basic.log"
check "GET /health is 200" [ "$(status GET /health)" = 200 ]
check "/health says ok" grep -qx '{"status":"ok"}' "$TMP/body"
check "GET /metrics is 200" [ "$(status GET /metrics)" = 200 ]
check "/metrics is Prometheus text" grep -qi '^content-type: text/plain; version=0.0.4' "$TMP/head"
python3 - "$TMP/body" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? [-+0-9.eEInfNa]+$')
types = {}
for line in text.splitlines():
    if line.startswith('# HELP '): continue
    if line.startswith('# TYPE '):
        _, _, name, t = line.split(' ', 3); types[name] = t; continue
    if not sample.match(line): print('bad metrics line:', line); sys.exit(1)
need = {'frugal_http_requests_total': 'counter', 'frugal_http_request_duration_seconds': 'histogram',
        'frugal_http_requests_in_flight': 'gauge', 'frugal_http_connections': 'gauge'}
for n, t in need.items():
    if types.get(n) != t: print('missing', n, t); sys.exit(1)
if 'frugal_http_requests_total{route="/health",status="200"} 1' not in text: sys.exit(1)
if 'frugal_http_request_duration_seconds_bucket{route="/health",le="+Inf"} 1' not in text: sys.exit(1)
PY
check "/metrics lines parse and carry the request counters" [ $? -eq 0 ]
check "unknown route is 404" [ "$(status GET /v1/nothing)" = 404 ]
check "404 has the error shape" err_is not_found invalid_request_error
check "wrong method is 405" [ "$(status POST /health)" = 405 ]
check "405 has an Allow header" grep -qi '^allow: GET' "$TMP/head"
check "405 has the error shape" err_is method_not_allowed invalid_request_error
head -c 2000000 /dev/zero >"$TMP/big"
check "a body over the default 1 MiB is 413" [ "$(status GET /metrics --data-binary @"$TMP/big")" = 413 ]
check "413 has the error shape" err_is body_too_large invalid_request_error
check "the 413 came before the body was read" grep -q "limit of 1048576 bytes" "$TMP/body"
# malformed JSON, on the first JSON route the table has
jr=$(status POST /v1/chat/completions -H 'Content-Type: application/json' --data-binary '{"model": tru')
if [ "$jr" != 404 ]; then
    check "malformed JSON is 400 (got $jr)" [ "$jr" = 400 ]
    check "the 400 names line and column" grep -q 'malformed JSON at line 1, column' "$TMP/body"
fi
kill -HUP "$PID"; sleep 0.2
check "SIGHUP keeps the server up" [ "$(status GET /health)" = 200 ]
check "SIGHUP is logged" grep -q "SIGHUP" "$TMP/basic.log"
check "requests are logged one line each" grep -q "GET /health model=- status=200" "$TMP/basic.log"
stop TERM
check "SIGTERM drains and exits 0 (rc $RC)" [ "$RC" -eq 0 ]
check "the drain is logged" grep -q "SIGTERM: draining" "$TMP/basic.log"

start sigint || bad "start for SIGINT"
stop INT
check "SIGINT exits 0 (rc $RC)" [ "$RC" -eq 0 ]

# ---- auth ----
printf '# keys\nsk-file-key\n' >"$TMP/keys"
start auth --api-key sk-test --api-key-file "$TMP/keys" || bad "start with keys"
check "no key is 401" [ "$(status GET /metrics)" = 401 ]
check "401 has the error shape" err_is unauthorized invalid_request_error
check "wrong key is 401" [ "$(status GET /metrics -H 'Authorization: Bearer sk-wrong')" = 401 ]
check "Bearer key is 200" [ "$(status GET /metrics -H 'Authorization: Bearer sk-test')" = 200 ]
check "X-API-Key is 200" [ "$(status GET /metrics -H 'X-API-Key: sk-test')" = 200 ]
check "a key from the file is 200" [ "$(status GET /metrics -H 'Authorization: Bearer sk-file-key')" = 200 ]
check "/health needs no key" [ "$(status GET /health)" = 200 ]
stop TERM
check "auth server exits 0" [ "$RC" -eq 0 ]

# ---- precedence: flag > env > INI > default, seen through the body limit ----
printf '[server]\nmax_body = 1K\n' >"$TMP/p.ini"
head -c 1500 /dev/zero >"$TMP/b1500"
head -c 2500 /dev/zero >"$TMP/b2500"
start ini --config "$TMP/p.ini" || bad "start with INI"
check "INI max_body 1K refuses 1500 bytes" [ "$(status GET /health --data-binary @"$TMP/b1500")" = 413 ]
stop TERM
FRUGAL_MAX_BODY=2K start env --config "$TMP/p.ini" || bad "start with env"
check "env 2K beats INI 1K (1500 bytes pass)" [ "$(status GET /health --data-binary @"$TMP/b1500")" = 200 ]
check "env 2K refuses 2500 bytes" [ "$(status GET /health --data-binary @"$TMP/b2500")" = 413 ]
stop TERM
FRUGAL_MAX_BODY=2K start flag --config "$TMP/p.ini" --max-body 3K || bad "start with flag"
check "flag 3K beats env 2K (2500 bytes pass)" [ "$(status GET /health --data-binary @"$TMP/b2500")" = 200 ]
stop TERM
FRUGAL_CONFIG="$TMP/p.ini" start envcfg || bad "start with FRUGAL_CONFIG"
check "FRUGAL_CONFIG names the INI file" [ "$(status GET /health --data-binary @"$TMP/b1500")" = 413 ]
stop TERM

# ---- start-up errors: exit 2, one line naming the place ----
bad_start() {   # what, expected text, args...
    local what=$1 want=$2; shift 2
    "$BIN" serve --port 0 "$@" >/dev/null 2>"$TMP/err" &
    local p=$!
    PIDS+=("$p")
    wait "$p"
    local rc=$?
    check "$what exits 2 (rc $rc: $(head -c 300 "$TMP/err"))" [ "$rc" -eq 2 ]
    check "$what prints one line" [ "$(wc -l <"$TMP/err")" -eq 1 ]
    check "$what names it ('$want' in '$(cat "$TMP/err")')" grep -qF -- "$want" "$TMP/err"
}
printf '[server]\nport = 8080\nprot = 1\n' >"$TMP/badkey.ini"
bad_start "unknown INI key" "badkey.ini:3: [server] prot: unknown key" --config "$TMP/badkey.ini"
printf '[memory]\nbudget = lots\n' >"$TMP/badval.ini"
bad_start "bad INI value" "badval.ini:2: [memory] budget: bad size 'lots'" --config "$TMP/badval.ini"
printf '[srv]\n' >"$TMP/badsec.ini"
bad_start "unknown INI section" "badsec.ini:1: unknown section [srv]" --config "$TMP/badsec.ini"
printf '[model "m"]\nalias = x\n' >"$TMP/nopath.ini"
bad_start "model without path" "[model \"m\"] has no path" --config "$TMP/nopath.ini"
bad_start "missing INI file" "config file $TMP/none.ini" --config "$TMP/none.ini"
bad_start "unknown flag" "unknown option '--prot'" --prot 1
bad_start "bad flag value" "--keep-alive: bad duration '5 minutes'" --keep-alive "5 minutes"
FRUGAL_PORT=http bad_start "bad variable" "FRUGAL_PORT: bad integer 'http'"
bad_start "missing models dir" "--models $TMP/nomodels" --models "$TMP/nomodels"
printf '\n' >"$TMP/nokeys"
bad_start "empty key file" "has no keys" --api-key-file "$TMP/nokeys"

# ---- a client that sends its headers one byte a second ----
start slow --header-timeout 1s || bad "start with --header-timeout"
python3 - "$PORT" >"$TMP/slow.out" 2>&1 <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(0.05)
req = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 40 + b"\r\n\r\n"
for i, c in enumerate(req):
    try:
        s.send(bytes([c]))
    except OSError:
        print("dropped after", i, "bytes"); sys.exit(0)
    t = time.time()
    while time.time() - t < 1.0:
        try:
            if s.recv(100) == b"":
                print("dropped after", i + 1, "bytes"); sys.exit(0)
        except socket.timeout:
            pass
        except OSError:
            print("dropped after", i + 1, "bytes"); sys.exit(0)
print("never dropped"); sys.exit(1)
PY
slowpid=$!
sleep 0.5
healthy=1
for _ in 1 2 3; do
    [ "$(status GET /health)" = 200 ] || healthy=0
    sleep 0.3
done
check "/health answers while a slow client holds a connection" [ $healthy -eq 1 ]
wait $slowpid
check "the slow client is dropped by --header-timeout ($(cat "$TMP/slow.out"))" grep -q "dropped after" "$TMP/slow.out"
stop TERM
check "slow server exits 0" [ "$RC" -eq 0 ]

# ---- the openai npm package (for the client tests to come) ----
if command -v npm >/dev/null && command -v node >/dev/null; then
    if [ ! -d "$HERE/node_modules/openai" ] || [ ! -d "$HERE/node_modules/ollama" ] || [ ! -d "$HERE/node_modules/@langchain/openai" ]; then
        (cd "$HERE" && npm ci --no-audit --no-fund >"$TMP/npm.log" 2>&1) || cat "$TMP/npm.log"
    fi
    (cd "$HERE" && node -e "const { OpenAI } = require('openai'); new OpenAI({ apiKey: 'k', baseURL: 'http://127.0.0.1:1/v1' });")
    check "the openai package loads under node $(node --version)" [ $? -eq 0 ]
else
    bad "node and npm are needed for the client tests"
fi

# ---- sanitizer reports from the servers above (make server-test-san) ----
for f in "$TMP"/*.log "$TMP"/err; do
    [ -e "$f" ] || continue
    if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer)' "$f"; then
        bad "sanitizer report in $(basename "$f")"
        head -c 4000 "$f"
    fi
done

# ---- the acceptance suites: one script each (helpers in lib.sh) ----
# Each ends with "suite NAME: N passed, N failed"; those add up here.  A
# suite that dies without its line counts as one failure.
for suite in openai shapes rerank budget pressure load badinput embed durability search special hardening hold disk structured tools clients ollama; do
    t0=$(date +%s%N)
    "$HERE/$suite.sh" >"$TMP/suite.out" 2>&1
    rc=$?
    t1=$(date +%s%N)
    cat "$TMP/suite.out"
    line=$(grep -E "^suite $suite: [0-9]+ passed, [0-9]+ failed$" "$TMP/suite.out" | tail -1)
    if [ -z "$line" ]; then
        bad "suite $suite ended without its summary line (exit $rc)"
        continue
    fi
    n=${line#*: }; a=${n%% passed*}; b=${n#*passed, }; b=${b%% failed*}
    pass=$((pass + a)); fail=$((fail + b))
    [ "$rc" -eq 0 ] || [ "$b" -gt 0 ] || bad "suite $suite exited $rc with no failure counted"
    echo "   ($suite: $(( (t1 - t0) / 1000000 )) ms)"
done

echo "server: $pass passed, $fail failed"
[ $fail -eq 0 ]
