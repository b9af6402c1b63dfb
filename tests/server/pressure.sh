#!/usr/bin/env bash
# pressure.sh — memory pressure from fake /proc and /sys files
# (FRUGAL_SYSROOT, base/sysinfo.h): a cgroup v2 with memory.max and
# memory.current that the test rewrites, read by the manager's
# housekeeping pass (every 1 s; there is no flag for the period, so the
# test polls /v1/memory until the level changes, with a timeout).
#
# Two idle models and a pinned one are loaded.  warning: logged and
# exported, nothing evicted for pressure (a keep-alive expiry shows that a
# housekeeping pass ran).  critical: idle models are evicted, least
# recently used first (log order), counted as "critical", the pinned one
# stays; loads are still allowed.  emergency: every idle model is evicted
# ("emergency"), a request for an unloaded model gets 503 + Retry-After
# with a message about memory, the pinned model still answers.  Back to
# ok: a new request loads and succeeds.  Then the meminfo source alone
# (MemTotal/MemAvailable, no cgroup) gives an emergency at start.  Last,
# temperature: a fake thermal zone and Pi firmware file going up and down;
# /metrics follows (frugal_soc_temperature_celsius, frugal_throttled,
# frugal_compute_threads, frugal_firmware_throttled) with hysteresis, and
# a request still completes on the reduced pool.
SUITE=pressure
. "$(dirname "$0")/lib.sh"

A=tiny-llama-q8_0 B=tiny-llama-f16 P=tiny-qwen2-q8_0
dir=$(models_dir models $A $B $P)
cat >"$TMP/pin.ini" <<EOF
[model "$P"]
path = $dir/$P.gguf
pin = true
EOF

fake_cgroup test.scope 1000000000 50      # S, CG, LIMIT; set_pct PCT (lib.sh)

level_is() { [ "$(curl -s -m 5 "$(url /v1/memory)" | jq -r .level)" = "$1" ]; }
evictions_are() {   # REASON N
    [ "$(curl -s -m 5 "$(url /v1/memory)" | jq -r ".evictions.$1")" = "$2" ]
}
state_of() { curl -s -m 5 "$(url "/v1/models/$1")" | jq -r .state; }
complete() {   # MODEL : prints the status; body in $TMP/body
    post /v1/completions "{\"model\": \"$1\", \"prompt\": \"Hello\", \"max_tokens\": 2, \"temperature\": 0}"
}

FRUGAL_SYSROOT=$S start pressure --models "$dir" --config "$TMP/pin.ini" --ctx 128 --parallel 1 \
    --memory-budget 1G --keep-alive -1 || finish

check "GET /v1/memory is 200" [ "$(http GET /v1/memory)" = 200 ]
check "the fake cgroup limit is read ($(jb .system.cgroup_limit))" [ "$(jb .system.cgroup_limit)" = $LIMIT ]
check "the fake cgroup usage is read ($(jb .system.cgroup_current))" [ "$(jb .system.cgroup_current)" = $((LIMIT / 2)) ]
check "used_pct is 50 ($(jb .used_pct))" jqe '.used_pct > 49.9 and .used_pct < 50.1' "$TMP/body"
check "level ok at 50%" [ "$(jb .level)" = ok ]
check "thresholds are the defaults 80/90/95" jqe '.thresholds == {"warning": 80, "critical": 90, "emergency": 95}' "$TMP/body"

# load P (pinned), then B, then A: B is the least recently used idle model
for m in $P $B $A; do
    s=$(complete $m)
    check "a request to $m at ok is 200 (got $s)" [ "$s" = 200 ]
done
for m in $P $B $A; do check "$m is loaded" [ "$(state_of $m)" = loaded ]; done

# ---- warning: exported, nothing evicted ----
# /v1/memory reads the files itself, so its level changes at once; the
# evictions come from the housekeeping pass.  A keep-alive of 100 ms on
# one request shows that a pass ran at warning: its keep_alive eviction.
set_pct 85
check "level becomes warning at 85%" poll 10 level_is warning
check "/metrics: frugal_memory_level 1" [ "$(metric frugal_memory_level)" = 1 ]
check "the warning is logged" grep -q "memory level warning (was ok)" "$SRV_LOG"
s=$(post /v1/completions "{\"model\": \"$A\", \"prompt\": \"Hello\", \"max_tokens\": 2, \"keep_alive\": \"100ms\"}")
check "warning: a request with keep_alive 100ms is 200 (got $s)" [ "$s" = 200 ]
check "warning: a housekeeping pass unloads it (evictions.keep_alive 1)" poll 10 evictions_are keep_alive 1
http GET /v1/memory >/dev/null
check "warning: level still warning" [ "$(jb .level)" = warning ]
check "warning: the passes evicted nothing for pressure" jqe '.evictions.critical == 0 and .evictions.emergency == 0 and .evictions.lru == 0' "$TMP/body"
for m in $P $B; do check "$m is still loaded at warning" [ "$(state_of $m)" = loaded ]; done
set_pct 50
check "level back to ok" poll 10 level_is ok
s=$(post /v1/completions "{\"model\": \"$A\", \"prompt\": \"Hello\", \"max_tokens\": 2, \"keep_alive\": -1}")
check "$A is loaded again (got $s)" [ "$s" = 200 ]
for m in $P $B $A; do check "$m is loaded before critical" [ "$(state_of $m)" = loaded ]; done

# ---- critical: idle models go, least recently used first ----
set_pct 92
check "level becomes critical at 92%" poll 10 level_is critical
check "/v1/memory evictions.critical reaches 2" poll 10 evictions_are critical 2
http GET /v1/memory >/dev/null
check "critical: level critical in /v1/memory" [ "$(jb .level)" = critical ]
check "critical: nothing counted as lru or emergency" jqe '.evictions.lru == 0 and .evictions.emergency == 0' "$TMP/body"
check "critical: only the pinned model is left in /v1/memory" [ "$(jb '[.models[].id] | join(",")')" = $P ]
check "critical: $A is unloaded" [ "$(state_of $A)" = unloaded ]
check "critical: $B is unloaded" [ "$(state_of $B)" = unloaded ]
check "critical: the pinned $P is still loaded" [ "$(state_of $P)" = loaded ]
lb=$(grep -n "unload '$B' (critical)" "$SRV_LOG" | head -1 | cut -d: -f1)
la=$(grep -n "unload '$A' (critical)" "$SRV_LOG" | head -1 | cut -d: -f1)
lines_before() { [ -n "$1" ] && [ -n "$2" ] && [ "$1" -lt "$2" ]; }
check "critical: the LRU model $B went first (log lines $lb, $la)" lines_before "$lb" "$la"
check "/metrics: frugal_evictions_total{reason=\"critical\"} 2" [ "$(metric 'frugal_evictions_total{reason="critical"}')" = 2 ]
check "/metrics: frugal_memory_level 2" [ "$(metric frugal_memory_level)" = 2 ]
# loads are not refused at critical; the next pass evicts the model again
s=$(complete $A)
check "critical: a request to unloaded $A still loads and succeeds (got $s)" [ "$s" = 200 ]
check "critical: the next pass evicts $A again (evictions.critical 3)" poll 10 evictions_are critical 3
s=$(complete $P)
check "critical: the pinned $P answers (got $s)" [ "$s" = 200 ]

# ---- emergency: every idle model goes, loads are refused ----
set_pct 50
check "level back to ok before the emergency" poll 10 level_is ok
for m in $B $A; do
    s=$(complete $m)
    check "a request to $m at ok is 200 again (got $s)" [ "$s" = 200 ]
done
set_pct 97
check "level becomes emergency at 97%" poll 10 level_is emergency
check "/v1/memory evictions.emergency reaches 2" poll 10 evictions_are emergency 2
http GET /v1/memory >/dev/null
check "emergency: only the pinned model is left" [ "$(jb '[.models[].id] | join(",")')" = $P ]
check "emergency: no more critical evictions (3)" [ "$(jb .evictions.critical)" = 3 ]
for m in $A $B; do check "emergency: $m is unloaded" [ "$(state_of $m)" = unloaded ]; done
check "emergency: the pinned $P is still loaded" [ "$(state_of $P)" = loaded ]
check "emergency is logged" grep -q "memory level emergency" "$SRV_LOG"
sheds0=$(curl -s -m 5 "$(url /metrics)" | awk '/^frugal_sheds_total\{/ {s += $2} END {print s + 0}')
s=$(complete $A)
check "emergency: a request to unloaded $A is 503 (got $s)" [ "$s" = 503 ]
check "emergency: the 503 has the error shape, code insufficient_memory" err_shape 503 insufficient_memory
check "emergency: the message says memory ($(jb .error.message))" jqe '.error.message | test("memory")' "$TMP/body"
check "emergency: the message names $A" jqe '.error.message | contains($a)' "$TMP/body" --arg a "$A"
ra=$(header Retry-After)
check "emergency: the 503 has Retry-After >= 1 ('$ra')" retry_after_ok "$ra"
s=$(post "/v1/models/$A/load" '{}')
check "emergency: POST /v1/models/$A/load is 503 too (got $s)" [ "$s" = 503 ]
check "emergency: the load's 503 has Retry-After" retry_after_ok "$(header Retry-After)"
s=$(post /v1/models/plan "{\"model\": \"$A\"}")
check "emergency: plan for $A says it does not fit because of the emergency" \
    jqe '.fits == false and (.reason | test("emergency"))' "$TMP/body"
s=$(complete $P)
check "emergency: the pinned, loaded $P still answers (got $s)" [ "$s" = 200 ]
http GET /v1/memory >/dev/null
check "emergency: loads.shed_emergency = 2 ($(jb .loads.shed_emergency))" [ "$(jb .loads.shed_emergency)" = 2 ]
check "/metrics: frugal_sheds_total{reason=\"emergency\"} 2" [ "$(metric 'frugal_sheds_total{reason="emergency"}')" = 2 ]
sheds1=$(curl -s -m 5 "$(url /metrics)" | awk '/^frugal_sheds_total\{/ {s += $2} END {print s + 0}')
check "/metrics: the two 503s add 2 to frugal_sheds_total over all reasons (got $((sheds1 - sheds0)))" [ $((sheds1 - sheds0)) -eq 2 ]
check "/metrics: frugal_memory_level 3" [ "$(metric frugal_memory_level)" = 3 ]

# ---- back to ok: loads work again ----
set_pct 40
check "level back to ok at 40%" poll 10 level_is ok
check "the return to ok is logged" grep -q "memory level ok (was emergency)" "$SRV_LOG"
s=$(complete $A)
check "ok again: a request to $A loads and succeeds (got $s)" [ "$s" = 200 ]
check "ok again: the answer has text" jqe '.choices[0].text | type == "string"' "$TMP/body"
check "ok again: $A is loaded" [ "$(state_of $A)" = loaded ]
check "/health is ok" [ "$(http GET /health)" = 200 ]
stop_server

# ---- meminfo alone (no cgroup): 97% used is an emergency from the start ----
S2=$TMP/sysroot2
mkdir -p "$S2/proc"
printf 'MemTotal:        1000000 kB\nMemFree:           10000 kB\nMemAvailable:      30000 kB\n' >"$S2/proc/meminfo"
FRUGAL_SYSROOT=$S2 start meminfo --models "$dir" --ctx 128 --parallel 1 --memory-budget 1G || finish
check "meminfo: level emergency" poll 10 level_is emergency
http GET /v1/memory >/dev/null
check "meminfo: total from MemTotal ($(jb .system.total))" [ "$(jb .system.total)" = 1024000000 ]
check "meminfo: no cgroup limit" [ "$(jb .system.cgroup_limit)" = 0 ]
s=$(complete $A)
check "meminfo emergency: a request is 503 (got $s)" [ "$s" = 503 ]
check "meminfo emergency: the message says memory" jqe '.error.message | test("memory")' "$TMP/body"
printf 'MemTotal:        1000000 kB\nMemFree:          800000 kB\nMemAvailable:     900000 kB\n' >"$S2/proc/meminfo.tmp"
mv "$S2/proc/meminfo.tmp" "$S2/proc/meminfo"
check "meminfo: level ok at 10% used" poll 10 level_is ok
s=$(complete $A)
check "meminfo ok: the request succeeds (got $s)" [ "$s" = 200 ]
stop_server

# ---- temperature: a Pi 5's zone (no passive trip: hot from 80 °C, cool at 75) ----
TZ0=$S2/sys/class/thermal/thermal_zone0
FW=$S2/sys/devices/platform/soc/soc:firmware
mkdir -p "$TZ0" "$FW"
printf 'cpu-thermal\n' >"$TZ0/type"
printf 'critical\n' >"$TZ0/trip_point_0_type"
printf '110000\n' >"$TZ0/trip_point_0_temp"
set_temp() { printf '%s\n' "$1" >"$TZ0/temp.tmp" && mv "$TZ0/temp.tmp" "$TZ0/temp"; }
set_fw() { printf '%s\n' "$1" >"$FW/get_throttled.tmp" && mv "$FW/get_throttled.tmp" "$FW/get_throttled"; }
metric_is() { [ "$(metric "$1")" = "$2" ]; }
set_temp 50000
set_fw 0x0
FRUGAL_SYSROOT=$S2 start thermal --models "$dir" --ctx 128 --threads 4 --parallel 2 --memory-budget 1G || finish
check "thermal: 50 °C exported ($(metric frugal_soc_temperature_celsius))" metric_is frugal_soc_temperature_celsius 50
check "thermal: not throttled" metric_is frugal_throttled 0
check "thermal: 4 compute threads" metric_is frugal_compute_threads 4
check "thermal: firmware flag throttled 0" metric_is 'frugal_firmware_throttled{flag="throttled"}' 0
set_temp 85500
check "thermal: 85.5 °C exported" poll 10 metric_is frugal_soc_temperature_celsius 85.5
check "thermal: throttled at 85.5 °C" metric_is frugal_throttled 1
check "thermal: 2 compute threads when hot" metric_is frugal_compute_threads 2
check "thermal: the throttling is logged" grep -q "SoC hot (85.5 °C" "$SRV_LOG"
s=$(complete $A)
check "thermal: a request completes on 2 threads (got $s)" [ "$s" = 200 ]
set_temp 77000
check "thermal: 77 °C exported" poll 10 metric_is frugal_soc_temperature_celsius 77
check "thermal: still throttled at 77 °C (hysteresis)" metric_is frugal_throttled 1
check "thermal: still 2 threads at 77 °C" metric_is frugal_compute_threads 2
set_temp 74000
check "thermal: cooled at 74 °C" poll 10 metric_is frugal_throttled 0
check "thermal: 4 compute threads again" metric_is frugal_compute_threads 4
check "thermal: the cooling is logged" grep -q "SoC cooled (74.0 °C" "$SRV_LOG"
set_fw 0x80008
check "thermal: the firmware's soft temperature limit throttles" poll 10 metric_is frugal_throttled 1
check "thermal: its flag is exported" metric_is 'frugal_firmware_throttled{flag="soft_temp_limit"}' 1
check "thermal: 2 threads under the firmware limit" metric_is frugal_compute_threads 2
set_fw 0x80000
check "thermal: the firmware limit lifted" poll 10 metric_is frugal_throttled 0
check "thermal: soft_temp_limit flag 0" metric_is 'frugal_firmware_throttled{flag="soft_temp_limit"}' 0
finish
