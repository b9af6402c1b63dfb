#!/usr/bin/env bash
# Run each libFuzzer target briefly (FUZZ_SECONDS, default 20) from its
# committed corpus, in a scratch copy so the corpus stays as committed.
set -u
secs=${FUZZ_SECONDS:-20}; n=0; bad=0
for b in build/fuzz/fuzz_*; do
    [ -x "$b" ] || continue
    name=$(basename "$b"); name=${name#fuzz_}
    work=$(mktemp -d)
    cp -r tests/fuzz/corpus/$name/. "$work/"
    if "$b" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=4096 "$work" >"$work.log" 2>&1; then
        echo "fuzz $name: $(sed -n "s/^Done \([0-9]*\) runs.*/\1/p" "$work.log") runs in ${secs}s, no findings"
        n=$((n + 1))
    else
        tail -n 30 "$work.log"; echo "fuzz $name: FOUND A CRASH (see above)"; bad=$((bad + 1))
    fi
    rm -rf "$work" "$work.log"
done
echo "fuzz: $n passed, $bad failed"
[ $bad -eq 0 ]
