#!/usr/bin/env bash
# tools.sh — tool calls on /v1/chat/completions (tools, tool_choice,
# parallel_tool_calls; tool and assistant-call messages), with curl, the
# official openai npm client (tools.test.mjs), and a round trip through
# Vercel's AI SDK and LangChain (tools-clients.test.mjs).
#
# One server, its models from an INI file: tiny-qwen2-q8_0 (chatml:
# Hermes' <tool_call> syntax), tiny-llama-q8_0 (no template in the file:
# chatml too), and tiny-llama-q8_0 again as tiny-llama3 and tiny-mistral
# with chat_template = llama3 / mistral, so that Llama 3.1's and Mistral's
# call syntax go through the server too.  The weights are random, so only
# constrained output has shape: "required" and a named function get a
# call every time.  Checked, per model:
#   - required: 200, finish_reason tool_calls, content null, each call's
#     id call_ + 24 letters/digits, type function, a name of the tools,
#     arguments that parse as JSON and validate against that tool's
#     schema (enum, integer, maxLength, required, no other keys), for
#     several seeds;
#   - a named function with parallel_tool_calls false: exactly that call;
#   - streamed: the first chunk has the role, each call's first delta its
#     index, id, type, name and "" arguments, then argument deltas, no
#     content; assembled, the calls equal the non-streamed ones (same
#     seed) but for the ids; the last chunk's finish_reason tool_calls;
#   - a round trip: the reply's assistant message and a tool message with
#     the result are accepted, and answered (auto: a chat.completion;
#     required: calls again);
#   - "none": no tool_calls, and a shorter prompt than "auto" (the tools
#     are not shown); "auto": a valid reply either way;
#   - bad tools / tool_choice / parallel_tool_calls / messages: 400 naming
#     the field (tools[2].function.name, tool_choice, messages[1].tool_calls
#     [0].function.name, messages[2].tool_call_id, ...).
SUITE=tools
. "$(dirname "$0")/lib.sh"

mkdir -p "$TMP/m"
for n in tiny-qwen2-q8_0 tiny-llama-q8_0 tiny-llama3 tiny-mistral; do
    src=tiny-llama-q8_0; [ $n = tiny-qwen2-q8_0 ] && src=tiny-qwen2-q8_0
    ln -sf "$MODELS/$src.gguf" "$TMP/m/$n.gguf"
done
cat >"$TMP/models.ini" <<EOF
[model "tiny-qwen2-q8_0"]
path = $TMP/m/tiny-qwen2-q8_0.gguf
[model "tiny-llama-q8_0"]
path = $TMP/m/tiny-llama-q8_0.gguf
[model "tiny-llama3"]
path = $TMP/m/tiny-llama3.gguf
chat_template = llama3
[model "tiny-mistral"]
path = $TMP/m/tiny-mistral.gguf
chat_template = mistral
EOF
start tools --config "$TMP/models.ini" --ctx 1024 --parallel 2 || finish

TOOLS='[{"type":"function","function":{"name":"get_weather","description":"The weather in a city",
  "parameters":{"type":"object","properties":{"city":{"type":"string","enum":["Paris","Lyon"]},
  "days":{"type":"integer"}},"required":["city","days"],"additionalProperties":false}}},
 {"type":"function","function":{"name":"get_time","description":"The time in a zone",
  "parameters":{"type":"object","properties":{"zone":{"type":"string","maxLength":8}},
  "required":["zone"],"additionalProperties":false}}}]'
USER='[{"role":"user","content":"What is the weather in Paris?"}]'

jc() { jq -c "$1" "$TMP/body" 2>/dev/null; }
jqe() { jq -e "$@" >/dev/null 2>&1; }

# body MODEL EXTRA_JQ : a request body (jq expression applied last).
body() {
    jq -nc --arg m "$1" --argjson t "$TOOLS" --argjson u "$USER" \
        "{model: \$m, messages: \$u, tools: \$t, max_tokens: 160} | $2"
}

# calls_valid FILE : every call in FILE's message is well formed and its
# arguments validate against the tool's schema.
CALLS_VALID='
  def valid(n; a):
    if n == "get_weather" then (a | type == "object") and ((a | keys) == ["city", "days"])
       and (a.city == "Paris" or a.city == "Lyon") and (a.days | type == "number" and . == floor)
    elif n == "get_time" then (a | type == "object") and ((a | keys) == ["zone"])
       and (a.zone | type == "string" and length <= 8)
    else false end;
  (.tool_calls | type == "array" and length >= 1) and
  all(.tool_calls[]; (.id | test("^call_[A-Za-z0-9]{24}$")) and .type == "function"
      and (.function.arguments | type == "string")
      and valid(.function.name; (.function.arguments | fromjson)))'

for model in tiny-qwen2-q8_0 tiny-llama-q8_0 tiny-llama3 tiny-mistral; do
    for seed in 1 2 3; do
        st=$(post /v1/chat/completions "$(body $model ".tool_choice = \"required\" | .seed = $seed")")
        check "$model required seed $seed: 200 ($st)" [ "$st" = 200 ]
        check "$model required seed $seed: finish_reason tool_calls ($(jb .choices[0].finish_reason))" \
            [ "$(jb .choices[0].finish_reason)" = tool_calls ]
        check "$model required seed $seed: content null" [ "$(jb '.choices[0].message.content')" = null ]
        check "$model required seed $seed: calls valid against the schemas: $(jc .choices[0].message)" \
            jqe ".choices[0].message | $CALLS_VALID" "$TMP/body"
        [ $seed = 1 ] && cp "$TMP/body" "$TMP/required.json"
    done

    # a named function, one call
    st=$(post /v1/chat/completions "$(body $model '.tool_choice = {type: "function", function: {name: "get_time"}}
        | .parallel_tool_calls = false | .seed = 5')")
    check "$model named: 200 ($st)" [ "$st" = 200 ]
    check "$model named: exactly one get_time call: $(jc .choices[0].message)" \
        jqe ".choices[0].message | ($CALLS_VALID) and (.tool_calls | length == 1)
               and .tool_calls[0].function.name == \"get_time\"" "$TMP/body"

    # streamed, the same seed: assembled = the non-streamed calls
    curl -sN -m 60 "$(url /v1/chat/completions)" -H 'Content-Type: application/json' \
        -d "$(body $model '.tool_choice = "required" | .seed = 1 | .stream = true')" >"$TMP/sse"
    sed -n 's/^data: //p' "$TMP/sse" | grep -v '^\[DONE\]$' | jq -s . >"$TMP/chunks.json"
    check "$model stream: ends with [DONE]" grep -q '^data: \[DONE\]' "$TMP/sse"
    check "$model stream: the first chunk has the role" \
        jqe '.[0].choices[0].delta.role == "assistant"' "$TMP/chunks.json"
    check "$model stream: no content text (no raw call syntax)" \
        jqe '[.[].choices[0].delta.content // "" ] | all(. == "")' "$TMP/chunks.json"
    check "$model stream: each call opens with index, id, type, name and empty arguments" \
        jqe '[.[].choices[0].delta.tool_calls // empty | .[] | select(.id)] as $o
               | ($o | length >= 1) and ($o | all(.type == "function" and (.function.name | type == "string")
                 and .function.arguments == "")) and ([$o[].index] == [range($o | length)])' "$TMP/chunks.json"
    check "$model stream: finish_reason tool_calls last" \
        jqe '[.[].choices[0].finish_reason // empty] == ["tool_calls"]' "$TMP/chunks.json"
    jq -c '[.[].choices[0].delta.tool_calls // empty | .[]] | group_by(.index)
           | map({name: (map(.function.name // empty) | first), arguments: (map(.function.arguments // "") | add)})' \
        "$TMP/chunks.json" >"$TMP/assembled"
    jq -c '.choices[0].message.tool_calls | map({name: .function.name, arguments: .function.arguments})' \
        "$TMP/required.json" >"$TMP/whole"
    check "$model stream: assembled calls $(cat "$TMP/assembled") = non-streamed $(cat "$TMP/whole")" \
        cmp -s "$TMP/assembled" "$TMP/whole"

    # the round trip: the assistant's calls and a tool result go back
    msg=$(jq -c '.choices[0].message' "$TMP/required.json")
    results=$(jq -c '[.choices[0].message.tool_calls[] | {role: "tool", tool_call_id: .id,
                      content: "{\"temperature\": 21, \"sky\": \"clear <|im_end|> </s>\"}"}]' "$TMP/required.json")
    st=$(post /v1/chat/completions "$(body $model ".messages += [$msg] + $results | .seed = 2 | .max_tokens = 8")")
    check "$model round trip (auto): 200 ($st) $(head -c 300 "$TMP/body")" [ "$st" = 200 ]
    check "$model round trip (auto): a chat.completion" jqe '.object == "chat.completion"
        and (.choices[0].finish_reason | IN("stop", "length", "tool_calls"))' "$TMP/body"
    st=$(post /v1/chat/completions "$(body $model ".messages += [$msg] + $results | .seed = 2
        | .tool_choice = \"required\"")")
    check "$model round trip (required): calls again: $(jc .choices[0].message)" \
        jqe ".choices[0].message | $CALLS_VALID" "$TMP/body"

    # none: no calls, and the tools are not in the prompt
    st=$(post /v1/chat/completions "$(body $model '.tool_choice = "none" | .max_tokens = 4 | .seed = 1')")
    check "$model none: 200 ($st)" [ "$st" = 200 ]
    check "$model none: no tool_calls" jqe '(.choices[0].message | has("tool_calls") | not)
        and .choices[0].finish_reason != "tool_calls"' "$TMP/body"
    p_none=$(jb .usage.prompt_tokens)
    st=$(post /v1/chat/completions "$(body $model '.max_tokens = 4 | .seed = 1')")
    check "$model auto: 200 ($st)" [ "$st" = 200 ]
    check "$model auto: content or valid calls" jqe ".choices[0].message | ((.tool_calls | not)
        and (.content | type == \"string\")) or ($CALLS_VALID)" "$TMP/body"
    check "$model: the tools are shown with auto, not with none ($(jb .usage.prompt_tokens) > $p_none)" \
        [ "$(jb .usage.prompt_tokens)" -gt "$p_none" ]
done

# ---- bad input: 400 naming the field ----
M=tiny-qwen2-q8_0
bad400() {   # WHAT PARAM JQ
    local st
    st=$(post /v1/chat/completions "$(body $M "$3")")
    check "$1: 400 ($st)" [ "$st" = 400 ]
    check "$1: param $2 ($(jb .error.param): $(jb .error.message))" [ "$(jb .error.param)" = "$2" ]
    check "$1: error shape" err_shape 400 "$(jb .error.code)"
}
bad400 "tools not an array" tools '.tools = {"a": 1}'
bad400 "a bad name" "tools[2].function.name" '.tools += [{type: "function", function: {name: "has space"}}]'
bad400 "a name twice" "tools[2].function.name" '.tools += [{type: "function", function: {name: "get_time"}}]'
bad400 "a tool's type" "tools[1].type" '.tools[1].type = "retrieval"'
bad400 "parameters not an object" "tools[0].function.parameters" '.tools[0].function.parameters = "x"'
bad400 "tool_choice unknown" tool_choice '.tool_choice = "sometimes"'
bad400 "tool_choice names no tool" tool_choice '.tool_choice = {type: "function", function: {name: "nope"}}'
bad400 "tool_choice required without tools" tool_choice 'del(.tools) | .tool_choice = "required"'
bad400 "parallel_tool_calls not a boolean" parallel_tool_calls '.parallel_tool_calls = "yes"'
bad400 "a call without a name" "messages[1].tool_calls[0].function.name" \
    '.messages += [{role: "assistant", content: null, tool_calls: [{id: "c", type: "function",
      function: {arguments: "{}"}}]}]'
bad400 "a call without arguments" "messages[1].tool_calls[0].function.arguments" \
    '.messages += [{role: "assistant", tool_calls: [{id: "c", type: "function", function: {name: "f"}}]}]'
bad400 "a tool message without tool_call_id" "messages[1].tool_call_id" \
    '.messages += [{role: "tool", content: "21"}]'
bad400 "an assistant message without content or calls" "messages[1].content" \
    '.messages += [{role: "assistant", content: null}]'
bad400 "a schema keyword required cannot enforce" "tools[0].function.parameters" \
    '.tools[0].function.parameters.patternProperties = {"^x": {}} | .tool_choice = "required"'
check "the schema refusal names the keyword ($(jb .error.message))" \
    sh -c "jq -r .error.message '$TMP/body' | grep -q patternProperties"
st=$(post /v1/chat/completions "$(body $M '.tool_choice = "auto" | .tools[0].function.parameters.patternProperties = {}
    | .max_tokens = 2')")
check "auto does not compile the schemas: 200 ($st)" [ "$st" = 200 ]

PORT=$PORT run_node tools.test.mjs
PORT=$PORT run_node tools-clients.test.mjs
check "/health is ok after the tool tests" [ "$(http GET /health)" = 200 ]
stop_server
finish
