#!/usr/bin/env bash
# clients.sh — the clients applications are built on, against one server on
# tiny-qwen2-q8_0, tiny-llama-q8_0 and tiny-bert-q8_0: the official openai
# package, Vercel's AI SDK with @ai-sdk/openai-compatible and LangChain's
# @langchain/openai (clients.test.mjs lists what each runs: chat, stream,
# a tool call round trip, 100 structured outputs that must all validate,
# embeddings), and Prometheus' own `promtool check metrics` on /metrics
# after that traffic.
SUITE=clients
. "$(dirname "$0")/lib.sh"

dir=$(models_dir models tiny-qwen2-q8_0 tiny-llama-q8_0 tiny-bert-q8_0)
start clients --models "$dir" --ctx 512 --parallel 2 || finish
PORT=$PORT run_node clients.test.mjs

# /metrics through promtool (Debian's prometheus package; scripts/setup.sh)
if command -v promtool >/dev/null; then
    curl -s -m 10 "$(url /metrics)" >"$TMP/metrics.txt"
    check "/metrics has samples after the client traffic" grep -q '^frugal_http_requests_total{route="/v1/chat/completions"' "$TMP/metrics.txt"
    promtool check metrics <"$TMP/metrics.txt" >"$TMP/promtool.out" 2>&1
    rc=$?
    check "promtool check metrics passes on /metrics (rc $rc: $(head -c 400 "$TMP/promtool.out"))" [ $rc -eq 0 ]
else
    bad "promtool is needed (scripts/setup.sh installs Debian's prometheus package)"
fi
check "/health is ok after the client tests" [ "$(http GET /health)" = 200 ]
finish
