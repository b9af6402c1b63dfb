#!/usr/bin/env bash
# Replay every fuzz target's committed corpus (tests/fuzz/corpus/NAME) with
# its plain-main replay binary (run through $FRUGAL_EXEC when set:
# qemu-aarch64 in scripts/test-arm.sh).
set -u
dir=$1; bad=0; n=0
for b in "$dir"/fuzz_*; do
    [ -x "$b" ] || continue
    name=$(basename "$b"); name=${name#fuzz_}
    corpus=tests/fuzz/corpus/$name
    if [ ! -d "$corpus" ]; then echo "replay: no corpus for $name"; bad=$((bad+1)); continue; fi
    if ${FRUGAL_EXEC-} "$b" "$corpus" >/tmp/replay.$$ 2>&1; then
        echo "replay $name: $(tail -n 1 /tmp/replay.$$)"
        n=$((n + 1))
    else
        tail -n 20 /tmp/replay.$$; echo "replay $name: FAILED"; bad=$((bad + 1))
    fi
done
rm -f /tmp/replay.$$
echo "replay: $n passed, $bad failed"
[ $bad -eq 0 ]
