#!/usr/bin/env bash
# Run unit-test binaries; each ends with "N passed, N failed".  Prints each
# binary's closing line and a total line in the same form; fails if any
# binary fails, crashes or prints no closing line.  FRUGAL_EXEC, when set,
# is put before each binary (qemu-aarch64: scripts/test-arm.sh).
set -u
total_p=0 total_f=0 bad=0
for t in "$@"; do
    out=$(${FRUGAL_EXEC-} "$t" 2>&1); rc=$?
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ -z "$line" ] || [ $rc -ne 0 ]; then
        printf '%s\n' "$out" | tail -n 40
        echo "FAILED: $t (exit $rc)"
        bad=$((bad + 1))
    else
        echo "$(basename "$t"): $line"
    fi
    if [ -n "$line" ]; then
        p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
        total_p=$((total_p + p)); total_f=$((total_f + f))
    fi
done
[ $bad -gt 0 ] && [ $total_f -eq 0 ] && total_f=$bad
echo "unit: $total_p passed, $total_f failed"
[ $bad -eq 0 ]
