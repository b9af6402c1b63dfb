#!/usr/bin/env bash
# shapes.sh — the rest of OpenAI's request shapes on /v1/completions and
# /v1/chat/completions (gen_shapes.c), with curl on tiny-llama-q8_0
# (--parallel 4 --ctx 256 --log-level debug), then shapes.test.mjs (the
# openai@6 client and LangChain's OpenAI.generate).
#   - prompt as an array of strings / of token arrays: one choice per
#     prompt, index in order, each the text that prompt alone gives at
#     temperature 0; usage sums; an array of ints stays one prompt
#   - n = 3 with a seed: 3 choices, index 0..2, distinct texts, choice i
#     the text the same prompt alone gives with seed + i (the prompt's KV
#     copied to the other slots is the KV a fresh prefill makes);
#     usage.prompt_tokens counted once; 2 prompts × n 2 = 4 choices
#     grouped by prompt; n = 5 over 4 slots: 400 naming n and 4
#   - a chat stream with n = 2: each index starts with the role alone
#     ({"role":"assistant","content":""}), then content-only deltas, one
#     finish per index; each index's joined text is the non-streamed
#     choice of the same seed
#   - echo: the prompt precedes the completion; with logprobs, each
#     token's text_offset points at it in the text, the first token's
#     logprob is null and the others are the prompt tokens' own:
#     prompt token i's equals the logprob of that token when it is forced
#     (logit_bias 100) after the prompt's first i tokens
#   - system_fingerprint fp_ + 10 hex in replies and every chunk, the same
#     for two requests; ids cmpl-/chatcmpl- + 24 characters, all different,
#     also after a restart
#   - a prompt over the context: 400 context_length_exceeded with OpenAI's
#     message (prompt and messages), max_completion_tokens honoured and
#     winning over max_tokens, an unknown field accepted and named in a
#     debug log line
SUITE=shapes
. "$(dirname "$0")/lib.sh"

M=tiny-llama-q8_0
dir=$(models_dir models $M)
start shapes --models "$dir" --ctx 256 --parallel 4 --log-level debug || finish
C=/v1/completions CC=/v1/chat/completions
ids_seen=$TMP/ids

# comp JSON : POST /v1/completions; the body in $TMP/body; status printed
comp() { post $C "{\"model\": \"$M\", $1}"; }
text_of() { jq -r ".choices[$1].text" "$TMP/body"; }
keep_id() { jb .id >>"$ids_seen"; }
matches() { [[ $1 =~ $2 ]]; }
jqs() { jq -se "$@" >/dev/null 2>&1; }
jqn() { jq -ne "$@" >/dev/null 2>&1; }

# ---- several prompts ----
P1="The quick brown fox" P2="Once upon a time"
s=$(comp "\"prompt\": \"$P1\", \"max_tokens\": 8, \"temperature\": 0"); keep_id
a1=$(text_of 0); u1=$(jb .usage.prompt_tokens); g1=$(jb .usage.completion_tokens)
s=$(comp "\"prompt\": \"$P2\", \"max_tokens\": 8, \"temperature\": 0"); keep_id
a2=$(text_of 0); u2=$(jb .usage.prompt_tokens); g2=$(jb .usage.completion_tokens)
s=$(comp "\"prompt\": [\"$P1\", \"$P2\"], \"max_tokens\": 8, \"temperature\": 0"); keep_id
check "two prompts: 200 (got $s)" [ "$s" = 200 ]
check "two prompts: two choices, index 0 and 1" jqe '[.choices[].index] == [0, 1]' "$TMP/body"
check "two prompts: choice 0 is prompt 0's answer" [ "$(text_of 0)" = "$a1" ]
check "two prompts: choice 1 is prompt 1's answer" [ "$(text_of 1)" = "$a2" ]
check "two prompts: usage.prompt_tokens sums ($u1 + $u2)" [ "$(jb .usage.prompt_tokens)" = $((u1 + u2)) ]
check "two prompts: usage.completion_tokens sums" [ "$(jb .usage.completion_tokens)" = $((g1 + g2)) ]
check "two prompts: total_tokens" [ "$(jb .usage.total_tokens)" = $((u1 + u2 + g1 + g2)) ]
T1=$("$BIN" tokenize -m "$MODELS/$M.gguf" --add-special "$P1" 2>/dev/null | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
check "frugal tokenize gives token ids ($T1)" matches "$T1" '^[0-9]+(,[0-9]+)+$'
s=$(comp "\"prompt\": [[$T1], [$T1]], \"max_tokens\": 8, \"temperature\": 0")
check "two token-array prompts: 200 and two choices (got $s)" jqe '[.choices[].index] == [0, 1]' "$TMP/body"
check "token-array prompt 0 = the string prompt's answer" [ "$(text_of 0)" = "$a1" ]
check "token-array prompt 1 too" [ "$(text_of 1)" = "$a1" ]
s=$(comp "\"prompt\": [$T1], \"max_tokens\": 8, \"temperature\": 0")
check "an array of ints is one prompt: one choice, the same answer" \
    jqe '(.choices | length) == 1 and .choices[0].text == $t' "$TMP/body" --arg t "$a1"
s=$(comp '"prompt": ["a", 5], "max_tokens": 2')
check "a prompt array mixing strings and numbers: 400 param prompt (got $s)" \
    jqe '.error.param == "prompt" and (.error.message | contains("prompt[1]"))' "$TMP/body"

# ---- n ----
P3="Hello there my friend"
s=$(comp "\"prompt\": \"$P3\", \"max_tokens\": 8, \"seed\": 7, \"n\": 3"); keep_id
check "n 3: 200 (got $s)" [ "$s" = 200 ]
check "n 3: three choices, index 0, 1, 2" jqe '[.choices[].index] == [0, 1, 2]' "$TMP/body"
check "n 3: three different texts" jqe '[.choices[].text] | unique | length == 3' "$TMP/body"
cp "$TMP/body" "$TMP/n3.json"
up=$(jb .usage.prompt_tokens) ug=$(jb .usage.completion_tokens)
for i in 0 1 2; do
    s=$(comp "\"prompt\": \"$P3\", \"max_tokens\": 8, \"seed\": $((7 + i))")
    want=$(jq -r ".choices[$i].text" "$TMP/n3.json")
    check "n 3: choice $i = the prompt alone with seed $((7 + i)) (shared KV = fresh prefill)" [ "$(text_of 0)" = "$want" ]
    [ "$i" = 0 ] && p1=$(jb .usage.prompt_tokens)
done
check "n 3: prompt tokens counted once ($up = $p1)" [ "$up" = "$p1" ]
check "n 3: completion tokens summed (24 at most, more than 8: $ug)" [ "$ug" -gt 8 ] && [ "$ug" -le 24 ]
s=$(comp "\"prompt\": [\"$P1\", \"$P2\"], \"max_tokens\": 8, \"temperature\": 0, \"n\": 2")
check "2 prompts × n 2: choices 0..3, prompt 0's first" \
    jqe '[.choices[].index] == [0,1,2,3] and ([.choices[].text] == [$a, $a, $b, $b])' "$TMP/body" --arg a "$a1" --arg b "$a2"
s=$(comp "\"prompt\": \"x\", \"n\": 5")
check "n 5 over 4 slots: 400 (got $s)" [ "$s" = 400 ]
check "n 5: param n, the limit named" jqe '.error.param == "n" and (.error.message | contains("at most 4"))' "$TMP/body"
s=$(comp "\"prompt\": \"x\", \"n\": 0")
check "n 0: 400 param n (got $s)" jqe '.error.param == "n"' "$TMP/body"

# ---- a chat stream with n = 2 ----
CHAT="\"model\": \"$M\", \"messages\": [{\"role\": \"user\", \"content\": \"Tell me a story\"}], \"max_tokens\": 10, \"seed\": 3, \"n\": 2"
s=$(post $CC "{$CHAT}")
cp "$TMP/body" "$TMP/chat2.json"
check "chat n 2: two choices" jqe '[.choices[].index] == [0, 1] and ([.choices[].message.role] == ["assistant", "assistant"])' "$TMP/chat2.json"
curl -sN "$(url $CC)" -d "{$CHAT, \"stream\": true, \"stream_options\": {\"include_usage\": true}}" >"$TMP/s2"
sse_events "$TMP/s2" >"$TMP/s2.json"
for i in 0 1; do
    check "stream n 2: index $i's first chunk is the role alone" \
        jqs --argjson i "$i" '[.[] | .choices[] | select(.index == $i)][0] | .delta == {"role": "assistant", "content": ""} and .finish_reason == null' "$TMP/s2.json"
    check "stream n 2: index $i's later chunks carry no role" \
        jqs --argjson i "$i" '[.[] | .choices[] | select(.index == $i)][1:] | all(.delta.role == null)' "$TMP/s2.json"
    check "stream n 2: index $i has one finish" \
        jqs --argjson i "$i" '[.[] | .choices[] | select(.index == $i and .finish_reason != null)] | length == 1' "$TMP/s2.json"
    got=$(jq -sj --argjson i "$i" '.[] | .choices[] | select(.index == $i) | .delta.content // ""' "$TMP/s2.json")
    want=$(jq -r ".choices[$i].message.content" "$TMP/chat2.json")
    check "stream n 2: index $i reassembled = the non-streamed choice ($got)" [ "$got" = "$want" ]
done
check "stream n 2: usage counts the prompt once" \
    jqs --argjson p "$(jq .usage.prompt_tokens "$TMP/chat2.json")" '[.[] | select(.usage != null)][0].usage.prompt_tokens == $p' "$TMP/s2.json"
check "every chunk has the system_fingerprint" jqs 'all(.system_fingerprint | test("^fp_[0-9a-f]{10}$"))' "$TMP/s2.json"
check "every chunk has the one chatcmpl- id" jqs '(map(.id) | unique | length == 1) and (.[0].id | test("^chatcmpl-[A-Za-z0-9]{24}$"))' "$TMP/s2.json"
jq -rs '.[0].id' "$TMP/s2.json" >>"$ids_seen"
curl -sN "$(url $CC)" -d "{\"model\": \"$M\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 3, \"stream\": true}" >"$TMP/s1"
check "a chat stream's first chunk: the role alone, as OpenAI's" \
    jqs '.[0].choices == [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]' <(sse_events "$TMP/s1")

# ---- echo ----
s=$(comp "\"prompt\": \"$P1\", \"max_tokens\": 4, \"temperature\": 0"); plain4=$(text_of 0)
s=$(comp "\"prompt\": \"$P1\", \"max_tokens\": 4, \"temperature\": 0, \"echo\": true")
check "echo: the prompt, then the completion ($(text_of 0))" [ "$(text_of 0)" = "$P1$plain4" ]
s=$(comp "\"prompt\": \"$P1\", \"max_tokens\": 4, \"temperature\": 0, \"logprobs\": 1")
cp "$TMP/body" "$TMP/noecho.json"
s=$(comp "\"prompt\": \"$P1\", \"max_tokens\": 4, \"temperature\": 0, \"logprobs\": 1, \"echo\": true")
cp "$TMP/body" "$TMP/echo.json"
np=$(jq .usage.prompt_tokens "$TMP/echo.json")
check "echo + logprobs: prompt tokens + generated tokens ($np + 4)" jqe ".choices[0].logprobs.tokens | length == $((np + 4))" "$TMP/echo.json"
check "echo + logprobs: the first token's logprob and top are null" \
    jqe '.choices[0].logprobs.token_logprobs[0] == null and .choices[0].logprobs.top_logprobs[0] == null' "$TMP/echo.json"
check "echo + logprobs: the prompt's other tokens have logprobs <= 0" \
    jqe '.choices[0].logprobs.token_logprobs[1:$n] | all(type == "number" and . <= 0)' "$TMP/echo.json" --argjson n "$np"
check "echo + logprobs: text_offset of the first generated token = the prompt's length (${#P1})" \
    jqe ".choices[0].logprobs.text_offset[$np] == ${#P1}" "$TMP/echo.json"
check "echo + logprobs: each prompt token's text is at its text_offset (ASCII: bytes = characters)" \
    jqe '.choices[0] | .text as $t | .logprobs | [.tokens[1:$n], .text_offset[1:$n]] | transpose | all(.[0] as $k | $t[.[1]:] | startswith($k) or startswith($k | ltrimstr(" ")))' "$TMP/echo.json" --argjson n "$np"
check "echo + logprobs: the generated tokens' logprobs are those without echo" \
    jqn --slurpfile a "$TMP/echo.json" --slurpfile b "$TMP/noecho.json" \
    '[$a[0].choices[0].logprobs.token_logprobs[-4:], $b[0].choices[0].logprobs.token_logprobs] | transpose | all(((.[0] - .[1]) | fabs) < 1e-4)'
IFS=, read -r -a TT <<<"$T1"
for i in 1 $((${#TT[@]} - 1)); do
    pre=$(IFS=,; echo "${TT[*]:0:$i}")
    s=$(comp "\"prompt\": [$pre], \"max_tokens\": 1, \"temperature\": 0, \"logprobs\": 1, \"logit_bias\": {\"${TT[$i]}\": 100}")
    want=$(jb '.choices[0].logprobs.token_logprobs[0]')
    got=$(jq ".choices[0].logprobs.token_logprobs[$i]" "$TMP/echo.json")
    check "echo: prompt token $i's logprob ($got) = that token forced after the first $i ($want)" \
        awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; exit (b != "" && d < 1e-4 && d > -1e-4) ? 0 : 1 }'
done
curl -sN "$(url $C)" -d "{\"model\": \"$M\", \"prompt\": \"$P1\", \"max_tokens\": 4, \"temperature\": 0, \"echo\": true, \"stream\": true}" >"$TMP/se"
check "echo streamed: the prompt comes first, then the completion" [ "$(sse_text "$TMP/se")" = "$(jq -r .choices[0].text "$TMP/echo.json")" ]

# ---- fingerprint, ids ----
s=$(comp '"prompt": "a", "max_tokens": 1'); keep_id
fp1=$(jb .system_fingerprint)
s=$(post $CC "{\"model\": \"$M\", \"messages\": [{\"role\": \"user\", \"content\": \"a\"}], \"max_tokens\": 1}"); keep_id
check "system_fingerprint: fp_ and 10 hex digits ($fp1)" matches "$fp1" '^fp_[0-9a-f]{10}$'
check "system_fingerprint: the same in a chat reply" [ "$(jb .system_fingerprint)" = "$fp1" ]
check "chat id: chatcmpl- and 24 characters ($(jb .id))" matches "$(jb .id)" '^chatcmpl-[A-Za-z0-9]{24}$'
check "ids: all different ($(wc -l <"$ids_seen"))" [ "$(sort "$ids_seen" | uniq -d | wc -l)" = 0 ]

# ---- errors and options ----
long=$(python3 -c "print('the quick brown fox jumps over the lazy dog ' * 40)")
s=$(comp "\"prompt\": \"$long\"")
check "a prompt over the context: 400 (got $s)" [ "$s" = 400 ]
check "... code context_length_exceeded, param prompt" jqe '.error.code == "context_length_exceeded" and .error.param == "prompt" and .error.type == "invalid_request_error"' "$TMP/body"
check "... OpenAI's message ($(jb .error.message))" jqe '.error.message | test("^This model.s maximum context length is 256 tokens. However, your prompt resulted in [0-9]+ tokens. Please reduce the length of the prompt.$")' "$TMP/body"
s=$(post $CC "{\"model\": \"$M\", \"messages\": [{\"role\": \"user\", \"content\": \"$long\"}]}")
check "a chat over the context: 400 param messages (got $s)" jqe '.error.code == "context_length_exceeded" and .error.param == "messages" and (.error.message | contains("your messages resulted in"))' "$TMP/body"
s=$(comp '"prompt": "a", "max_completion_tokens": 3, "ignore_eos": true')
check "max_completion_tokens 3: 3 tokens" [ "$(jb .usage.completion_tokens)" = 3 ]
s=$(comp '"prompt": "a", "max_tokens": 6, "max_completion_tokens": 2, "ignore_eos": true')
check "max_completion_tokens wins over max_tokens" [ "$(jb .usage.completion_tokens)" = 2 ]
s=$(comp '"prompt": "a", "max_tokens": 1, "frobnicate_level": 11')
check "an unknown field: 200 (got $s)" [ "$s" = 200 ]
check "... named in a debug log line" grep -q "ignoring the unknown field 'frobnicate_level'" "$SRV_LOG"

# ---- the clients ----
PORT=$PORT MODELS_DIR=$dir run_node shapes.test.mjs

# ---- ids across a restart ----
stop_server
start shapes2 --models "$dir" --ctx 256 --parallel 4 || finish
for i in 1 2 3; do s=$(comp '"prompt": "a", "max_tokens": 1'); jb .id; done >"$TMP/ids2"
check "after a restart: new ids, none seen before" [ -z "$(comm -12 <(sort -u "$ids_seen") <(sort -u "$TMP/ids2"))" ]
check "after a restart: three ids, cmpl- and 24 characters" [ "$(grep -cE '^cmpl-[A-Za-z0-9]{24}$' "$TMP/ids2")" = 3 ]
check "after a restart: the same fingerprint (same build, same file)" [ "$(jb .system_fingerprint)" = "$fp1" ]
finish
