#!/usr/bin/env bash
# ollama.sh — Ollama's API (src/server/ollama.c) with curl, then the
# official `ollama` npm client (ollama.test.mjs), on tiny-llama-q8_0,
# tiny-qwen2-q8_0 and tiny-bert-q8_0.
#
# curl: / and /api/version; /api/tags (names with :latest, details from
# the GGUF header, sizes = the files'); /api/generate and /api/chat
# streamed as NDJSON (content type, every line an object, "done": false
# lines with the text, one last line with done_reason and the counters,
# the joined text = the non-streamed answer); options.num_predict =
# eval_count; options.seed reproducible at temperature 1; options errors
# named (400 {"error": "options.temperature ..."}); keep_alive: an empty
# generate loads (done_reason load, in /api/ps with expires_at from its
# keep_alive), keep_alive 0 unloads (done_reason unload, gone from /api/ps
# and unloaded in /v1/models); errors in Ollama's shape (404 unknown model,
# 400 images/suffix/bad format, 401 without the key); /api/show, /api/embed
# and /api/embeddings (the same vectors as /v1/embeddings); options.num_ctx
# logged when it cannot apply; a client that leaves a stream cancels it.
SUITE=ollama
. "$(dirname "$0")/lib.sh"

dir=$(models_dir models tiny-llama-q8_0 tiny-qwen2-q8_0 tiny-bert-q8_0)
start ollama --models "$dir" --ctx 2048 --parallel 2 || finish
L=tiny-llama-q8_0 Q=tiny-qwen2-q8_0 B=tiny-bert-q8_0
jqe() { jq -e "$@" >/dev/null 2>&1; }
# ollama_err TEXT: the last body is Ollama's error shape, its message containing TEXT
ollama_err() { jq -e --arg s "$1" '(.error | type == "string") and (.error | contains($s)) and (keys == ["error"])' "$TMP/body" >/dev/null; }

# ---- / and version ----
check "GET / answers 200" [ "$(http GET /)" = 200 ]
check "GET / says Ollama is running" [ "$(cat "$TMP/body")" = "Ollama is running" ]
check "HEAD / answers 200" [ "$(http HEAD / -I)" = 200 ]
check "GET /api/version" [ "$(http GET /api/version)" = 200 ] 
check "/api/version has a version string" jqe '.version | test("^[0-9]+\\.[0-9]+\\.[0-9]+$")' "$TMP/body"

# ---- tags ----
check "GET /api/tags" [ "$(http GET /api/tags)" = 200 ]
check "/api/tags lists the three models as NAME:latest" \
    [ "$(jb '[.models[].name] | sort | join(",")')" = "$B:latest,$L:latest,$Q:latest" ]
check "/api/tags: model = name, details from the GGUF" jqe --arg l "$L:latest" '
    .models[] | select(.name == $l) | .model == $l and .details.format == "gguf" and .details.family == "llama"
    and .details.families == ["llama"] and .details.quantization_level == "Q8_0"
    and (.details.parameter_size | test("^[0-9.]+[KMB]$")) and (.digest | test("^[0-9a-f]{64}$"))
    and (.modified_at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T"))' "$TMP/body"
size=$(stat -L -c %s "$MODELS/$Q.gguf")
check "/api/tags: size is the file's" [ "$(jb ".models[] | select(.name == \"$Q:latest\") | .size")" = "$size" ]
check "/api/tags: bert family" [ "$(jb ".models[] | select(.name == \"$B:latest\") | .details.family")" = bert ]

# ---- generate, streamed (the default) ----
gen='{"model":"'$L'","prompt":"Hello there","options":{"temperature":0,"num_predict":12}}'
check "POST /api/generate streams 200" [ "$(post /api/generate "$gen")" = 200 ]
check "the stream is application/x-ndjson" [ "$(header Content-Type)" = application/x-ndjson ]
cp "$TMP/body" "$TMP/gen.ndjson"
check "every line is one JSON object" jqe -s 'length > 1 and all(type == "object")' "$TMP/gen.ndjson"
check "no [DONE], no SSE framing" bash -c "! grep -q '^data:' '$TMP/gen.ndjson'"
check "lines but the last: done false, model, created_at, response text" jqe -s --arg m "$L" '
    .[:-1] | all(.done == false and .model == $m and (.response | type == "string")
    and (.created_at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$")))' "$TMP/gen.ndjson"
check "the last line: done, done_reason length, counters in ns" jqe -s '
    .[-1] | .done == true and .done_reason == "length" and .eval_count == 12 and .prompt_eval_count > 0
    and .response == "" and ([.total_duration, .load_duration, .prompt_eval_duration, .eval_duration]
    | all(type == "number" and . >= 0 and floor == .)) and .total_duration >= .eval_duration
    and .eval_duration > 0' "$TMP/gen.ndjson"
streamed=$(jq -j -s '.[:-1] | map(.response) | join("")' "$TMP/gen.ndjson")
check "POST /api/generate stream:false" [ "$(post /api/generate "${gen%\}},\"stream\":false}")" = 200 ]
check "stream:false is one object with done true" jqe '.done == true and .done_reason == "length" and .eval_count == 12' "$TMP/body"
check "the streamed text joined = the non-streamed text" [ "$streamed" = "$(jq -j .response "$TMP/body")" ]
check "stream:false is application/json" [ "$(header Content-Type)" = application/json ]

# num_predict honoured, raw prompts, system
for n in 3 9; do
    post /api/generate '{"model":"'$L'","prompt":"Once upon","stream":false,"raw":true,"options":{"temperature":0,"num_predict":'$n'}}' >/dev/null
    check "options.num_predict $n = eval_count (raw)" [ "$(jb .eval_count)" = $n ]
done
post /api/generate '{"model":"'$Q'","prompt":"hi","system":"be brief","stream":false,"options":{"num_predict":4,"temperature":0}}' >/dev/null
check "generate with system on a chat model" [ "$(jb '.eval_count')" = 4 ]
p1=$(jb .prompt_eval_count)
post /api/generate '{"model":"'$Q'","prompt":"hi","stream":false,"options":{"num_predict":4,"temperature":0}}' >/dev/null
check "the system message is in the prompt ($p1 > $(jb .prompt_eval_count) tokens)" [ "$p1" -gt "$(jb .prompt_eval_count)" ]

# seeds at temperature 1
seed() { post /api/generate '{"model":"'$L'","prompt":"The sky","stream":false,"options":{"temperature":1,"seed":'$1',"num_predict":24}}' >/dev/null; jb .response; }
a=$(seed 42) b=$(seed 42)
check "options.seed: the same seed gives the same text" [ -n "$a" ] && [ "$a" = "$b" ]

# ---- chat ----
chat='{"model":"'$Q':latest","messages":[{"role":"system","content":"hi"},{"role":"user","content":"Why is the sky blue?"}],"options":{"temperature":0,"num_predict":10}}'
check "POST /api/chat streams 200" [ "$(post /api/chat "$chat")" = 200 ]
cp "$TMP/body" "$TMP/chat.ndjson"
check "chat lines: message role assistant with content, done false; the model as named" jqe -s --arg m "$Q:latest" '
    .[:-1] | length > 0 and all(.done == false and .model == $m and .message.role == "assistant"
    and (.message.content | type == "string" and length > 0))' "$TMP/chat.ndjson"
check "chat last line: done, counters" jqe -s '.[-1] | .done == true and .done_reason == "length" and .eval_count == 10
    and .message.role == "assistant" and .message.content == "" and .prompt_eval_count > 0' "$TMP/chat.ndjson"
streamed=$(jq -j -s '.[:-1] | map(.message.content) | join("")' "$TMP/chat.ndjson")
post /api/chat "${chat%\}},\"stream\":false}" >/dev/null
check "chat stream:false: one object" jqe '.done == true and .message.role == "assistant" and .eval_count == 10' "$TMP/body"
check "chat: the streamed text joined = the non-streamed text" [ "$streamed" = "$(jq -j .message.content "$TMP/body")" ]
post /api/chat '{"model":"'$Q'","messages":[{"role":"user","content":"x"}],"stream":false,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"options":{"num_predict":2}}' >/dev/null
check "chat with tools is accepted" jqe '.done == true' "$TMP/body"
post /api/chat '{"model":"'$L'","messages":[{"role":"user","content":"x"}],"stream":false,"options":{"num_predict":2,"num_ctx":999,"mirostat":1,"num_gpu":99,"numa":false}}' >/dev/null
check "options.num_ctx and unknown options accepted" jqe '.done == true' "$TMP/body"
check "options.num_ctx that cannot apply is logged" grep -q "num_ctx 999 ignored" "$SRV_LOG"

# ---- format: constrained decoding ----
# tiny-llama's answers to "Reply in JSON" close their object within the
# context (tiny-qwen2's random weights write one endless string: only its
# beginning is checked)
for s in 1 2 3 4 5; do
    post /api/generate '{"model":"'$L'","prompt":"Reply in JSON","format":"json","stream":false,"options":{"seed":'$s'}}' >/dev/null
    check "format json, seed $s: stops, and the response parses as a JSON object" \
        jqe '.done_reason == "stop" and (.response | fromjson | type == "object")' "$TMP/body"
done
post /api/chat '{"model":"'$L'","messages":[{"role":"user","content":"Reply in JSON"}],"format":"json","options":{"seed":2}}' >/dev/null
check "format json, chat streamed: the joined lines parse as a JSON object" \
    jqe -s '.[:-1] | map(.message.content) | join("") | fromjson | type == "object"' "$TMP/body"
post /api/generate '{"model":"'$Q'","prompt":"Reply in JSON","format":"json","stream":false,"options":{"seed":1,"num_predict":30}}' >/dev/null
check "format json on qwen2: the answer begins as a JSON object" jqe '.response | test("^[{][ \\n\\t]*([\"}])")' "$TMP/body"

# a JSON schema: every answer parses and validates (types, required, maxLength)
SCHEMA='{"type":"object","properties":{"age":{"type":"integer"},"ok":{"type":"boolean"},"name":{"type":"string","maxLength":12}},"required":["age","ok","name"]}'
valid='.age | type == "number" and floor == .) and (.ok | type == "boolean") and (.name | type == "string" and length <= 12'
for m in $L $Q; do
    for s in 1 2 3; do
        post /api/chat '{"model":"'$m'","messages":[{"role":"user","content":"x"}],"format":'"$SCHEMA"',"stream":false,"options":{"seed":'$s'}}' >/dev/null
        check "format schema, $m seed $s: the content parses and validates" \
            jqe '.message.content | fromjson | ('"$valid"')' "$TMP/body"
    done
    post /api/generate '{"model":"'$m'","prompt":"x","format":'"$SCHEMA"',"options":{"seed":9}}' >/dev/null
    check "format schema, $m, generate streamed: the joined lines validate" \
        jqe -s '.[:-1] | map(.response) | join("") | fromjson | ('"$valid"')' "$TMP/body"
done
check "a schema keyword that cannot be enforced: 400" \
    [ "$(post /api/chat '{"model":"'$L'","messages":[{"role":"user","content":"x"}],"format":{"type":"object","patternProperties":{}}}')" = 400 ]
check "the 400 names format and the keyword" ollama_err "format: keyword 'patternProperties'"

# ---- tools ----
TOOLS='[{"type":"function","function":{"name":"get_weather","description":"Weather of a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]'
post /api/chat '{"model":"'$Q'","messages":[{"role":"user","content":"Weather in Paris?"}],"stream":false,"options":{"num_predict":2}}' >/dev/null
p0=$(jb .prompt_eval_count)
post /api/chat '{"model":"'$Q'","messages":[{"role":"user","content":"Weather in Paris?"}],"tools":'"$TOOLS"',"stream":false,"options":{"num_predict":2}}' >/dev/null
check "tools are rendered into the prompt ($(jb .prompt_eval_count) > $p0 tokens)" [ "$(jb .prompt_eval_count)" -gt "$p0" ]
# the random model would never call: a grammar (llama-server's "grammar",
# read from options as from a body) makes it write the Hermes call
CALL='root ::= \"<tool_call>\\n{\\\"name\\\": \\\"get_weather\\\", \\\"arguments\\\": {\\\"city\\\": \\\"Paris\\\"}}\\n</tool_call>\"'
post /api/chat '{"model":"'$Q'","messages":[{"role":"user","content":"Weather in Paris?"}],"tools":'"$TOOLS"',"stream":false,"options":{"grammar":"'"$CALL"'"}}' >/dev/null
check "a tool call in Ollama's shape (arguments an object), done_reason stop" jqe '
    .message.tool_calls == [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
    and .message.content == "" and .done_reason == "stop"' "$TMP/body"
post /api/chat '{"model":"'$Q'","messages":[{"role":"user","content":"Weather in Paris?"}],"tools":'"$TOOLS"',"options":{"grammar":"'"$CALL"'"}}' >/dev/null
check "streamed: one line carries the call, the text lines none of its syntax" jqe -s '
    ([.[] | select(.message.tool_calls)] | length == 1 and .[0].done == false
     and .[0].message.tool_calls[0].function == {"name": "get_weather", "arguments": {"city": "Paris"}})
    and ([.[].message.content] | join("") | contains("tool_call") | not) and (.[-1].done_reason == "stop")' "$TMP/body"
post /api/chat '{"model":"'$Q'","stream":false,"tools":'"$TOOLS"',"options":{"num_predict":2},"messages":[{"role":"user","content":"Weather?"},{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Paris"}}}]},{"role":"tool","content":"sunny"}]}' >/dev/null
check "an assistant's tool_calls and a tool message (Ollama's shapes) are accepted" jqe '.done == true and .eval_count == 2' "$TMP/body"
check "bad tools: 400 naming the field" [ "$(post /api/chat '{"model":"'$Q'","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"bad name"}}]}')" = 400 ]
check "bad tools: named" ollama_err "tools[0].function.name"

# ---- errors in Ollama's shape ----
check "unknown model: 404" [ "$(post /api/chat '{"model":"nope","messages":[{"role":"user","content":"x"}]}')" = 404 ]
check "unknown model: {\"error\": \"model 'nope' not found\"}" ollama_err "model 'nope' not found"
check "unknown model, generate: 404" [ "$(post /api/generate '{"model":"nope:latest","prompt":"x"}')" = 404 ]
check "unknown model in show: 404" [ "$(post /api/show '{"model":"nope"}')" = 404 ]
check "show 404 shape" ollama_err "not found"
check "missing model: 400" [ "$(post /api/generate '{"prompt":"x"}')" = 400 ]
check "missing model: error names it" ollama_err "model"
check "bad options.temperature: 400" [ "$(post /api/generate '{"model":"'$L'","prompt":"x","options":{"temperature":"hot"}}')" = 400 ]
check "bad options.temperature: named" ollama_err "options.temperature"
check "options not an object: 400" [ "$(post /api/generate '{"model":"'$L'","prompt":"x","options":3}')" = 400 ]
check "images: 400" [ "$(post /api/generate '{"model":"'$L'","prompt":"x","images":["aGk="]}')" = 400 ]
check "images: named" ollama_err "images"
check "chat images: 400" [ "$(post /api/chat '{"model":"'$Q'","messages":[{"role":"user","content":"x","images":["aGk="]}]}')" = 400 ]
check "suffix: 400" [ "$(post /api/generate '{"model":"'$L'","prompt":"x","suffix":"y"}')" = 400 ]
check "format other than json or a schema: 400" [ "$(post /api/generate '{"model":"'$L'","prompt":"x","format":"xml"}')" = 400 ]
check "format: named" ollama_err "format"
check "bad role: 400" [ "$(post /api/chat '{"model":"'$Q'","messages":[{"role":"robot","content":"x"}]}')" = 400 ]
check "bad keep_alive: 400" [ "$(post /api/generate '{"model":"'$L'","keep_alive":"soon"}')" = 400 ]
check "an embedding model cannot chat: 400" [ "$(post /api/chat '{"model":"'$B'","messages":[{"role":"user","content":"x"}]}')" = 400 ]
check "malformed JSON: 400 in Ollama's shape" [ "$(post /api/chat '{"model":')" = 400 ]
check "malformed JSON: error string" jqe '.error | type == "string"' "$TMP/body"
check "unknown /api/ path: 404 in Ollama's shape" [ "$(http GET /api/nothing)" = 404 ]
check "unknown /api/ path: error string" jqe '.error | type == "string"' "$TMP/body"
check "OpenAI's routes keep their error shape" [ "$(post /v1/chat/completions '{"model":"nope","messages":[{"role":"user","content":"x"}]}')" = 404 ]
check "OpenAI's error object" err_shape 404 model_not_found

# ---- keep_alive: load, ps, unload ----
post /api/generate '{"model":"'$L'","keep_alive":0}' >/dev/null
check "empty generate with keep_alive 0: done_reason unload" jqe '.done == true and .done_reason == "unload" and .response == ""' "$TMP/body"
http GET /api/ps >/dev/null
check "after the unload /api/ps does not list it" [ "$(jb "[.models[] | select(.name == \"$L:latest\")] | length")" = 0 ]
check "after the unload /v1/models says unloaded" [ "$(curl -s "$(url /v1/models/$L)" | jq -r .state)" = unloaded ]
post /api/generate '{"model":"'$L'","keep_alive":"-1"}' >/dev/null
check "empty generate: done_reason load" jqe '.done == true and .done_reason == "load"' "$TMP/body"
check "after the load /v1/models says loaded" [ "$(curl -s "$(url /v1/models/$L)" | jq -r .state)" = loaded ]
http GET /api/ps >/dev/null
check "/api/ps lists it with size, size_vram 0, details" jqe --arg l "$L:latest" '
    .models[] | select(.name == $l) | .size > 0 and .size_vram == 0 and .details.family == "llama"' "$TMP/body"
check "keep_alive -1: expires_at far away" [ "$(jb ".models[] | select(.name == \"$L:latest\") | .expires_at[:4]")" = 9999 ]
post /api/chat '{"model":"'$L'","messages":[],"keep_alive":"10m"}' >/dev/null
check "empty chat: done_reason load, message" jqe '.done == true and .done_reason == "load" and .message.role == "assistant"' "$TMP/body"
http GET /api/ps >/dev/null
exp=$(jb ".models[] | select(.name == \"$L:latest\") | .expires_at")
secs=$(( $(date -d "$exp" +%s) - $(date +%s) ))
check "keep_alive 10m: expires_at in about 10 minutes ($secs s)" [ "$secs" -gt 540 ] && [ "$secs" -le 601 ]
post /api/generate '{"model":"'$L'","keep_alive":"-5m"}' >/dev/null
http GET /api/ps >/dev/null
check "keep_alive \"-5m\" (any negative duration): never expires" [ "$(jb ".models[] | select(.name == \"$L:latest\") | .expires_at[:4]")" = 9999 ]
post /api/generate '{"model":"'$L'","keep_alive":120}' >/dev/null
http GET /api/ps >/dev/null
exp=$(jb ".models[] | select(.name == \"$L:latest\") | .expires_at")
secs=$(( $(date -d "$exp" +%s) - $(date +%s) ))
check "keep_alive 120 (seconds): expires_at in about 2 minutes ($secs s)" [ "$secs" -gt 100 ] && [ "$secs" -le 121 ]
post /api/chat '{"model":"'$L'","messages":[],"keep_alive":0}' >/dev/null
check "empty chat with keep_alive 0: unload" jqe '.done_reason == "unload"' "$TMP/body"
check "after the chat unload /v1/models says unloaded" [ "$(curl -s "$(url /v1/models/$L)" | jq -r .state)" = unloaded ]
post /api/generate '{"model":"'$L'","prompt":"x","keep_alive":0,"stream":false,"options":{"num_predict":2}}' >/dev/null
check "a generation with keep_alive 0 answers" jqe '.done == true and .eval_count == 2' "$TMP/body"
check "and the model is unloaded after it" poll 10 bash -c "[ \"\$(curl -s '$(url /v1/models/$L)' | jq -r .state)\" = unloaded ]"

# ---- show ----
check "POST /api/show" [ "$(post /api/show '{"model":"'$Q'"}')" = 200 ]
check "show: details, model_info, template, modelfile without the path" jqe '
    .details.family == "qwen2" and .model_info["general.architecture"] == "qwen2"
    and (.model_info["qwen2.context_length"] | type == "number") and (.template | type == "string")
    and (.modelfile | contains("FROM tiny-qwen2-q8_0.gguf")) and (.modelfile | contains("/") | not)
    and (.capabilities | index("completion"))' "$TMP/body"
check "show with the older name field" [ "$(post /api/show '{"name":"'$B':latest"}')" = 200 ]
check "show: bert is an embedding model" jqe '.capabilities == ["embedding"]' "$TMP/body"

# ---- embed, embeddings ----
check "POST /api/embed" [ "$(post /api/embed '{"model":"'$B'","input":["hello world","a b"]}')" = 200 ]
check "embed: two vectors, counters" jqe --arg m "$B" '.model == $m and (.embeddings | length == 2)
    and (.embeddings[0] | length > 8) and (.embeddings[0] | length) == (.embeddings[1] | length)
    and .prompt_eval_count > 0 and .total_duration > 0 and (.load_duration | type == "number")' "$TMP/body"
e0=$(jq -c '.embeddings[0]' "$TMP/body")
post /v1/embeddings '{"model":"'$B'","input":"hello world"}' >/dev/null
check "embed's vector = /v1/embeddings'" [ "$e0" = "$(jq -c '.data[0].embedding' "$TMP/body")" ]
check "POST /api/embed with one string" [ "$(post /api/embed '{"model":"'$B'","input":"hello world"}')" = 200 ]
check "one string: one vector" [ "$(jq -c '.embeddings[0]' "$TMP/body")" = "$e0" ]
check "POST /api/embeddings" [ "$(post /api/embeddings '{"model":"'$B':latest","prompt":"hello world"}')" = 200 ]
check "embeddings: {\"embedding\": [...]} the same vector" [ "$(jq -c '.embedding' "$TMP/body")" = "$e0" ]
check "embed on a model that does not embed: 400" [ "$(post /api/embed '{"model":"'$L'","input":"x"}')" = 400 ]
check "embed without input: 400 in Ollama's shape" [ "$(post /api/embed '{"model":"'$B'"}')" = 400 ]
check "embed error: string" jqe '.error | type == "string"' "$TMP/body"

# ---- a client that leaves a stream cancels its generation ----
before=$(metric 'frugal_generations_total{model="'$L'",finish="cancelled"}')
curl -s -N -m 30 "$(url /api/generate)" -d '{"model":"'$L'","prompt":"x","options":{"num_predict":1900,"temperature":1}}' | head -c 1 >/dev/null
cancelled() { [ "$(metric 'frugal_generations_total{model="'$L'",finish="cancelled"}')" -gt "${before:-0}" ] 2>/dev/null; }
check "a stream whose client left is cancelled" poll 20 cancelled

# ---- the npm client ----
PORT=$PORT run_node ollama.test.mjs

# ---- API keys apply; their 401 in Ollama's shape ----
start keyed --models "$dir" --api-key sekrit || finish
check "keyed server: /api/tags without the key: 401" [ "$(http GET /api/tags)" = 401 ]
check "401 in Ollama's shape" jqe '.error | type == "string"' "$TMP/body"
check "keyed server: with the key: 200" [ "$(http GET /api/tags -H 'Authorization: Bearer sekrit')" = 200 ]
check "keyed server: GET / needs no key" [ "$(http GET /)" = 200 ]

# ---- busy: 503 with Retry-After, in Ollama's shape ----
start busy --models "$dir" --ctx 8192 --parallel 1 --queue 1 || finish
# (the two that hold the slot and the queue ignore end-of-generation tokens,
# which a random model may pick early, through the OpenAI route)
long='{"model":"'$L'","prompt":"x","max_tokens":8000,"ignore_eos":true,"stream":true}'
curl -s -N -m 60 "$(url /v1/completions)" -d "$long" >/dev/null &
c1=$!
poll 10 bash -c "curl -s '$(url /v1/models/$L)' | jq -e '.in_flight >= 1' >/dev/null"
curl -s -N -m 60 "$(url /v1/completions)" -d "$long" >/dev/null &
c2=$!
sleep 0.3
st=$(post /api/generate '{"model":"'$L'","prompt":"x","stream":false,"options":{"num_predict":2}}')
check "slot and queue full: 503 (got $st)" [ "$st" = 503 ]
check "503 has Retry-After" [ -n "$(header Retry-After)" ]
check "503 in Ollama's shape" jqe '(.error | type == "string") and (keys == ["error"])' "$TMP/body"
kill "$c1" "$c2" 2>/dev/null
wait "$c1" "$c2" 2>/dev/null
finish
