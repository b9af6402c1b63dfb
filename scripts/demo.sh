#!/usr/bin/env bash
# The main job, for now: make a demo model with `frugal mkmodel` (a random-
# weight TinyLlama-shaped model, or the tiny shape with DEMO_SHAPE=tiny) and
# run it.  MODELS_DIR, when given, names a folder of GGUF files instead: the
# first one is run.
set -eu
BIN=${1:-build/frugal}
SHAPE=${DEMO_SHAPE:-tiny}
if [ -n "${MODELS_DIR:-}" ]; then
    MODEL=$(ls "$MODELS_DIR"/*.gguf | head -n 1)
else
    MODEL=build/demo-$SHAPE-q4_0.gguf
    [ -f "$MODEL" ] || "$BIN" mkmodel --arch llama --shape "$SHAPE" --type q4_0 "$MODEL"
fi
echo "demo: $MODEL"
"$BIN" run -m "$MODEL" -p "${PROMPT:-Once upon a time}" -n "${N:-32}"
