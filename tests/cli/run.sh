#!/usr/bin/env bash
# Black-box tests of the frugal binary: real files in, stdout/stderr/exit
# codes out.  Ends with "N passed, N failed".
set -u
BIN=${FRUGAL_BIN:-build/frugal}
TD=${FRUGAL_TESTDATA:-../shared/testdata}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }

M=$TD/models/tiny-llama-q8_0.gguf

# run: prints text, timings on stderr, exit 0
"$BIN" run -m "$M" -p "Once upon a time" -n 16 --seed 1 >"$TMP/out" 2>"$TMP/err"; rc=$?
check "run exits 0 (rc $rc: $(cat "$TMP/err"))" [ $rc -eq 0 ]
check "run prints text" [ -s "$TMP/out" ]
check "run prints tok/s on stderr" grep -q "tok/s" "$TMP/err"

# same seed, same text; greedy ids are reproducible
"$BIN" run -m "$M" -p "Once upon a time" -n 16 --seed 1 >"$TMP/out2" 2>/dev/null
check "same seed gives the same text" cmp -s "$TMP/out" "$TMP/out2"

# --print-ids at temp 0 reproduces llama.cpp's greedy tokens (f32 model, first
# three steps, all above the f32 near-tie margin of 0.05: 0.72, 1.98, 0.09)
want=$(python3 -c "import json;d=json.load(open('$TD/refs/tiny-llama-f32.json'));print(' '.join(map(str,d['cases'][0]['greedy'][:3])))")
got=$("$BIN" run -m "$TD/models/tiny-llama-f32.gguf" -p "Once upon a time" -n 3 --temp 0 --print-ids 2>/dev/null)
check "greedy ids match llama.cpp (got '$got', want '$want')" [ "$got" = "$want" ]

# --logits-out writes n_vocab float32 close to llama.cpp's
"$BIN" run -m "$TD/models/tiny-llama-f32.gguf" -p "Once upon a time" -n 0 --logits-out "$TMP/logits.f32" 2>/dev/null
check "logits file has 8192 floats" [ "$(stat -c %s "$TMP/logits.f32" 2>/dev/null)" = 32768 ]
cos=$(python3 - "$TMP/logits.f32" "$TD/refs/tiny-llama-f32.p0.logits.f32" <<'PY'
import struct, sys, math
a = open(sys.argv[1], 'rb').read(); b = open(sys.argv[2], 'rb').read()
if len(a) != len(b): print(0); sys.exit()
x = struct.unpack('<%df' % (len(a) // 4), a); y = struct.unpack('<%df' % (len(b) // 4), b)
d = sum(p * q for p, q in zip(x, y)); n = math.sqrt(sum(p * p for p in x) * sum(q * q for q in y))
print(d / n if n else 0)
PY
)
check "logits cosine vs llama.cpp >= 0.99999 (got $cos)" python3 -c "import sys; sys.exit(0 if float('$cos') >= 0.99999 else 1)"

# tokenize: the reference tokens of the model's first prompt
want=$(python3 -c "import json;d=json.load(open('$TD/refs/tiny-llama-q8_0.json'));print(' '.join(map(str,d['cases'][1]['tokens'])))")
prompt=$(python3 -c "import json;d=json.load(open('$TD/refs/tiny-llama-q8_0.json'));print(d['cases'][1]['prompt'])")
got=$("$BIN" tokenize -m "$M" --add-special "$prompt" 2>&1)
check "tokenize matches llama.cpp (got '$got')" [ "$got" = "$want" ]
printf '%s' "$prompt" >"$TMP/prompt.txt"
got=$("$BIN" tokenize -m "$M" --add-special --file "$TMP/prompt.txt" 2>&1)
check "tokenize --file matches" [ "$got" = "$want" ]

# inspect: metadata and tensors
"$BIN" inspect "$M" >"$TMP/inspect" 2>&1; rc=$?
check "inspect exits 0" [ $rc -eq 0 ]
check "inspect shows the architecture" grep -q 'general.architecture.*"llama"' "$TMP/inspect"
check "inspect shows a tensor row" grep -Eq 'token_embd.weight +q8_0 +\[256, 8192\]' "$TMP/inspect"

# a truncated copy: one error line, non-zero exit
head -c 3000000 "$M" >"$TMP/trunc.gguf"
"$BIN" run -m "$TMP/trunc.gguf" -p "hello" >"$TMP/out" 2>"$TMP/err"; rc=$?
check "truncated model exits non-zero" [ $rc -ne 0 ]
check "truncated model prints one error line ($(cat "$TMP/err"))" [ "$(wc -l <"$TMP/err")" -eq 1 ]
check "the error names the file" grep -q "trunc.gguf" "$TMP/err"

# missing file, bad option: errors, not crashes
"$BIN" run -m "$TMP/none.gguf" -p hi >/dev/null 2>"$TMP/err"; rc=$?
check "missing model exits non-zero with one line" [ $rc -ne 0 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ]
"$BIN" run -m "$M" -p hi --top-k x >/dev/null 2>"$TMP/err"; rc=$?
check "bad option value exits 2" [ $rc -eq 2 ]

# mkmodel: a tiny random model that loads and runs
"$BIN" mkmodel --arch llama --shape tiny --type q4_0 "$TMP/demo.gguf" 2>"$TMP/err"; rc=$?
check "mkmodel exits 0 ($(cat "$TMP/err"))" [ $rc -eq 0 ]
"$BIN" run -m "$TMP/demo.gguf" -p "Hello world" -n 8 >"$TMP/out" 2>"$TMP/err"; rc=$?
check "run on the mkmodel model exits 0 ($(cat "$TMP/err"))" [ $rc -eq 0 ]
"$BIN" mkmodel --arch qwen2 --shape tiny --type f16 --vocab "$TD/vocab/ggml-vocab-gpt-2.gguf" "$TMP/q.gguf" 2>"$TMP/err"; rc=$?
check "mkmodel qwen2 with a copied vocab exits 0 ($(cat "$TMP/err"))" [ $rc -eq 0 ]
"$BIN" run -m "$TMP/q.gguf" -p "Hello world" -n 8 --chat >"$TMP/out" 2>"$TMP/err"; rc=$?
check "chat run on qwen2 mkmodel exits 0 ($(cat "$TMP/err"))" [ $rc -eq 0 ]
"$BIN" mkmodel --arch mamba --shape tiny "$TMP/x.gguf" 2>/dev/null; rc=$?
check "mkmodel rejects an unknown arch" [ $rc -eq 2 ]

# embed: one JSON vector per line; the first has the reference's dimension
# and cosine >= 0.999 with llama.cpp's embedding of refs case 0
B=$TD/models/tiny-bert-q8_0.gguf
t0=$(python3 -c "import json;d=json.load(open('$TD/refs/tiny-bert-q8_0.json'));print(d['cases'][0]['text'])")
t1=$(python3 -c "import json;d=json.load(open('$TD/refs/tiny-bert-q8_0.json'));print(d['cases'][1]['text'])")
"$BIN" embed -m "$B" --threads 2 "$t0" "$t1" >"$TMP/embd" 2>"$TMP/err"; rc=$?
check "embed exits 0 ($(cat "$TMP/err"))" [ $rc -eq 0 ]
check "embed prints one line per text" [ "$(wc -l <"$TMP/embd")" -eq 2 ]
res=$(python3 - "$TMP/embd" "$TD/refs/tiny-bert-q8_0.json" <<'PY'
import json, math, sys
lines = open(sys.argv[1]).read().splitlines()
ref = json.load(open(sys.argv[2]))['cases']
out = []
for i in range(2):
    v = json.loads(lines[i]); w = ref[i]['embedding']
    if len(v) != len(w): print("dim %d != %d" % (len(v), len(w))); sys.exit()
    d = sum(a * b for a, b in zip(v, w)); n = math.sqrt(sum(a * a for a in v) * sum(b * b for b in w))
    out.append(d / n if n else 0)
print("%.6f %.6f" % tuple(out))
PY
)
check "embed cosine vs llama.cpp >= 0.999 (got $res)" python3 -c "import sys; c=[float(x) for x in '$res'.split()]; sys.exit(0 if len(c) == 2 and min(c) >= 0.999 else 1)"
"$BIN" embed -m "$M" "hello" >/dev/null 2>"$TMP/err"; rc=$?
check "embed refuses a decoder with one line" [ $rc -ne 0 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ]

# rerank: "index score" lines, best first, in the reference's order
R=$TD/models/tiny-bert-rerank-q8_0.gguf
python3 -c "import json;d=json.load(open('$TD/refs/tiny-bert-rerank-q8_0.json'))['cases'][0];print(d['query']);[print(x) for x in d['documents']]" >"$TMP/rr"
want=$(python3 -c "import json;d=json.load(open('$TD/refs/tiny-bert-rerank-q8_0.json'))['cases'][0];s=d['scores'];print(' '.join(str(i) for i in sorted(range(len(s)), key=lambda i: -s[i])))")
mapfile -t rr <"$TMP/rr"
"$BIN" rerank -m "$R" --query "${rr[0]}" --threads 2 "${rr[@]:1}" >"$TMP/rank" 2>"$TMP/err"; rc=$?
check "rerank exits 0 ($(cat "$TMP/err"))" [ $rc -eq 0 ]
got=$(awk '{printf "%s%s", (NR > 1 ? " " : ""), $1}' "$TMP/rank")
check "rerank order matches llama.cpp (got '$got', want '$want')" [ "$got" = "$want" ]
check "rerank prints index and score" grep -Eq '^[0-9]+ -?[0-9]+\.[0-9]+$' "$TMP/rank"
"$BIN" rerank -m "$B" --query q doc >/dev/null 2>"$TMP/err"; rc=$?
check "rerank refuses an embedding model" [ $rc -ne 0 ] && grep -q "not a reranker" "$TMP/err"

# mkmodel: a MiniLM-L6-shaped bert with the bert-bge vocabulary embeds; a
# reranker variant reranks; a generated vocabulary works too
"$BIN" mkmodel --arch bert --shape minilm-l6 --type q8_0 --vocab "$TD/vocab/ggml-vocab-bert-bge.gguf" "$TMP/minilm.gguf" 2>"$TMP/err"; rc=$?
check "mkmodel bert minilm-l6 exits 0 ($(cat "$TMP/err"))" [ $rc -eq 0 ]
"$BIN" embed -m "$TMP/minilm.gguf" "Hello world" "A second sentence." >"$TMP/embd" 2>"$TMP/err"; rc=$?
check "embed on the mkmodel bert exits 0 ($(cat "$TMP/err"))" [ $rc -eq 0 ]
dims=$(python3 -c "import json,sys;print(' '.join(str(len(json.loads(l))) for l in open('$TMP/embd')))")
check "mkmodel bert gives two 384-dim vectors (got '$dims')" [ "$dims" = "384 384" ]
"$BIN" mkmodel --arch bert --shape minilm-l6 --type q8_0 --pooling rank "$TMP/rr.gguf" 2>"$TMP/err"; rc=$?
check "mkmodel bert --pooling rank exits 0 ($(cat "$TMP/err"))" [ $rc -eq 0 ]
"$BIN" rerank -m "$TMP/rr.gguf" --query "a question" "one" "two" "three" >"$TMP/rank" 2>"$TMP/err"; rc=$?
check "rerank on the mkmodel reranker exits 0 with 3 lines ($(cat "$TMP/err"))" [ $rc -eq 0 ] && [ "$(wc -l <"$TMP/rank")" -eq 3 ]
"$BIN" bench-embed -m "$TMP/minilm.gguf" --batch 4 --words 8 -r 1 -t 2 >"$TMP/bench" 2>"$TMP/err"; rc=$?
check "bench-embed exits 0 ($(cat "$TMP/err"))" [ $rc -eq 0 ]
check "bench-embed prints the x1 and x4 cases" grep -q "embed x4" "$TMP/bench"

# nomic-bert (fused QKV, RoPE, gated FFN) from mkmodel embeds too
"$BIN" mkmodel --arch nomic-bert --shape tiny --type f16 "$TMP/nomic.gguf" 2>"$TMP/err"; rc=$?
check "mkmodel nomic-bert exits 0 ($(cat "$TMP/err"))" [ $rc -eq 0 ]
"$BIN" embed -m "$TMP/nomic.gguf" --pooling cls "Hello world" >"$TMP/embd" 2>"$TMP/err"; rc=$?
check "embed on the mkmodel nomic-bert exits 0 ($(cat "$TMP/err"))" [ $rc -eq 0 ] && [ "$(wc -l <"$TMP/embd")" -eq 1 ]

echo "cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
