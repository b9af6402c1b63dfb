#!/usr/bin/env bash
# budget.sh — the memory budget, seen from outside.
#
# Three fixture models A, B, C.  A server with a large budget tells each
# one's estimated_bytes; a second server gets --memory-budget (bytes) that
# fits any two but not all three.  Then:
#   1. the sequence A B C A C B A B C (max_tokens 2): after every step the
#      request succeeded, /v1/memory has used <= budget and lists the models
#      an LRU simulation expects, /v1/models shows each one's state (the
#      least recently used idle model was the one evicted, as the log's
#      "evict" line says too), the lru eviction counter follows, and the
#      server's RSS above its idle RSS stays within the budget;
#   2. a model pinned in the INI file is never evicted when it is the LRU
#      one, and a runtime pin (POST /v1/models/x/load {"pin": true}) too:
#      with two pins the third model gets 503 + Retry-After until one is
#      unloaded;
#   3. models with requests in flight are never evicted: with long streams
#      running on the two resident models, the third gets 503 at once with
#      Retry-After (the manager does not wait), /v1/models/plan says it does
#      not fit and would evict nothing, an unload without force is 409, and
#      both streams finish as they would alone.
SUITE=budget
. "$(dirname "$0")/lib.sh"

A=tiny-llama-q8_0 B=tiny-llama-f16 C=tiny-qwen2-q8_0
dir=$(models_dir models $A $B $C)
CTX=1024
FLAGS=(--models "$dir" --ctx $CTX --parallel 1 --queue 4 --keep-alive -1)

# ---- the estimates, from a server with room for everything ----
start probe "${FLAGS[@]}" --memory-budget 4G || finish
check "GET /v1/models (probe) is 200" [ "$(http GET /v1/models)" = 200 ]
declare -A EST
for m in $A $B $C; do EST[$m]=$(jb ".data[] | select(.id == \"$m\") | .estimated_bytes"); done
for m in $A $B $C; do
    check "estimated_bytes of $m is a positive number (${EST[$m]})" [ "${EST[$m]:-0}" -gt 0 ]
done
stop_server
read -r E1 E2 E3 < <(printf '%s\n' "${EST[$A]}" "${EST[$B]}" "${EST[$C]}" | sort -n | tr '\n' ' ')
MARGIN=$((E1 / 2))
BUDGET=$((E2 + E3 + MARGIN))
echo "budget: estimates $A ${EST[$A]}, $B ${EST[$B]}, $C ${EST[$C]}; budget $BUDGET"
check "the budget fits the two largest" [ $((E2 + E3)) -le "$BUDGET" ]
check "the budget does not fit all three" [ $((E1 + E2 + E3)) -gt "$BUDGET" ]

# ---- helpers ----
RSS0=0 RSS_MAX=0
rss_check() {   # what
    local r; r=$(rss "$PID")
    [ -n "$r" ] || { bad "$1: no VmRSS for $PID"; return; }
    [ "$r" -gt "$RSS_MAX" ] && RSS_MAX=$r
    rss_within "$1 (RSS $r, idle $RSS0)" $((r - RSS0)) "$BUDGET"
}

# complete MODEL : a short completion; checks it succeeded.
complete() {
    local s; s=$(post /v1/completions "{\"model\": \"$1\", \"prompt\": \"Hello there\", \"max_tokens\": 2, \"temperature\": 0}")
    check "step $step: completion on $1 is 200 (got $s: $(head -c 300 "$TMP/body"))" [ "$s" = 200 ]
    check "step $step: completion on $1 has text and at most 2 tokens" \
        jqe '(.choices[0].text | type == "string") and .usage.completion_tokens >= 1 and .usage.completion_tokens <= 2' "$TMP/body"
}

# state_is MODEL STATE : from the last /v1/models body.
state_of() { jq -r --arg m "$1" '.data[] | select(.id == $m) | .state' "$TMP/models.json"; }

# expect_loaded "IDS..." : /v1/memory and /v1/models agree with the set.
expect_loaded() {
    local want; want=$(printf '%s\n' $1 | sort | tr '\n' ' ')
    check "step $step: GET /v1/memory is 200" [ "$(http GET /v1/memory)" = 200 ]
    local used budget got
    used=$(jb .used_bytes) budget=$(jb .budget_bytes)
    got=$(jb '.models[].id' | sort | tr '\n' ' ')
    check "step $step: budget_bytes is the flag's ($budget)" [ "$budget" = "$BUDGET" ]
    check "step $step: used_bytes $used <= budget_bytes $budget" [ "$used" -le "$budget" ]
    check "step $step: /v1/memory lists [$want] (got [$got])" [ "$got" = "$want" ]
    check "step $step: /v1/memory loaded count" [ "$(jb .loaded)" = "$(echo $1 | wc -w)" ]
    http GET /v1/models >/dev/null; cp "$TMP/body" "$TMP/models.json"
    local m st
    for m in $A $B $C; do
        st=$(state_of $m)
        case " $1 " in
            *" $m "*) check "step $step: $m is loaded (state $st)" [ "$st" = loaded ] ;;
            *) check "step $step: $m is unloaded (state $st)" [ "$st" = unloaded ] ;;
        esac
    done
}

# LRU simulation: LOADED is a list, least recently used first; PINNED ids
# are never chosen.  use MODEL sets EVICTED to what must go for it.
LOADED="" PINNED=""
use() {
    local m=$1 x sum
    EVICTED=""
    case " $LOADED " in
        *" $m "*) LOADED="$(for x in $LOADED; do [ "$x" = "$m" ] || printf '%s ' "$x"; done)$m"; return ;;
    esac
    while :; do
        sum=${EST[$m]}
        for x in $LOADED; do sum=$((sum + EST[$x])); done
        [ "$sum" -le "$BUDGET" ] && break
        local victim=""
        for x in $LOADED; do case " $PINNED " in *" $x "*) ;; *) victim=$x; break ;; esac; done
        [ -n "$victim" ] || break
        EVICTED="$EVICTED $victim"
        LOADED=$(for x in $LOADED; do [ "$x" = "$victim" ] || printf '%s ' "$x"; done)
    done
    LOADED="$LOADED $m"
    LOADED=$(echo $LOADED)
}

# ---- 1. the sequence ----
start budget "${FLAGS[@]}" --memory-budget "$BUDGET" || finish
RSS0=$(rss "$PID")
check "idle RSS measured ($RSS0)" [ "${RSS0:-0}" -gt 0 ]
step=0 n_evict=0
for m in $A $B $C $A $C $B $A $B $C; do
    step=$((step + 1))
    use $m
    complete $m
    expect_loaded "$LOADED"
    for v in $EVICTED; do
        n_evict=$((n_evict + 1))
        check "step $step: the log says '$v' (the LRU idle model) was evicted for '$m'" \
            grep -q "evict '$v' (lru) to make room for '$m'" "$SRV_LOG"
    done
    check "step $step: $n_evict lru evictions so far (log)" [ "$(grep -c "evict '.*' (lru) to make room" "$SRV_LOG")" -eq $n_evict ]
    http GET /v1/memory >/dev/null
    check "step $step: /v1/memory evictions.lru = $n_evict (got $(jb .evictions.lru))" [ "$(jb .evictions.lru)" = $n_evict ]
    rss_check "step $step"
done
check "the sequence evicted something (n_evict $n_evict)" [ $n_evict -ge 5 ]

# ---- 3. models with requests in flight are never evicted ----
# After the sequence B and C are resident (checked above) and A is not.
L=900
long_body() { echo "{\"model\": \"$1\", \"prompt\": \"Hello\", \"max_tokens\": $L, \"temperature\": 0, \"ignore_eos\": true, \"stream\": true, \"stream_options\": {\"include_usage\": true}}"; }
for m in $B $C; do   # each alone first, for the reference text
    curl -sN -m 120 -H 'Content-Type: application/json' --data-binary "$(long_body $m)" "$(url /v1/completions)" >"$TMP/alone.$m"
    check "the long request on $m alone finishes at length" [ "$(sse_finish "$TMP/alone.$m")" = length ]
done
declare -A CPID
for m in $B $C; do
    curl -sN -m 120 -H 'Content-Type: application/json' --data-binary "$(long_body $m)" "$(url /v1/completions)" >"$TMP/busy.$m" &
    CPID[$m]=$!
done
both_busy() {
    curl -s -m 5 "$(url /v1/models)" >"$TMP/busy.json" &&
        jqe '[.data[] | select((.id == $b or .id == $c) and .in_flight > 0)] | length == 2' "$TMP/busy.json" --arg b "$B" --arg c "$C" >/dev/null
}
check "both long streams are in flight" poll 30 both_busy
s=$(post /v1/models/plan "{\"model\": \"$A\"}")
check "plan for $A while both are busy is 200 ($s)" [ "$s" = 200 ]
check "plan for $A: fits false, nothing to evict ($(head -c 400 "$TMP/body"))" jqe '.fits == false and .evict == [] and .loaded == false' "$TMP/body"
check "plan for $A: the reason names the busy models" jqe '.reason | contains($b) and contains($c)' "$TMP/body" --arg b "$B" --arg c "$C"
t0=$(date +%s%N)
s=$(post /v1/completions "{\"model\": \"$A\", \"prompt\": \"Hello\", \"max_tokens\": 2}")
t1=$(date +%s%N)
check "a request for $A while both are busy is 503 (got $s)" [ "$s" = 503 ]
check "the 503 is insufficient_memory with the error shape ($(head -c 400 "$TMP/body"))" err_shape 503 insufficient_memory
check "the 503 message names $A" jqe '.error.message | contains($a)' "$TMP/body" --arg a "$A"
ra=$(header Retry-After)
check "the 503 has Retry-After, an integer >= 1 ('$ra')" retry_after_ok "$ra"
check "the 503 came at once, without waiting for a stream ($(( (t1 - t0) / 1000000 )) ms)" [ $(( (t1 - t0) / 1000000 )) -lt 2000 ]
s=$(post "/v1/models/$B/unload" '{}')
check "unload of busy $B without force is 409 (got $s)" [ "$s" = 409 ]
check "the 409 is model_in_use with the error shape" err_shape 409 model_in_use
check "the streams were still running through those checks" both_busy
rss_check "with two streams running"
http GET /v1/memory >/dev/null
check "used_bytes <= budget with two streams running" [ "$(jb .used_bytes)" -le "$BUDGET" ]
wait "${CPID[$B]}"; rcB=$?
wait "${CPID[$C]}"; rcC=$?
for m in $B $C; do
    f=$TMP/busy.$m
    check "stream on $m: finish length" [ "$(sse_finish "$f")" = length ]
    check "stream on $m: $L tokens" [ "$(sse_usage "$f" completion_tokens)" = $L ]
    check "stream on $m: ends with [DONE]" sse_done "$f"
    check "stream on $m: the same text as alone" cmp -s <(sse_text "$f") <(sse_text "$TMP/alone.$m")
done
check "the stream clients exited 0 ($rcB, $rcC)" [ $((rcB + rcC)) -eq 0 ]
# the two streams ended at about the same time: a short request to C
# makes the order certain (B least recently used), then A evicts B
step=busy-order
use $C
complete $C
step=busy-after
use $A
complete $A
expect_loaded "$LOADED"
rss_check "after the busy streams"
echo "budget: RSS peak $RSS_MAX, $((RSS_MAX - RSS0)) above idle, budget $BUDGET"
stop_server

# ---- 2. pins ----
cat >"$TMP/pin.ini" <<EOF
[model "$A"]
path = $dir/$A.gguf
pin = true
EOF
start pin "${FLAGS[@]}" --memory-budget "$BUDGET" --config "$TMP/pin.ini" || finish
RSS0=$(rss "$PID")
LOADED="" PINNED=$A
step=pin0
http GET /v1/models >/dev/null
check "the INI pin shows in /v1/models" jqe '.data[] | select(.id == $a) | .pinned == true' "$TMP/body" --arg a "$A"
n=0
for m in $A $B $C $B $C $B; do
    n=$((n + 1)); step=pin$n
    use $m
    complete $m
    expect_loaded "$LOADED"
    check "step $step: the pinned $A is loaded" [ "$(state_of $A)" = loaded ]
    check "step $step: /v1/models says $A is pinned" jqe '.data[] | select(.id == $a) | .pinned == true' "$TMP/models.json" --arg a "$A"
    rss_check "step $step"
done
check "the pinned model was never evicted (log)" nogrep "evict '$A'" "$SRV_LOG"
check "the others were evicted instead (log)" grep -q "evict '$B' (lru) to make room for '$C'" "$SRV_LOG"
# a runtime pin on the other resident model: now nothing can make room
other=$(echo $LOADED | tr ' ' '\n' | grep -vx $A)
third=$(printf '%s\n' $A $B $C | grep -vx $A | grep -vx "$other")
s=$(post "/v1/models/$other/load" '{"pin": true}')
check "POST /v1/models/$other/load {pin: true} is 200 ($s)" [ "$s" = 200 ]
check "the load reply shows the pin" jqe '.pinned == true and .state == "loaded"' "$TMP/body"
s=$(post /v1/completions "{\"model\": \"$third\", \"prompt\": \"Hello\", \"max_tokens\": 2}")
check "with $A and $other pinned, $third is 503 (got $s)" [ "$s" = 503 ]
check "that 503 is insufficient_memory" err_shape 503 insufficient_memory
ra=$(header Retry-After)
check "that 503 has Retry-After >= 1 ('$ra')" retry_after_ok "$ra"
step=pin-after
expect_loaded "$LOADED"
s=$(post "/v1/models/$other/unload" '{}')
check "unload of the runtime-pinned $other is 200 ($s)" [ "$s" = 200 ]
check "the unload reply says unloaded, not pinned" jqe '.state == "unloaded" and .pinned == false' "$TMP/body"
LOADED=$A PINNED=$A
step=pin-last
use $third
complete $third
expect_loaded "$LOADED"
rss_check "after the pins"
finish
