#!/usr/bin/env bash
# make test-arm: the cross-built arm64 binaries (build/aarch64/, make
# CC=aarch64-linux-gnu-gcc) under qemu-user, once per CPU model, so that
# every aarch64 kernel level runs (kernels.c picks it from getauxval, and
# qemu-user reports the -cpu model's features):
#
#   cortex-a72  (Pi 4)           level neon
#   cortex-a76  (Pi 5)           level dotprod  (+ fp16)
#   max         (all of ARMv8/9) level i8mm
#
# Per model: the unit tests (the golden tests against ../shared/testdata
# are among them: test_model, test_bert, ...), the fuzz-corpus replays and
# the CLI tests (tests/cli/run.sh against a wrapper that runs the arm64
# frugal under qemu).  FRUGAL_EXPECT_ISA tells test_simd which level the
# model must give, and `frugal run` must report it ("kernels <level>"), so
# a run that silently fell back to another level fails.  The HTTP suites
# do not run here.
#
# Subset, chosen so that the qemu part stays within ~15 minutes of CI
# (qemu runs this code 20-50 times slower than the host: test_model alone
# takes 2-4 minutes):
#   every model (ARM_CPUS): the kernel tests (tests/unit/kernels/: each
#     level's kernels against their twins, the dispatch) and the golden
#     test test_model at the model's level (its twin passes, the same on
#     every CPU, only on ONCE_CPU: FRUGAL_TEST_SKIP_REF=1 elsewhere);
#   cortex-a72 and cortex-a76: the CLI tests (tests/cli/run.sh);
#   ONCE_CPU (cortex-a76, the Pi 5) only: every other unit test (their
#     code does not depend on the kernel level: base, engine's tokenizers,
#     GGUF, bert golden, sched, manager, search, server) and the fuzz-corpus
#     replays.
# ARM_FULL=1 runs everything on every model.
#
# The arm64 libraries come from Debian's multiarch packages (libc6:arm64
# and the :arm64 -dev packages the link used), so qemu's prefix is / — not
# /usr/aarch64-linux-gnu, whose ld.so (libc6-arm64-cross) need not be the
# same glibc build as /lib/aarch64-linux-gnu/libc.so.6: mixing the two
# hangs the first pthread_create.
#
# Ends with "arm: N passed, N failed" (make test's total counts it).
set -u
cd "$(dirname "$0")/.."
BUILD=${ARM_BUILD:-build/aarch64}
CPUS=${ARM_CPUS:-"cortex-a72 cortex-a76 max"}
ONCE_CPU=${ARM_ONCE_CPU:-cortex-a76}
CLI_CPUS=${ARM_CLI_CPUS:-"cortex-a72 cortex-a76"}
FULL=${ARM_FULL:-0}
export QEMU_LD_PREFIX=${QEMU_LD_PREFIX:-/}
export FRUGAL_TESTDATA=${FRUGAL_TESTDATA:-$(cd .. && pwd)/shared/testdata}

if ! command -v qemu-aarch64 >/dev/null; then
    echo "arm: qemu-aarch64 missing (scripts/setup.sh installs qemu-user)"
    echo "arm: 0 passed, 1 failed"
    exit 1
fi
[ -x "$BUILD/frugal" ] || { echo "arm: no $BUILD/frugal (make CC=aarch64-linux-gnu-gcc)"; echo "arm: 0 passed, 1 failed"; exit 1; }

# frugal under qemu, for tests that run $FRUGAL_BIN (QEMU_CPU picks the model)
wrap=$BUILD/qemu
mkdir -p "$wrap"
printf '#!/bin/sh\nexec qemu-aarch64 "%s" "$@"\n' "$(pwd)/$BUILD/frugal" >"$wrap/frugal"
chmod +x "$wrap/frugal"
export FRUGAL_BIN=$(pwd)/$wrap/frugal

level_of() {
    case $1 in
    cortex-a72 | cortex-a53 | cortex-a57) echo neon ;;
    cortex-a76 | neoverse-n1 | a64fx) echo dotprod ;;
    max | neoverse-v1) echo i8mm ;;
    *) echo "" ;;
    esac
}

pass=0 fail=0
count() {  # add up "N passed, N failed" of the last line of $1
    local line
    line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
    if [ -z "$line" ]; then fail=$((fail + 1)); return; fi
    line=${line##*: }
    local p=${line%% passed*} f=${line#*passed, }
    f=${f%% failed*}
    pass=$((pass + p)); fail=$((fail + f))
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
t_all=$(date +%s)
for cpu in $CPUS; do
    export QEMU_CPU=$cpu FRUGAL_EXPECT_ISA=$(level_of "$cpu")
    t0=$(date +%s)
    echo "== arm64 under qemu -cpu $cpu (expected kernel level: ${FRUGAL_EXPECT_ISA:-?})"

    # which level this model gives, as the CLI reports it
    out=$(qemu-aarch64 "$BUILD/frugal" run -m "$FRUGAL_TESTDATA/models/tiny-llama-q8_0.gguf" -p "Hi" -n 2 \
          --seed 1 2>&1 >/dev/null | grep -o 'kernels [a-z0-9]*' | tail -n 1)
    if [ -n "$FRUGAL_EXPECT_ISA" ] && [ "$out" != "kernels $FRUGAL_EXPECT_ISA" ]; then
        echo "FAIL: frugal run under -cpu $cpu reports '$out', want 'kernels $FRUGAL_EXPECT_ISA'"
        fail=$((fail + 1))
    else
        echo "frugal run under -cpu $cpu: $out"
        pass=$((pass + 1))
    fi

    once=0
    [ "$cpu" = "$ONCE_CPU" ] || [ "$FULL" = 1 ] && once=1
    # FRUGAL_ISA caps the level: each level below the model's best, asked
    # of frugal run and of test_simd (which checks the start-up choice)
    case $FRUGAL_EXPECT_ISA in i8mm) lower="neon dotprod" ;; dotprod) lower=neon ;; *) lower="" ;; esac
    for lv in ref $lower; do
        got=$(FRUGAL_ISA=$lv qemu-aarch64 "$BUILD/frugal" run -m "$FRUGAL_TESTDATA/models/tiny-llama-q8_0.gguf" \
              -p "Hi" -n 2 --seed 1 2>&1 >/dev/null | grep -o 'kernels [a-z0-9]*' | tail -n 1)
        simd=$(FRUGAL_ISA=$lv qemu-aarch64 "$BUILD/tests/kernels/test_simd" 2>&1 | tail -n 1)
        if [ "$got" = "kernels $lv" ] && [ "${simd% failed}" != "$simd" ] && [ "${simd#* passed, }" = "0 failed" ]; then
            echo "  FRUGAL_ISA=$lv: frugal run reports $got; test_simd $simd"
            pass=$((pass + 1))
        else
            echo "FAIL: FRUGAL_ISA=$lv under -cpu $cpu: frugal run reports '$got'; test_simd '$simd'"
            fail=$((fail + 1))
        fi
    done

    # unit tests (golden tests included)
    units=()
    for t in $(find "$BUILD/tests" -type f -name 'test_*' ! -name '*.d' | sort); do
        case ${t#"$BUILD/tests/"} in
        kernels/* | engine/test_model) units+=("$t") ;;
        *) [ $once = 1 ] && units+=("$t") ;;
        esac
    done
    skip_ref=1
    [ $once = 1 ] && skip_ref=0
    echo "  unit tests: ${#units[@]}$([ $once = 1 ] || echo ' (kernels/ and test_model; the twin passes skipped)')"
    FRUGAL_TEST_SKIP_REF=$skip_ref FRUGAL_EXEC=qemu-aarch64 scripts/run-tests.sh "${units[@]}" >"$log" 2>&1
    grep -vE ': [0-9]+ passed, 0 failed$' "$log" | grep -vE '^(ok|  )' | tail -n 40 | sed 's/^/  /'
    grep -E '^unit: ' "$log" | sed 's/^/  /'
    count "$log"

    if [ $once = 1 ]; then   # fuzz-corpus replays
        FRUGAL_EXEC=qemu-aarch64 scripts/replay-corpora.sh "$BUILD/replay" >"$log" 2>&1
        grep -E '^replay: |FAILED' "$log" | sed 's/^/  /'
        count "$log"
    fi

    case " $CLI_CPUS " in
    *" $cpu "*)   # CLI tests on the arm64 binary
        tests/cli/run.sh >"$log" 2>&1
        grep -E 'FAIL|passed' "$log" | tail -n 5 | sed 's/^/  /'
        count "$log" ;;
    *) [ "$FULL" = 1 ] && { tests/cli/run.sh >"$log" 2>&1; grep -E 'FAIL|passed' "$log" | tail -n 5 | sed 's/^/  /'; count "$log"; } ;;
    esac
    echo "-- -cpu $cpu: $(( $(date +%s) - t0 )) s"
done
echo "arm: qemu part took $(( $(date +%s) - t_all )) s"
echo "arm: $pass passed, $fail failed"
[ $fail -eq 0 ]
