#!/usr/bin/env bash
# load.sh — 32 concurrent streaming clients against --parallel 4
# --queue 8 (load.mjs, which lists what is checked), then the server is
# still healthy: on tiny-llama-f16, where batched answers must equal the
# answers alone exactly, and on tiny-llama-q8_0, where they must agree up
# to the first near-tie (testdata/README: margin 0.5 for q8_0).
SUITE=load
. "$(dirname "$0")/lib.sh"

BUDGET=$((64 * 1024 * 1024))
for spec in tiny-llama-f16:0 tiny-llama-q8_0:0.5; do
    M=${spec%%:*}
    dir=$(models_dir "models-$M" $M)
    start "load-$M" --models "$dir" --parallel 4 --queue 8 --ctx 1024 --memory-budget $BUDGET \
        --keep-alive -1 || finish
    IDLE_RSS=$(rss "$PID")
    check "GET /v1/models is 200" [ "$(http GET /v1/models)" = 200 ]
    est=$(jb ".data[] | select(.id == \"$M\") | .estimated_bytes")
    check "the model's estimate ($est) fits the budget $BUDGET" [ "${est:-0}" -gt 0 ] && [ "${est:-0}" -le $BUDGET ]
    PORT=$PORT SERVER_PID=$PID BUDGET=$BUDGET IDLE_RSS=$IDLE_RSS MODEL=$M NEAR_TIE=${spec#*:} run_node load.mjs
    check "/health after the load suite" [ "$(http GET /health)" = 200 ]
    check "the server logged the 503s" grep -q "POST /v1/completions model=$M status=503" "$SRV_LOG"
    stop_server
done
finish
