#!/usr/bin/env bash
# openai.sh — the official `openai` npm client against frugal: starts a
# server on tiny-llama-q8_0 and tiny-qwen2-q8_0 and runs openai.test.mjs
# (what it checks is listed there).
SUITE=openai
. "$(dirname "$0")/lib.sh"

dir=$(models_dir models tiny-llama-q8_0 tiny-qwen2-q8_0)
start openai --models "$dir" --ctx 256 --parallel 2 || finish
PORT=$PORT FRUGAL_BIN=$BIN MODELS_DIR=$MODELS run_node openai.test.mjs
check "/health is ok after the client tests" [ "$(http GET /health)" = 200 ]
finish
