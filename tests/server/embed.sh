#!/usr/bin/env bash
# embed.sh — embeddings and reranking over HTTP.
#
#   1. embed.test.mjs (what it checks is listed there) on tiny-bert-f16,
#      tiny-bert-q8_0 and tiny-bert-rerank-q8_0 with --embed-cache 0:
#      the openai client against llama.cpp's vectors (float, base64),
#      /v1/rerank and /rerank against its scores, 64 concurrent requests
#      merged into fewer forward passes; then no cache hit was counted.
#   2. bad input, each with its status, API.md's error shape and param,
#      and the server still serving: empty input, non-string items, an
#      empty string, a token id out of range, an empty document list, top_n
#      0 and -1, no query, an input over the context (413
#      context_length_exceeded; 200 with "truncate": true, usage at most
#      the context), a chat completion to an embedder, embeddings from the
#      reranker, rerank from the embedder, an unknown model, a wrong
#      encoding_format, dimensions other than the model's.
#   3. the vector cache (--embed-cache 128K): the same text twice is one
#      hit and the same vector; a truncated vector is not served to a
#      request without truncate (still 413); filling it past the cap grows
#      GET /v1/memory heap_bytes by at most the cap.
#   4. --max-loaded 1: requests alternating between tiny-bert-q8_0 and
#      tiny-llama-q8_0 all succeed, one model is loaded after each, and
#      evictions{reason="lru"} counts each switch.
SUITE=embed
. "$(dirname "$0")/lib.sh"

E=tiny-bert-q8_0 R=tiny-bert-rerank-q8_0 L=tiny-llama-q8_0
dir=$(models_dir models tiny-bert-f16 $E $R $L)
# the context of the bert fixtures, from the file
CTX=$("$BIN" inspect "$MODELS/$E.gguf" | awk '$1 == "bert.context_length" {print $3}')
check "bert.context_length read from frugal inspect ($CTX)" [ "${CTX:-0}" -gt 0 ]

# ---- 1. the client tests, nothing from the cache ----
# The client opens 64 connections at once for its burst besides the ones
# it keeps alive from earlier requests: more than the default per-address
# limit of 64 (hardening.sh tests that limit).
start embed --models "$dir" --embed-cache 0 --keep-alive -1 --max-conns-per-ip 128 || finish
PORT=$PORT REFS=$TD/refs run_node embed.test.mjs
hits=$(metric frugal_embed_cache_hits_total)
check "--embed-cache 0: no cache hit counted (${hits:-none})" [ "${hits:-0}" = 0 ]

# ---- 2. bad input ----
serving() {
    local s
    s=$(curl -s -m 30 -o "$TMP/ok.json" -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary "{\"model\": \"$E\", \"input\": \"still serving\"}" "$(url /v1/embeddings)")
    [ "$s" = 200 ] && jqe '.data[0].embedding | length == 256' "$TMP/ok.json"
}
# bad_req WHAT STATUS CODE PARAM ROUTE BODY (as badinput.sh)
bad_req() {
    local what=$1 want=$2 code=$3 param=$4 route=$5 body=$6 s
    s=$(post "$route" "$body")
    check "$what: status $want (got $s: $(head -c 300 "$TMP/body"))" [ "$s" = "$want" ]
    check "$what: the error shape with code $code" err_shape "$want" "$code"
    check "$what: param is $param (got $(jb .error.param))" [ "$(jb .error.param)" = "$param" ]
    check "the server still serves after: $what" serving
}
check "a good request works" serving
EMB=/v1/embeddings RR=/v1/rerank
bad_req "empty input array" 400 invalid_value input $EMB "{\"model\": \"$E\", \"input\": []}"
bad_req "input [1.5]" 400 invalid_value input $EMB "{\"model\": \"$E\", \"input\": [1.5]}"
bad_req "input [{\"a\":1}]" 400 invalid_value input $EMB "{\"model\": \"$E\", \"input\": [{\"a\": 1}]}"
bad_req "input a number" 400 invalid_value input $EMB "{\"model\": \"$E\", \"input\": 7}"
bad_req "input missing" 400 missing_field input $EMB "{\"model\": \"$E\"}"
bad_req "empty string" 400 invalid_value input $EMB "{\"model\": \"$E\", \"input\": \"\"}"
bad_req "an empty string in the array" 400 invalid_value input $EMB "{\"model\": \"$E\", \"input\": [\"a\", \"\"]}"
bad_req "an empty token array" 400 invalid_value input $EMB "{\"model\": \"$E\", \"input\": [[]]}"
bad_req "a token id out of range" 400 invalid_value input $EMB "{\"model\": \"$E\", \"input\": [[101, 99999, 102]]}"
bad_req "empty document list" 400 invalid_value documents $RR "{\"model\": \"$R\", \"query\": \"q\", \"documents\": []}"
bad_req "a document not a string" 400 invalid_value documents $RR "{\"model\": \"$R\", \"query\": \"q\", \"documents\": [1]}"
bad_req "top_n 0" 400 invalid_value top_n $RR "{\"model\": \"$R\", \"query\": \"q\", \"documents\": [\"d\"], \"top_n\": 0}"
bad_req "top_n -1" 400 invalid_value top_n $RR "{\"model\": \"$R\", \"query\": \"q\", \"documents\": [\"d\"], \"top_n\": -1}"
bad_req "missing query" 400 missing_field query $RR "{\"model\": \"$R\", \"documents\": [\"d\"]}"
bad_req "a chat completion to an embedder" 400 invalid_value model /v1/chat/completions \
    "{\"model\": \"$E\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}"
bad_req "a completion to a reranker" 400 invalid_value model /v1/completions "{\"model\": \"$R\", \"prompt\": \"hi\"}"
bad_req "embeddings from the reranker" 400 invalid_value model $EMB "{\"model\": \"$R\", \"input\": \"x\"}"
bad_req "rerank from the embedder" 400 invalid_value model $RR "{\"model\": \"$E\", \"query\": \"q\", \"documents\": [\"d\"]}"
bad_req "embeddings from a decoder" 400 invalid_value model $EMB "{\"model\": \"$L\", \"input\": \"x\"}"
bad_req "unknown model (embeddings)" 404 model_not_found model $EMB '{"model": "no-such-model", "input": "x"}'
bad_req "unknown model (rerank)" 404 model_not_found model /rerank '{"model": "no-such-model", "query": "q", "documents": ["d"]}'
bad_req "encoding_format int8" 400 invalid_value encoding_format $EMB "{\"model\": \"$E\", \"input\": \"x\", \"encoding_format\": \"int8\"}"
bad_req "dimensions 128" 400 invalid_value dimensions $EMB "{\"model\": \"$E\", \"input\": \"x\", \"dimensions\": 128}"
check "dimensions 256 (the model's) is 200" [ "$(post $EMB "{\"model\": \"$E\", \"input\": \"x\", \"dimensions\": 256}")" = 200 ]
# over the context: about three tokens a word, so well past CTX
LONG=$(python3 -c "import sys; print(' '.join('word%d' % (i % 97) for i in range(int(sys.argv[1]))))" "$CTX")
bad_req "an input over the context" 413 context_length_exceeded input $EMB "{\"model\": \"$E\", \"input\": \"$LONG\"}"
check "the 413 names the context ($(jb .error.message))" jqe '.error.message | contains("at most " + $c)' "$TMP/body" --arg c "$CTX"
s=$(post $EMB "{\"model\": \"$E\", \"input\": [\"$LONG\", \"Hello world\"], \"truncate\": true}")
check "the same with truncate: true is 200 (got $s)" [ "$s" = 200 ]
check "truncate: usage $(jb .usage.prompt_tokens) <= $CTX + 4 (the context and Hello world)" \
    jqe '.usage.prompt_tokens <= $c + 4 and .usage.prompt_tokens > $c / 2 and (.data | length) == 2' "$TMP/body" --argjson c "$CTX"
bad_req "token ids over the context" 413 context_length_exceeded input $EMB \
    "{\"model\": \"$E\", \"input\": [$(python3 -c "import sys; print(','.join(['1000'] * (int(sys.argv[1]) + 1)))" "$CTX")]}"
bad_req "a document over the context" 413 context_length_exceeded documents $RR \
    "{\"model\": \"$R\", \"query\": \"q\", \"documents\": [\"short\", \"$LONG\"]}"
s=$(post $RR "{\"model\": \"$R\", \"query\": \"q\", \"documents\": [\"short\", \"$LONG\"], \"truncate\": true}")
check "the same rerank with truncate: true is 200 (got $s)" [ "$s" = 200 ]
check "rerank truncate: usage $(jb .usage.prompt_tokens) <= 2 × $CTX, two results" \
    jqe '.usage.prompt_tokens <= 2 * $c and (.results | length) == 2' "$TMP/body" --argjson c "$CTX"
check "/health after the bad input" [ "$(http GET /health)" = 200 ]
stop_server

# ---- 3. the vector cache ----
CAP=$((128 * 1024))
start cache --models "$dir" --embed-cache $CAP --keep-alive -1 || finish
embed_one() { post $EMB "{\"model\": \"$E\", \"input\": \"$1\"}" >/dev/null; cp "$TMP/body" "$2"; }
embed_one "warm up" "$TMP/warm.json"
h0=$(metric frugal_embed_cache_hits_total) m0=$(metric frugal_embed_cache_misses_total)
embed_one "The cache keeps this vector." "$TMP/c1.json"
embed_one "The cache keeps this vector." "$TMP/c2.json"
h1=$(metric frugal_embed_cache_hits_total) m1=$(metric frugal_embed_cache_misses_total)
check "the same text twice: one hit ($h0 -> $h1)" [ "$h1" = $((h0 + 1)) ]
check "the same text twice: one miss ($m0 -> $m1)" [ "$m1" = $((m0 + 1)) ]
check "the hit is the same vector" [ "$(jq -c .data "$TMP/c1.json")" = "$(jq -c .data "$TMP/c2.json")" ]
check "the hit counts the same usage" [ "$(jq .usage.prompt_tokens "$TMP/c1.json")" = "$(jq .usage.prompt_tokens "$TMP/c2.json")" ]
s=$(post $EMB "{\"model\": \"$E\", \"input\": \"$LONG\", \"truncate\": true}")
check "cache: the long text with truncate is 200 (got $s)" [ "$s" = 200 ]
s=$(post $EMB "{\"model\": \"$E\", \"input\": \"$LONG\"}")
check "cache: then without truncate it is still 413, not a cached cut vector (got $s)" [ "$s" = 413 ]
s=$(post $EMB "{\"model\": \"$E\", \"input\": \"Hello world\", \"truncate\": true}")
s2=$(post $EMB "{\"model\": \"$E\", \"input\": \"Hello world\"}")
check "cache: a short text with truncate is cached for one without ($s $s2)" [ "$s$s2" = 200200 ]
# twice: the first call's own request counters are new series
http GET /v1/memory >/dev/null
check "GET /v1/memory is 200" [ "$(http GET /v1/memory)" = 200 ]
heap0=$(jb .heap_bytes)
# 3 × 150 distinct vectors of 1 KiB: well past the cap
for b in 1 2 3; do
    python3 -c "import json, sys; print(json.dumps({'model': sys.argv[1], 'input': ['fill %s-%d' % (sys.argv[2], i) for i in range(150)]}))" \
        $E $b >"$TMP/fill.json"
    s=$(http POST $EMB -H 'Content-Type: application/json' --data-binary @"$TMP/fill.json")
    check "fill request $b is 200 (got $s)" [ "$s" = 200 ]
done
http GET /v1/memory >/dev/null
heap1=$(jb .heap_bytes)
cbytes=$(metric frugal_embed_cache_bytes)
check "frugal_embed_cache_bytes $cbytes <= the cap $CAP" [ "${cbytes:-0}" -gt 0 ] && [ "${cbytes:-0}" -le $CAP ]
echo "cache: heap_bytes $heap0 -> $heap1 (+$((heap1 - heap0))), cache $cbytes bytes, cap $CAP"
check "heap_bytes grew by at most the cap ($((heap1 - heap0)) <= $CAP)" [ $((heap1 - heap0)) -le $CAP ]
stop_server

# ---- 4. embedding models are evicted and reloaded like any other ----
start evict --models "$dir" --max-loaded 1 --keep-alive -1 --ctx 256 || finish
step=0
for m in $E $L $E $L; do
    step=$((step + 1))
    if [ $m = $E ]; then s=$(post $EMB "{\"model\": \"$E\", \"input\": \"step $step\"}")
    else s=$(post /v1/completions "{\"model\": \"$L\", \"prompt\": \"Hello\", \"max_tokens\": 2}"); fi
    check "step $step: $m is 200 (got $s: $(head -c 200 "$TMP/body"))" [ "$s" = 200 ]
    http GET /v1/models >/dev/null
    check "step $step: only $m is loaded ($(jb '[.data[] | select(.state == "loaded") | .id] | join(",")'))" \
        [ "$(jb '[.data[] | select(.state == "loaded") | .id] | join(",")')" = $m ]
    ev=$(metric 'frugal_evictions_total{reason="lru"}')
    check "step $step: evictions{reason=\"lru\"} is $((step - 1)) (got $ev)" [ "$ev" = $((step - 1)) ]
done
stop_server
finish
