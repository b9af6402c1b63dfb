#!/usr/bin/env bash
# The main job: serve models over HTTP with `frugal serve`.
#
# MODELS_DIR, when given, names a folder of GGUF files to serve.  Without
# it, a random-weight demo model is made once with `frugal mkmodel` (the
# tiny llama shape, or DEMO_SHAPE=tinyllama-1.1b|qwen2-0.5b|llama-3.2-1b)
# into build/demo-models and served.  HOST and PORT (127.0.0.1:8080) say
# where; any further arguments go to `frugal serve` as they are.  Stop it
# with Ctrl-C (it drains in-flight requests first).
set -eu
BIN=${1:-build/frugal}
shift || true
SHAPE=${DEMO_SHAPE:-tiny}
DIR=${MODELS_DIR:-}
if [ -z "$DIR" ]; then
    DIR=build/demo-models
    mkdir -p "$DIR"
    MODEL=$DIR/demo-$SHAPE-q4_0.gguf
    [ -f "$MODEL" ] || "$BIN" mkmodel --arch llama --shape "$SHAPE" --type q4_0 "$MODEL" >/dev/null
fi
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8080}
first=$(ls "$DIR"/*.gguf 2>/dev/null | head -n 1 || true)
id=$(basename "${first:-model.gguf}" .gguf)
cat >&2 <<MSG
demo: serving $DIR on http://$HOST:$PORT — try:
  curl http://$HOST:$PORT/v1/models
  curl http://$HOST:$PORT/v1/chat/completions -d '{"model": "$id", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 16}'
  curl http://$HOST:$PORT/v1/memory
MSG
exec "$BIN" serve --models "$DIR" --host "$HOST" --port "$PORT" "$@"
