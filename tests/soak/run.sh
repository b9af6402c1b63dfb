#!/usr/bin/env bash
# The soak benchmark (`make soak`, SOAK_MINUTES, default 30; test-all.sh
# runs a 2-minute one): `frugal serve` under mixed clients for a long
# time, then a report and counted checks (docs/SOAK.md).
#
#   1. A models folder of symlinks: three chat models (tiny-llama q8_0 and
#      f16, tiny-qwen2 q8_0) and an embedding model (tiny-bert q8_0).  A
#      probe server tells each one's estimated_bytes (POST
#      /v1/models/plan); the budget is the embedding model's estimate plus
#      the two largest chat models' plus half the smallest's: with the
#      embedding model pinned (INI), it fits exactly two of the three chat
#      models, so the chat clients keep loading and evicting them.
#   2. The server: loopback, --port 0, a temp --data dir, FRUGAL_SYSROOT
#      pointing at a fake /proc/self/cgroup and cgroup v2 directory whose
#      memory.current the driver rewrites to swing the memory level
#      (tests/server/pressure.sh explains the hook), --conn-timeout 5s.
#   3. soak.mjs (node's built-ins only) runs the clients for SOAK_MINUTES
#      and prints the report and its "soak-driver: N passed, N failed".
#   4. SIGTERM: the server must exit 0 (it drains; under the sanitizer
#      build LeakSanitizer runs then), its log must hold no sanitizer
#      report, and `frugal index check --data DIR` must find the index
#      consistent.
# Ends with "soak: N passed, N failed" (every check of the driver and of
# this script); exits non-zero on any failure.
#
# FRUGAL_BIN (default build/frugal), FRUGAL_TESTDATA, FRUGAL_SAN=1 for the
# ASan+UBSan build (RSS is then reported, not checked; deadlines longer),
# SOAK_KEEP=DIR keeps the server's log and the data dir there.
SUITE=soak
. "$(dirname "$0")/../server/lib.sh"
SOAK_HERE=$(cd "$(dirname "$0")" && pwd)
MINUTES=${SOAK_MINUTES:-30}
SECONDS_RUN=$(awk -v m="$MINUTES" 'BEGIN { s = int(m * 60 + 0.5); print (s > 0 ? s : 0) }')

soak_end() {
    echo "soak: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit
}
command -v node >/dev/null || { bad "node is needed for the soak driver"; soak_end; }
[ "$SECONDS_RUN" -ge 30 ] || { bad "SOAK_MINUTES=$MINUTES: at least half a minute"; soak_end; }

C1=tiny-llama-q8_0 C2=tiny-llama-f16 C3=tiny-qwen2-q8_0 E=tiny-bert-q8_0
dir=$(models_dir models $C1 $C2 $C3 $E)
CONN_TIMEOUT=5
FLAGS=(--models "$dir" --ctx 512 --parallel 2 --queue 8 --keep-alive 30s
       --conn-timeout ${CONN_TIMEOUT}s --embed-cache 2M --threads 1)

# ---- 1. the estimates and the budget ----
start probe "${FLAGS[@]}" --memory-budget 4G || soak_end
declare -A EST
for m in $C1 $C2 $C3 $E; do
    s=$(post /v1/models/plan "{\"model\": \"$m\"}")
    EST[$m]=$(jb .estimated_bytes)
    check "plan for $m is 200 with estimated_bytes (got $s: ${EST[$m]})" [ "$s" = 200 ] && [ "${EST[$m]:-0}" -gt 0 ]
done
s=$(post /v1/embeddings "{\"model\": \"$E\", \"input\": \"probe\"}")
DIM=$(jb '.data[0].embedding | length')
check "the probe embeds (status $s, $DIM dimensions)" [ "$s" = 200 ] && [ "${DIM:-0}" -gt 0 ]
stop_server
[ "$fail" -eq 0 ] || soak_end
read -r S1 S2 S3 < <(printf '%s\n' "${EST[$C1]}" "${EST[$C2]}" "${EST[$C3]}" | sort -n | tr '\n' ' ')
BUDGET=$((EST[$E] + S2 + S3 + S1 / 2))
echo "soak: estimates $C1 ${EST[$C1]}, $C2 ${EST[$C2]}, $C3 ${EST[$C3]}, $E ${EST[$E]} (pinned); budget $BUDGET"
check "the budget fits the embedding model and any two chat models" [ $((EST[$E] + S2 + S3)) -le "$BUDGET" ]
check "the budget does not fit all three chat models" [ $((EST[$E] + S1 + S2 + S3)) -gt "$BUDGET" ]
cat >"$TMP/soak.ini" <<EOF
[model "$E"]
path = $dir/$E.gguf
pin = true
EOF

# ---- 2. the fake sysfs and the server ----
fake_cgroup soak.scope 1000000000 50      # S, CG, LIMIT (tests/server/lib.sh)
DATA=$TMP/data

FRUGAL_SYSROOT=$S start soak "${FLAGS[@]}" --config "$TMP/soak.ini" --memory-budget "$BUDGET" --data "$DATA" || soak_end
SERVER=$PID
sleep 0.5
IDLE_RSS=$(rss "$SERVER")
check "the server answers /health" [ "$(http GET /health)" = 200 ]

# ---- 3. the driver ----
echo "soak: driver for $SECONDS_RUN s (SOAK_MINUTES=$MINUTES)"
PORT=$PORT SERVER_PID=$SERVER SOAK_SECONDS=$SECONDS_RUN FRUGAL_SAN=$SAN_BUILD BUDGET=$BUDGET IDLE_RSS=${IDLE_RSS:-0} \
CHAT_MODELS=$C1,$C2,$C3 EMBED_MODEL=$E EMBED_DIM=$DIM CGROUP_DIR=$CG CGROUP_LIMIT=$LIMIT \
CONN_TIMEOUT_S=$CONN_TIMEOUT node "$SOAK_HERE/soak.mjs" 2>&1 | tee "$TMP/driver.out"
rc=${PIPESTATUS[0]}
line=$(grep -E '^soak-driver: [0-9]+ passed, [0-9]+ failed$' "$TMP/driver.out" | tail -1)
if [ -z "$line" ]; then
    bad "the driver ended without its summary line (exit $rc)"
else
    n=${line#*: }; a=${n%% passed*}; b=${n#*passed, }; b=${b%% failed*}
    pass=$((pass + a)); fail=$((fail + b))
    [ "$rc" -eq 0 ] || [ "$b" -gt 0 ] || bad "the driver exited $rc with no failure counted"
fi

# ---- 4. stop, sanitizer reports, the index ----
if alive "$SERVER"; then
    stop_server "$SERVER"
else
    wait "$SERVER" 2>/dev/null
    bad "the server died during the run (exit $?); the end of its log:"
    tail -20 "$SRV_LOG"
fi
errors=$(grep -c '^frugal: error:' "$SRV_LOG")
echo "soak: server log $(wc -l <"$SRV_LOG") lines, $errors error lines"
[ "$errors" -gt 0 ] && grep '^frugal: error:' "$SRV_LOG" | head -5
san_scan
if [ -d "$DATA" ]; then
    "$BIN" index check --data "$DATA" >"$TMP/check.out" 2>&1
    rc=$?
    echo "soak: index check: $(tr '\n' ' ' <"$TMP/check.out")"
    check "frugal index check --data exits 0 (rc $rc)" [ "$rc" -eq 0 ]
    check "the index is consistent" grep -q ': consistent$' "$TMP/check.out"
else
    bad "no data dir was made: the ingest client never wrote"
fi
if [ -n "${SOAK_KEEP:-}" ]; then
    mkdir -p "$SOAK_KEEP" && cp -r "$SRV_LOG" "$TMP/driver.out" "$DATA" "$SOAK_KEEP"/ 2>/dev/null
fi
soak_end
