#!/usr/bin/env bash
# hold.sh — what a request holds and what a reply shows (issue 11).
#
#   1. a stream whose client never reads (SO_RCVBUF 2 KB, the request
#      sent, nothing read) on a language model, until the server's socket
#      is full (its Send-Q stops growing): a forced unload of the model
#      answers 200 and the model is unloaded (the generation gave its
#      handle back when it ended, not when the client read it); a chat
#      request to the model then gets 200; the client, reading at last,
#      still gets the whole stream (a finish reason, then [DONE]).
#   2. the same with "logprobs": true, which keeps its handle until the
#      stream is over (its token texts need the model): the forced unload
#      gives up after its bounded wait with 409 model_in_use saying the
#      model stays loaded; a chat request right after gets 200, not 503
#      "being unloaded"; once the client has read its stream the model is
#      unloaded (evictions{reason="request"}).
#   3. embeddings: a 2048-input reply in floats holds, number for number,
#      the float32 values of the same request in base64, each written as
#      jansson writes a real ("%.17g", ".0" for integers, short exponent);
#      with --memory-budget at the model's estimate + 8 MiB, one input is
#      served and the 2048-input request is 503 insufficient_memory naming
#      the reply's size, with no forward pass run for it.
#   4. a models folder in $TMP with a broken and a truncated .gguf:
#      GET /v1/models, GET /v1/models/{id} and a chat request to each name
#      the file (broken.gguf) and never the folder's absolute path.
SUITE=hold
. "$(dirname "$0")/lib.sh"

command -v ss >/dev/null || { bad "ss (iproute2) is needed to see a stalled stream"; finish; }

L=tiny-llama-q8_0 E=tiny-bert-q8_0
# a long model id makes every chunk longer, so the socket fills sooner
LONG=stalled-stream-model-with-a-long-name-so-that-each-chunk-of-its-stream-is-long-$(printf 'x%.0s' $(seq 1 40))
dir=$TMP/lm
mkdir -p "$dir"
ln -s "$MODELS/$L.gguf" "$dir/$LONG.gguf"

# stall_client LOGPROBS NAME : a client that sends a streamed chat request
# for 16000 tokens and reads nothing until $TMP/NAME.go exists; then it
# reads to the end and writes what it got to $TMP/NAME.got.
cat >"$TMP/stall.py" <<'EOF'
import json, os, socket, sys, time
port, model, logprobs, name = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1", sys.argv[4]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
s.connect(("127.0.0.1", port))
req = {"model": model, "stream": True, "max_tokens": 16000, "ignore_eos": True,
       "messages": [{"role": "user", "content": "hello"}]}
if logprobs:
    req.update(logprobs=True, top_logprobs=5)
body = json.dumps(req).encode()
s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
          b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
end = time.time() + 120
while not os.path.exists(name + ".go") and time.time() < end:
    time.sleep(0.05)
s.settimeout(60)
data = b""
while True:
    try:
        b = s.recv(1 << 16)
    except OSError:
        break
    if not b:
        break
    data += b
    if b"data: [DONE]" in data[-64:]:
        break
open(name + ".got", "wb").write(data)
EOF

# sendq : bytes queued on the server's sockets (Send-Q), summed.
sendq() { ss -tnH state established "( sport = :$PORT )" | awk '{s += $2} END {print s + 0}'; }
# stalled : the Send-Q is over 256 KB and did not move for a second.
stalled() {
    local a b
    a=$(sendq); sleep 1; b=$(sendq)
    [ "$a" -ge 262144 ] && [ "$a" = "$b" ]
}
chat_ok() {
    local s
    s=$(post /v1/chat/completions "{\"model\": \"$LONG\", \"max_tokens\": 4, \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}")
    [ "$s" = 200 ] || echo "chat request: $s $(head -c 300 "$TMP/body")"
    [ "$s" = 200 ]
}
state_is() { [ "$(curl -s -m 10 "$(url "/v1/models/$LONG")" | jq -r .state)" = "$1" ]; }
# stream_whole FILE : an HTTP 200 event stream with a finish reason, ended by [DONE]
stream_whole() {
    head -1 "$1" | grep -q ' 200 ' && grep -q '"finish_reason":"\(length\|cancelled\)"' "$1" &&
        grep -q '^data: \[DONE\]' "$1"
}

start lm --models "$dir" --ctx 16384 --parallel 2 --keep-alive -1 || finish

# ---- 1. a stalled stream does not hold its model from a forced unload ----
python3 "$TMP/stall.py" "$PORT" "$LONG" 0 "$TMP/s1" &
C1=$!
check "the stream stalls (Send-Q $(sendq) bytes)" poll 90 stalled
s=$(HTTP_MAX_TIME=20 post "/v1/models/$LONG/unload" '{"force": true}')
check "forced unload under a stalled stream: 200 (got $s: $(head -c 300 "$TMP/body"))" [ "$s" = 200 ]
check "the model is unloaded (state $(jb .state))" [ "$(jb .state)" = unloaded ]
check "a chat request to the model after the unload: 200" chat_ok
touch "$TMP/s1.go"
wait "$C1"
check "the stalled client still gets its whole stream after the unload" stream_whole "$TMP/s1.got"

# ---- 2. a holder that does not let go: the forced unload's wait is bounded ----
python3 "$TMP/stall.py" "$PORT" "$LONG" 1 "$TMP/s2" &
C2=$!
check "the logprobs stream stalls (Send-Q $(sendq) bytes)" poll 90 stalled
s=$(HTTP_MAX_TIME=20 post "/v1/models/$LONG/unload" '{"force": true}')
check "forced unload under a stalled logprobs stream: 409 after its bounded wait (got $s: $(head -c 300 "$TMP/body"))" \
    [ "$s" = 409 ]
check "409: the error shape with code model_in_use" err_shape 409 model_in_use
check "409: the message says the model stays loaded ($(jb .error.message))" \
    grep -q 'stays loaded' "$TMP/body"
check "a chat request right after: 200, not 503 'being unloaded'" chat_ok
check "the model is still loaded" state_is loaded
touch "$TMP/s2.go"
wait "$C2"
check "the logprobs client gets its whole stream" stream_whole "$TMP/s2.got"
check "the model is unloaded once that stream is over" poll 20 state_is unloaded
ev=$(metric 'frugal_evictions_total{reason="request"}')
check "evictions{reason=\"request\"} counts both unloads (${ev:-none})" [ "${ev:-0}" = 2 ]
stop_server

# ---- 3. embeddings replies ----
edir=$(models_dir emb $E)
# emb_req N FORMAT OUT : POST N inputs, the status printed, the body to OUT
emb_req() {
    python3 - "$PORT" "$E" "$1" "$2" "$3" <<'EOF'
import json, random, sys, urllib.error, urllib.request
port, model, n, fmt, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
rnd = random.Random(7)
words = "alpha beta gamma delta rocket engine memory budget reply float vector cat dog tree".split()
inp = [" ".join(rnd.choice(words) for _ in range(12)) + " %d" % i for i in range(n)]
req = urllib.request.Request("http://127.0.0.1:%d/v1/embeddings" % port,
                             data=json.dumps({"model": model, "input": inp, "encoding_format": fmt}).encode(),
                             headers={"Content-Type": "application/json"})
try:
    r = urllib.request.urlopen(req, timeout=600)
    code, body = r.status, r.read()
except urllib.error.HTTPError as e:
    code, body = e.code, e.read()
open(out, "wb").write(body)
print(code)
EOF
}
start emb --models "$edir" --embed-cache 0 --max-body 4M --keep-alive -1 || finish
s=$(emb_req 2048 float "$TMP/f.json")
check "2048 inputs in floats: 200 (got $s)" [ "$s" = 200 ]
s=$(emb_req 2048 base64 "$TMP/b.json")
check "2048 inputs in base64: 200 (got $s)" [ "$s" = 200 ]
echo "note [hold]: 2048-input embeddings: float reply $(wc -c <"$TMP/f.json") bytes; peak RSS (VmHWM) $(awk '/^VmHWM:/ {print $2, $3}' "/proc/$PID/status")"
same_numbers() {
    python3 - "$TMP/f.json" "$TMP/b.json" <<'EOF'
import base64, json, re, struct, sys
raw = open(sys.argv[1]).read()
f, b = json.loads(raw), json.loads(open(sys.argv[2]).read())
def jansson(x):                       # how jansson's json_dumps writes a real
    s = "%.17g" % x
    if "." not in s and "e" not in s:
        s += ".0"
    m = re.match(r"^(.*e)([+-]?)0*(\d+)$", s)
    if m:
        s = m.group(1) + ("-" if m.group(2) == "-" else "") + m.group(3)
    return s
texts = [t.split(",") for t in re.findall(r'"embedding":\[([^\]]*)\]', raw)]
assert len(f["data"]) == len(b["data"]) == len(texts) == 2048, "2048 vectors each"
for i, (a, c) in enumerate(zip(f["data"], b["data"])):
    assert a["index"] == c["index"] == i
    bits = base64.b64decode(c["embedding"])
    want = struct.unpack("<%df" % (len(bits) // 4), bits)
    assert a["embedding"] == list(want), "vector %d differs from its base64" % i
    assert texts[i] == [jansson(x) for x in want], "vector %d is not written as jansson writes reals" % i
assert f["usage"] == b["usage"] and f["model"] == b["model"] and f["object"] == "list"
EOF
}
check "the float reply holds the base64 reply's float32 values, written as jansson writes reals" same_numbers
est=$(curl -s -m 10 "$(url "/v1/models/$E")" | jq -r .estimated_bytes)
stop_server

budget=$((est + 8 * 1024 * 1024))
start emb_budget --models "$edir" --embed-cache 0 --max-body 4M --keep-alive -1 --memory-budget "$budget" || finish
s=$(emb_req 1 float "$TMP/one.json")
check "--memory-budget $budget: one input is served (got $s: $(head -c 200 "$TMP/one.json"))" [ "$s" = 200 ]
fwd=$(metric "frugal_forward_passes_total{model=\"$E\"}")
shed=$(metric 'frugal_sheds_total{reason="budget"}')
s=$(emb_req 2048 float "$TMP/big.json")
cp "$TMP/big.json" "$TMP/body"
check "2048 inputs under that budget: 503 (got $s: $(head -c 300 "$TMP/big.json"))" [ "$s" = 503 ]
check "503: the error shape with code insufficient_memory" err_shape 503 insufficient_memory
check "503: the message names the reply and its size ($(jb .error.message))" \
    jqe '.error.message | test("reply to 2048 inputs of [0-9]+ dimensions.*at most [0-9.]+ MiB")' "$TMP/body"
fwd2=$(metric "frugal_forward_passes_total{model=\"$E\"}")
check "no forward pass ran for the refused request ($fwd, then $fwd2)" [ "$fwd" = "$fwd2" ]
shed2=$(metric 'frugal_sheds_total{reason="budget"}')
check "sheds{reason=\"budget\"} counts it ($shed, then $shed2)" [ "$((shed + 1))" = "$shed2" ]
s=$(emb_req 1 float "$TMP/one.json")
check "one input is still served after (got $s)" [ "$s" = 200 ]
stop_server

# ---- 4. no absolute path of a model file in a reply ----
bdir=$TMP/broken-models
mkdir -p "$bdir"
head -c 100 "$MODELS/$L.gguf" >"$bdir/broken.gguf"
head -c 5000000 "$MODELS/$L.gguf" >"$bdir/half.gguf"
start paths --models "$bdir" || finish
no_path() { ! grep -qF "$TMP" "$TMP/body"; }
s=$(http GET /v1/models)
check "GET /v1/models: 200 (got $s)" [ "$s" = 200 ]
check "GET /v1/models: no absolute path ($(head -c 400 "$TMP/body"))" no_path
cp "$TMP/body" "$TMP/list.json"
for m in broken half; do
    check "GET /v1/models: $m's error names $m.gguf" \
        jqe '.data[] | select(.id == $m) | .error | contains($m + ".gguf")' "$TMP/list.json" --arg m "$m"
    s=$(http GET "/v1/models/$m")
    check "GET /v1/models/$m: no absolute path ($s: $(jb .error))" no_path
    s=$(post /v1/chat/completions "{\"model\": \"$m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}")
    check "a chat request to $m fails (got $s)" [ "$s" -ge 400 ]
    check "that error names $m.gguf ($(jb .error.message))" grep -qF "$m.gguf" "$TMP/body"
    check "that error has no absolute path" no_path
done

finish
