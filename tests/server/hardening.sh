#!/usr/bin/env bash
# hardening.sh — what no client may do to the server (issue 11):
#   1. starve it with connections: 300+ slow-header connections from ten
#      loopback addresses and hundreds more from one (over --max-conns-per-ip)
#      while a good client gets /health and a chat completion within 1 s
#      (slowloris.mjs);
#   2. hold it by not reading: a stream whose client never reads is closed
#      by the idle timeout (--conn-timeout), the generation is not held back,
#      and an idle stream (queued for a slot) sends ": keep-alive" comments;
#      large embeddings replies nobody reads are dropped the same way and
#      their memory given back;
#   3. write to it through a browser: a cross-site POST (any content type)
#      is 403 and changes nothing; --cors-origin origins get CORS headers and
#      preflights; the server's own origin passes; a Host that is not a
#      loopback name is 403 while bound to loopback (DNS rebinding), unless
#      listed with --allowed-host; curl -d without a content type still works;
#   9. lean on lenient parsing: a blank before a header's colon, a bare CR in
#      a value, HTTP/1.1 without Host, a garbage request line, a method that
#      is not a token: each 400 (none silently dropped);
#  10. duplicate JSON keys are 400; with keys set an unknown route or method
#      is 401 before 404/405; a non-streamed request whose client left is
#      logged as 499; --api-key warns that ps shows it;
# and draining as documented (issue 16): after SIGTERM a new client's
# /health and requests are answered 503 shutting_down, not refused, while
# the request in flight finishes.
SUITE=hardening
. "$(dirname "$0")/lib.sh"

M=tiny-llama-q8_0
dir=$(models_dir models $M)

# raw REQUEST : send bytes (printf escapes) on a fresh connection, print the
# status line ("" when the server closed without a word).
raw() {
    python3 - "$PORT" "$1" <<'PY'
import socket, sys
data = sys.argv[2].encode().decode('unicode_escape').encode('latin1')
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.sendall(data)
s.settimeout(5)
out = b''
try:
    while b'\r\n' not in out:
        b = s.recv(4096)
        if not b: break
        out += b
except socket.timeout:
    pass
print(out.split(b'\r\n')[0].decode('latin1'))
PY
}

# ---- 1. connection exhaustion ----
start loris --models "$dir" --header-timeout 3s || finish
run_node slowloris.mjs "$PORT" "$M"
check "the server survived the flood" alive "$PID"
s=$(http GET /health)
check "/health after the flood (got $s)" [ "$s" = 200 ]
stop_server "$PID"

# ---- 2. clients that do not read; idle streams ----
start stall --models "$dir" --conn-timeout 2s --parallel 1 --queue 4 --ctx 4096 --log-level info || finish
# A stream of ~2000 tokens to a client that never reads (a 1 KB receive
# buffer): once the socket buffers are full nothing moves, and the idle
# timeout closes it; the request ends (its log line) while the client
# still holds its socket.
python3 - "$PORT" "$M" >"$TMP/stall.out" 2>&1 <<'PY' &
import socket, sys, time, json
port, model = int(sys.argv[1]), sys.argv[2]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
s.connect(('127.0.0.1', port))
body = json.dumps({"model": model, "prompt": "Once", "max_tokens": 2000, "stream": True,
                   "ignore_eos": True}).encode()
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
          b"Content-Length: %d\r\n\r\n" % len(body) + body)
time.sleep(25)      # never reads; the test kills this process first
PY
STALL=$!
check "a stream nobody reads is closed by the idle timeout within 20 s" \
    poll 20 grep -q 'POST /v1/completions model=.* status=200' "$SRV_LOG"
s=$(curl -s -m 10 -o "$TMP/after.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "{\"model\": \"$M\", \"prompt\": \"Hi\", \"max_tokens\": 2}" "$(url /v1/completions)")
check "the model serves others meanwhile (got $s)" [ "$s" = 200 ]
kill "$STALL" 2>/dev/null; wait "$STALL" 2>/dev/null
# An idle stream: queued behind a long generation on the one slot, it says
# ": keep-alive" while it waits (every conn-timeout/2 = 1 s).
curl -s -m 60 -o /dev/null -H 'Content-Type: application/json' \
    --data-binary "{\"model\": \"$M\", \"prompt\": \"Once\", \"max_tokens\": 4000, \"ignore_eos\": true}" \
    "$(url /v1/completions)" &
LONG=$!
slot_busy() { [ "$(metric "frugal_slots_busy{model=\"$M\"}")" = 1 ]; }
check "the long generation holds the one slot" poll 20 slot_busy
curl -s -N -m 60 -o "$TMP/queued.sse" -H 'Content-Type: application/json' \
    --data-binary "{\"model\": \"$M\", \"prompt\": \"Hi\", \"max_tokens\": 3, \"stream\": true}" \
    "$(url /v1/completions)"
wait "$LONG"
check "a queued stream sent keep-alive comments ($(grep -c '^: keep-alive' "$TMP/queued.sse"))" \
    grep -q '^: keep-alive$' "$TMP/queued.sse"
check "and then its events and [DONE]" grep -q '^data: \[DONE\]$' "$TMP/queued.sse"
sse_events "$TMP/queued.sse" >"$TMP/queued.json"
check "the comments are not events: every event is JSON ($(wc -l <"$TMP/queued.json") events)" \
    jqe 'length > 0' "$TMP/queued.json" -s
stop_server "$PID"

# Replies nobody reads: four clients ask for the embeddings of 2048 inputs
# each (a reply of ~11 MB) and never read; the idle timeout closes them
# (logged 499: the reply never went out whole) and the replies' memory is
# given back.
edir=$(models_dir emodels $M tiny-bert-q8_0)
start noread --models "$edir" --conn-timeout 2s --embed-cache 0 --keep-alive -1 --log-level info || finish
s=$(post /v1/embeddings '{"model": "tiny-bert-q8_0", "input": "warm up"}')
check "the embedding model answers (got $s)" [ "$s" = 200 ]
heap0=$(curl -s -m 10 "$(url /v1/memory)" | jq '.heap_bytes')
python3 - "$PORT" >"$TMP/noread.out" 2>&1 <<'PY' &
import socket, sys, time, json
port = int(sys.argv[1])
body = json.dumps({"model": "tiny-bert-q8_0", "input": ["text number %d" % i for i in range(2048)]}).encode()
socks = []
for _ in range(4):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.connect(('127.0.0.1', port))
    s.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    socks.append(s)
time.sleep(40)      # never reads; the test kills this process first
PY
NOREAD=$!
four_gone() { [ "$(grep -c 'POST /v1/embeddings model=.* status=499' "$SRV_LOG")" -ge 4 ]; }
check "four replies nobody reads are dropped by the idle timeout (logged 499) within 30 s" poll 30 four_gone
heap1=$(curl -s -m 10 "$(url /v1/memory)" | jq '.heap_bytes')
check "their memory is given back (heap $heap0 -> $heap1 bytes, within 1 MiB)" [ "$((heap1 - heap0))" -lt 1048576 ]
kill "$NOREAD" 2>/dev/null; wait "$NOREAD" 2>/dev/null
stop_server "$PID"

# ---- 3. cross-site requests and DNS rebinding ----
start cors --models "$dir" --data "$TMP/data" --cors-origin "http://app.example:3000" \
    --allowed-host frugal.lan || finish
s=$(http POST /v1/collections -H 'Origin: http://evil.example' -H 'Content-Type: text/plain' \
    --data-binary '{"name": "pwned"}')
check "a cross-site text/plain POST is 403 (got $s)" [ "$s" = 403 ]
check "... with the error shape naming the origin" \
    jqe '.error.code == "forbidden" and (.error.message | test("evil.example"))' "$TMP/body"
s=$(http POST /v1/models/$M/load -H 'Origin: http://evil.example' -H 'Content-Type: application/json' -d '{}')
check "a cross-site JSON POST to load a model is 403 (got $s)" [ "$s" = 403 ]
s=$(http GET /v1/collections)
check "nothing was created ($(head -c 200 "$TMP/body"))" jqe '[.data[]? | select(.name == "pwned")] | length == 0' "$TMP/body"
s=$(http GET /v1/models -H 'Origin: null')
check "Origin: null (a sandboxed page) is 403 (got $s)" [ "$s" = 403 ]
s=$(http POST /v1/chat/completions -H 'Origin: http://app.example:3000' -H 'Content-Type: application/json' \
    --data-binary "{\"model\": \"$M\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 2}")
check "an allowed origin may POST (got $s: $(head -c 200 "$TMP/body"))" [ "$s" = 200 ]
check "... and gets Access-Control-Allow-Origin" [ "$(header Access-Control-Allow-Origin)" = "http://app.example:3000" ]
s=$(http OPTIONS /v1/chat/completions -H 'Origin: http://app.example:3000' \
    -H 'Access-Control-Request-Method: POST' -H 'Access-Control-Request-Headers: content-type')
check "a preflight from an allowed origin is 204 (got $s)" [ "$s" = 204 ]
check "... listing POST ($(header Access-Control-Allow-Methods))" grep -qi '^access-control-allow-methods:.*POST' "$TMP/head"
check "... and Content-Type" grep -qi '^access-control-allow-headers:.*content-type' "$TMP/head"
s=$(http OPTIONS /v1/chat/completions -H 'Origin: http://evil.example' -H 'Access-Control-Request-Method: POST')
check "a preflight from another origin is 403 (got $s)" [ "$s" = 403 ]
s=$(http GET /v1/models -H "Origin: http://127.0.0.1:$PORT")
check "the server's own origin passes (got $s)" [ "$s" = 200 ]
s=$(http GET /v1/models -H 'Host: evil.example')
check "Host evil.example is 403 while bound to loopback (got $s)" [ "$s" = 403 ]
check "... naming the host" jqe '.error.message | test("evil.example")' "$TMP/body"
s=$(http GET /health -H "Host: rebind.example:$PORT")
check "even /health refuses a foreign Host (got $s)" [ "$s" = 403 ]
for h in "localhost:$PORT" "127.0.0.1:$PORT" "[::1]:$PORT" "frugal.lan:$PORT" "FRUGAL.LAN"; do
    s=$(http GET /v1/models -H "Host: $h")
    check "Host $h is answered (got $s)" [ "$s" = 200 ]
done
s=$(curl -s -m 30 -o "$TMP/body" -w '%{http_code}' "$(url /v1/chat/completions)" \
    -d "{\"model\": \"$M\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}], \"max_tokens\": 2}")
check "curl -d without a content type still works (got $s)" [ "$s" = 200 ]
stop_server "$PID"

# ---- 9, 10. strict parsing, duplicate keys, 401 first, 499, the key warning ----
KEY=sk-hard-key
start strict --models "$dir" --api-key "$KEY" --ctx 8192 --log-level info || finish
check "--api-key warns that the command line shows it" grep -q 'api-key.*command line.*--api-key-file' "$SRV_LOG"
# raw_is WHAT STATUS REQUEST : the raw request's status line has STATUS.
raw_is() {
    local st
    st=$(raw "$3")
    check "$1 is $2 (got '$st')" [ "${st:0:12}" = "HTTP/1.1 $2" ]
}
raw_is "a blank before a header colon" 400 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A : b\r\nConnection: close\r\n\r\n'
raw_is "a bare CR in a header value" 400 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\rb\r\nConnection: close\r\n\r\n'
raw_is "HTTP/1.1 without Host" 400 'GET /health HTTP/1.1\r\nConnection: close\r\n\r\n'
raw_is "a garbage request line (not silence)" 400 'GARBAGE\r\n\r\n'
raw_is "a URL with a blank" 400 'GET /a b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'
raw_is "a method that is not a token" 400 'G\x01T /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'
raw_is "a well-formed request" 200 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'
AUTH=(-H "Authorization: Bearer $KEY")
s=$(http POST /v1/completions "${AUTH[@]}" -H 'Content-Type: application/json' \
    --data-binary "{\"model\": \"$M\", \"model\": \"other\", \"prompt\": \"Hi\", \"max_tokens\": 2}")
check "duplicate JSON keys are 400 (got $s)" [ "$s" = 400 ]
check "... naming the duplicate ($(jb .error.message))" jqe '.error.message | test("duplicate")' "$TMP/body"
s=$(http GET /no/such/route)
check "without a key an unknown route is 401, not 404 (got $s)" [ "$s" = 401 ]
s=$(http DELETE /v1/models)
check "without a key a wrong method is 401, not 405 (got $s)" [ "$s" = 401 ]
s=$(http GET /no/such/route "${AUTH[@]}")
check "with the key an unknown route is 404 (got $s)" [ "$s" = 404 ]
s=$(http DELETE /v1/models "${AUTH[@]}")
check "with the key a wrong method is 405 (got $s)" [ "$s" = 405 ]
s=$(http GET /health)
check "/health needs no key (got $s)" [ "$s" = 200 ]
# a non-streamed completion whose client leaves after 0.5 s: logged as 499
curl -s -m 0.5 -o /dev/null "${AUTH[@]}" -H 'Content-Type: application/json' \
    --data-binary "{\"model\": \"$M\", \"prompt\": \"Once\", \"max_tokens\": 8000, \"ignore_eos\": true}" \
    "$(url /v1/completions)"
check "a non-streamed request whose client left is logged as 499" \
    poll 20 grep -q 'POST /v1/completions model=.* status=499' "$SRV_LOG"
check "and counted as 499 in /metrics" poll 5 sh -c "curl -s -H 'Authorization: Bearer $KEY' $(url /metrics) | grep -q 'status=\"499\"'"
stop_server "$PID"

# ---- draining as documented: new clients hear 503, the request in flight finishes ----
start drain --models "$dir" --ctx 4096 --parallel 1 --drain-timeout 60s || finish
curl -s -m 60 -o "$TMP/inflight.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "{\"model\": \"$M\", \"prompt\": \"Once\", \"max_tokens\": 3000, \"ignore_eos\": true}" \
    "$(url /v1/completions)" >"$TMP/inflight.status" &
INFLIGHT=$!
slot_busy() { [ "$(metric "frugal_slots_busy{model=\"$M\"}")" = 1 ]; }
check "the long request holds the slot" poll 20 slot_busy
kill -TERM "$PID"
check "the drain began" poll 10 grep -q "SIGTERM: draining" "$SRV_LOG"
s=$(http GET /health)
check "while draining, a new client's /health is 503 (got $s; not a refused connection)" [ "$s" = 503 ]
check "... {\"status\": \"shutting_down\"}" jqe '.status == "shutting_down"' "$TMP/body"
check "... with Retry-After ($(header Retry-After))" [ -n "$(header Retry-After)" ]
s=$(post /v1/chat/completions "{\"model\": \"$M\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}")
check "while draining, a new request is 503 (got $s)" [ "$s" = 503 ]
check "... shutting_down, with the error shape" err_shape 503 shutting_down
check "... with Retry-After ($(header Retry-After))" [ -n "$(header Retry-After)" ]
check "... and Connection: close ($(header Connection))" [ "$(header Connection)" = close ]
wait "$INFLIGHT"
check "the request in flight finished 200 ($(cat "$TMP/inflight.status"))" [ "$(cat "$TMP/inflight.status")" = 200 ]
check "... with its whole answer" jqe '.choices[0].finish_reason == "length" and .usage.completion_tokens == 3000' "$TMP/inflight.json"
for i in $(seq 1 200); do alive "$PID" || break; sleep 0.05; done
wait "$PID"; RC=$?
check "the server exits 0 after the drain (rc $RC)" [ "$RC" -eq 0 ]
PIDS=()
finish
