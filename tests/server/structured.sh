#!/usr/bin/env bash
# structured.sh — structured output (grammar-constrained sampling): starts
# a server on tiny-llama-q8_0 and tiny-qwen2-q8_0 (random weights: their
# free text is noise, so any shape in the output comes from the grammar)
# and runs structured.py: 100 generations per model against 5 JSON
# schemas, each parsed and validated; json_object; GBNF grammars; the
# 400s for bad grammars and unsupported schema keywords (what it checks is
# listed there), then structured.test.mjs: the openai npm client's
# chat.completions.parse with zodResponseFormat.
SUITE=structured
. "$(dirname "$0")/lib.sh"

dir=$(models_dir models tiny-llama-q8_0 tiny-qwen2-q8_0)
start structured --models "$dir" --ctx 1024 --parallel 2 || finish
if ! command -v python3 >/dev/null; then
    bad "python3 is needed"
    finish
fi
PORT=$PORT MODELS="tiny-llama-q8_0 tiny-qwen2-q8_0" python3 "$HERE/structured.py" >"$TMP/py.out" 2>&1
rc=$?
grep -v '^py: [0-9]* passed, [0-9]* failed$' "$TMP/py.out"
line=$(grep '^py: [0-9]* passed, [0-9]* failed$' "$TMP/py.out" | tail -1)
if [ -z "$line" ]; then
    bad "structured.py ended without its summary line (exit $rc)"
else
    n=${line#py: }; a=${n%% passed*}; b=${n#*passed, }; b=${b%% failed*}
    pass=$((pass + a)); fail=$((fail + b))
fi
# the official openai client with zod (chat.completions.parse)
PORT=$PORT run_node structured.test.mjs
check "/health is ok after the structured tests" [ "$(http GET /health)" = 200 ]
finish
