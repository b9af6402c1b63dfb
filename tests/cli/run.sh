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

# index: `frugal index` on a data directory with the real tiny-bert (random
# weights: a query that is a document's whole text is its nearest vector)
mkdir -p "$TMP/ixm" "$TMP/docs/notes/deep" "$TMP/docs/.git"
ln -s "$B" "$TMP/ixm/tiny-bert-q8_0.gguf"
IX=(--data "$TMP/ixdata")
printf '# Zebras\n\nZebras graze on the savanna near the river at dawn.\n' >"$TMP/docs/a.md"
printf 'Quantum computers use qubits to explore many states at once.\n' >"$TMP/docs/notes/b.txt"
printf 'Sourdough bread needs a starter, flour, water and patience.\n' >"$TMP/docs/notes/deep/c.markdown"
printf 'Volcanoes erupt when magma rises through the crust.\n' >"$TMP/docs/README"
printf 'Glaciers carve valleys over thousands of years.\n' >"$TMP/docs/notes/e.text"
printf 'hidden text\n' >"$TMP/docs/.hidden.md"
printf 'not indexed\n' >"$TMP/docs/.git/config.md"
printf 'binary\0data\n' >"$TMP/docs/blob"
printf '\xff\xfe bad utf-8\n' >"$TMP/docs/notes/latin1.txt"
printf 'PNG' >"$TMP/docs/picture.png"
head -c 1100000 /dev/zero | tr '\0' 'a' >"$TMP/docs/big.txt"
"$BIN" index add "${IX[@]}" --models "$TMP/ixm" --collection notes --model tiny-bert-q8_0 "$TMP/docs" >"$TMP/ix.out" 2>"$TMP/ix.err"; rc=$?
check "index add with bad files exits 1 (rc $rc: $(head -c 300 "$TMP/ix.err"))" [ $rc -eq 1 ]
check "index add names the binary file" grep -q "docs/blob: not text" "$TMP/ix.err"
check "index add names the file that is not UTF-8" grep -q "latin1.txt: not text" "$TMP/ix.err"
check "index add names the file over 1 MiB" grep -q "big.txt: too big" "$TMP/ix.err"
check "index add creates the collection" grep -q "^created collection notes (model tiny-bert-q8_0" "$TMP/ix.out"
for id in a.md notes/b.txt notes/deep/c.markdown README notes/e.text; do
    check "index add adds $id" grep -q "^added $id (1 chunk" "$TMP/ix.out"
done
check "index add skips hidden files and other extensions" \
    [ "$(grep -c -e hidden -e config.md -e picture "$TMP/ix.out" "$TMP/ix.err" | awk -F: '{s += $2} END {print s}')" -eq 0 ]
check "index add prints the summary ($(tail -1 "$TMP/ix.out"))" \
    grep -q "^8 files: 5 added, 0 replaced, 0 unchanged, 3 failed; 5 chunks" "$TMP/ix.out"
first() { awk 'NR == 2 {print $3}' "$TMP/ix.s"; }
"$BIN" index search "${IX[@]}" --collection notes --mode bm25 qubits >"$TMP/ix.s" 2>"$TMP/ix.err"; rc=$?
check "index search bm25 exits 0 ($(cat "$TMP/ix.err"))" [ $rc -eq 0 ]
check "bm25: the qubits document first (got $(first))" [ "$(first)" = notes/b.txt ]
check "bm25: the table shows the text" grep -q "Quantum computers use qubits" "$TMP/ix.s"
q='Sourdough bread needs a starter, flour, water and patience.'
"$BIN" index search "${IX[@]}" --models "$TMP/ixm" --collection notes --mode vector "$q" >"$TMP/ix.s" 2>"$TMP/ix.err"; rc=$?
check "index search vector exits 0 ($(cat "$TMP/ix.err"))" [ $rc -eq 0 ]
check "vector: the document with that text first (got $(first))" [ "$(first)" = notes/deep/c.markdown ]
FRUGAL_MODELS="$TMP/ixm" "$BIN" index search "${IX[@]}" --collection notes "$q" >"$TMP/ix.s" 2>"$TMP/ix.err"; rc=$?
check "index search hybrid (FRUGAL_MODELS) exits 0 ($(cat "$TMP/ix.err"))" [ $rc -eq 0 ]
check "hybrid: the document with that text first (got $(first))" [ "$(first)" = notes/deep/c.markdown ]
FRUGAL_DATA="$TMP/ixdata" "$BIN" index search --collection notes --mode bm25 --top-k 2 --json magma >"$TMP/ix.s" 2>"$TMP/ix.err"; rc=$?
check "index search --json (FRUGAL_DATA) exits 0 ($(cat "$TMP/ix.err"))" [ $rc -eq 0 ]
check "--json: results, best first, with the metadata path" python3 - "$TMP/ix.s" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
r = d["results"]
ok = 1 <= len(r) <= 2 and r[0]["document_id"] == "README" and r[0]["metadata"]["path"].endswith("docs/README")
ok = ok and "Volcanoes" in r[0]["text"] and "bm25" in r[0]["scores"] and "took_ms" in d
sys.exit(0 if ok else 1)
PY
"$BIN" index search "${IX[@]}" --collection notes --mode bm25 --filter "{\"path\": \"$TMP/docs/a.md\"}" --json zebras qubits >"$TMP/ix.s" 2>&1
check "--filter keeps the matching document only" python3 -c "import json,sys; r=json.load(open('$TMP/ix.s'))['results']; sys.exit(0 if [h['document_id'] for h in r] == ['a.md'] else 1)"
"$BIN" index add "${IX[@]}" --models "$TMP/ixm" --collection notes "$TMP/docs" >"$TMP/ix.out" 2>"$TMP/ix.err"; rc=$?
check "re-adding the tree exits 1 again ($(wc -l <"$TMP/ix.err") failures)" [ $rc -eq 1 ] && [ "$(wc -l <"$TMP/ix.err")" -eq 3 ]
check "re-added files are unchanged" grep -qx "unchanged notes/b.txt" "$TMP/ix.out"
check "re-add summary: 5 unchanged ($(tail -1 "$TMP/ix.out"))" grep -q "^8 files: 0 added, 0 replaced, 5 unchanged, 3 failed" "$TMP/ix.out"
rm "$TMP/docs/blob" "$TMP/docs/big.txt" "$TMP/docs/notes/latin1.txt"
printf 'Quantum computers use qubits; error correction keeps them stable.\n' >"$TMP/docs/notes/b.txt"
"$BIN" index add "${IX[@]}" --models "$TMP/ixm" --collection notes --id-from path "$TMP/docs" >"$TMP/ix.out" 2>"$TMP/ix.err"; rc=$?
check "index add of good files exits 0 ($(cat "$TMP/ix.err"))" [ $rc -eq 0 ]
check "an edited file is replaced" grep -q "^replaced notes/b.txt (1 chunk, 1 embedded)" "$TMP/ix.out"
check "the others are unchanged" grep -q "^unchanged notes/e.text" "$TMP/ix.out"
"$BIN" index add "${IX[@]}" --models "$TMP/ixm" --collection notes "$TMP/docs/a.md" >"$TMP/ix.out" 2>"$TMP/ix.err"; rc=$?
check "a FILE argument keeps its path as the id, a known text is not embedded again ($(cat "$TMP/ix.out" "$TMP/ix.err"))" \
    grep -q "^added $TMP/docs/a.md (1 chunk, 0 embedded)" "$TMP/ix.out"
"$BIN" index add "${IX[@]}" --models "$TMP/ixm" --collection notes --id-from name "$TMP/docs/notes/e.text" >"$TMP/ix.out" 2>&1
check "--id-from name takes the file name" grep -q "^added e.text" "$TMP/ix.out"
"$BIN" index rm "${IX[@]}" --collection notes e.text notes/e.text "$TMP/docs/a.md" >"$TMP/ix.out" 2>"$TMP/ix.err"; rc=$?
check "index rm exits 0 ($(cat "$TMP/ix.err"))" [ $rc -eq 0 ] && [ "$(grep -c "^deleted " "$TMP/ix.out")" -eq 3 ]
"$BIN" index rm "${IX[@]}" --collection notes no-such-doc >/dev/null 2>"$TMP/ix.err"; rc=$?
check "index rm of a missing id exits 1 with one line" [ $rc -eq 1 ] && [ "$(wc -l <"$TMP/ix.err")" -eq 1 ] && grep -q no-such-doc "$TMP/ix.err"
"$BIN" index search "${IX[@]}" --collection notes --mode bm25 --json glaciers >"$TMP/ix.s" 2>&1
check "removed documents are not found ($(head -c 200 "$TMP/ix.s"))" python3 -c "import json,sys; sys.exit(0 if json.load(open('$TMP/ix.s'))['results'] == [] else 1)"
"$BIN" index ls "${IX[@]}" >"$TMP/ix.out" 2>"$TMP/ix.err"; rc=$?
check "index ls exits 0 ($(cat "$TMP/ix.err"))" [ $rc -eq 0 ]
check "index ls shows the model and 4 documents ($(tail -1 "$TMP/ix.out"))" \
    awk '$1 == "notes" && $2 == "tiny-bert-q8_0" && $3 == 256 && $4 == 4 && $5 == 4 {f = 1} END {exit !f}' "$TMP/ix.out"
"$BIN" index ls "${IX[@]}" --collection notes --json >"$TMP/ix.out" 2>&1
check "index ls --json counts" python3 -c "import json,sys; c=json.load(open('$TMP/ix.out'))['data'][0]; sys.exit(0 if (c['name'], c['documents'], c['chunks'], c['dimensions']) == ('notes', 4, 4, 256) and c['text_bytes'] > 0 else 1)"
"$BIN" index check "${IX[@]}" >"$TMP/ix.out" 2>"$TMP/ix.err"; rc=$?
check "index check exits 0 ($(cat "$TMP/ix.out" "$TMP/ix.err"))" [ $rc -eq 0 ] && grep -q "consistent" "$TMP/ix.out"
"$BIN" index check "${IX[@]}" --collection notes >/dev/null 2>&1; rc=$?
check "index check --collection exits 0" [ $rc -eq 0 ]
"$BIN" index add "${IX[@]}" --models "$TMP/ixm" --collection other "$TMP/docs/a.md" >/dev/null 2>"$TMP/ix.err"; rc=$?
check "index add to a missing collection without --model exits 2" [ $rc -eq 2 ] && grep -q "give --model" "$TMP/ix.err"
"$BIN" index add "${IX[@]}" --models "$TMP/ixm" --collection notes --model other-model "$TMP/docs/a.md" >/dev/null 2>"$TMP/ix.err"; rc=$?
check "index add with another model exits 1 naming it ($(cat "$TMP/ix.err"))" [ $rc -eq 1 ] && grep -q "other-model" "$TMP/ix.err"
"$BIN" index search "${IX[@]}" --collection nothing --mode bm25 x >/dev/null 2>"$TMP/ix.err"; rc=$?
check "search of an unknown collection exits 1 with one line ($(cat "$TMP/ix.err"))" [ $rc -eq 1 ] && [ "$(wc -l <"$TMP/ix.err")" -eq 1 ]
ixbad() {   # what, args...: exit 2 and one line
    local what=$1; shift
    "$BIN" index "$@" >/dev/null 2>"$TMP/ix.err"; local rc=$?
    check "index $what exits 2 with one line (rc $rc: $(cat "$TMP/ix.err"))" [ $rc -eq 2 ] && [ "$(wc -l <"$TMP/ix.err")" -eq 1 ]
}
ixbad "without a subcommand: usage" bogus
ixbad "search without --collection" search "${IX[@]}" qubits
ixbad "search without a query" search "${IX[@]}" --collection notes
ixbad "search --mode fuzzy" search "${IX[@]}" --collection notes --mode fuzzy x
ixbad "search --top-k 0" search "${IX[@]}" --collection notes --top-k 0 x
ixbad "add without files" add "${IX[@]}" --collection notes --model tiny-bert-q8_0
ixbad "add --chunk-size x" add "${IX[@]}" --collection notes --chunk-size x "$TMP/docs"
ixbad "rm with ids and --all" rm "${IX[@]}" --collection notes --all a.md
ixbad "ls with an unknown option" ls "${IX[@]}" --frobnicate
ixbad "check with a search option" check "${IX[@]}" --top-k 3
"$BIN" index --help >"$TMP/ix.out" 2>&1; rc=$?
check "index --help exits 0" [ $rc -eq 0 ] && grep -q "index <subcommand>" "$TMP/ix.out"
"$BIN" index rm "${IX[@]}" --collection notes --all >"$TMP/ix.out" 2>"$TMP/ix.err"; rc=$?
check "index rm --all drops the collection ($(cat "$TMP/ix.err"))" [ $rc -eq 0 ] && grep -q "deleted collection notes" "$TMP/ix.out"
"$BIN" index ls "${IX[@]}" --json >"$TMP/ix.out" 2>&1
check "no collection is left" python3 -c "import json,sys; sys.exit(0 if json.load(open('$TMP/ix.out'))['data'] == [] else 1)"

# serve --profile auto --print-config on fake Pi 4, Pi 5 and x86 trees
# (FRUGAL_SYSROOT): the board picks the profile, each line names its
# source, a flag and an INI key beat the profile, nothing is served (exit 0)
fake_board() {  # DIR MODEL|"" CPUS MEM_KB
    mkdir -p "$1/proc/device-tree"
    [ -n "$2" ] && printf '%s\0' "$2" >"$1/proc/device-tree/model"
    : >"$1/proc/cpuinfo"
    for i in $(seq 0 $(($3 - 1))); do printf 'processor\t: %d\n\n' "$i" >>"$1/proc/cpuinfo"; done
    printf 'MemTotal:       %s kB\nMemAvailable:   1000000 kB\n' "$4" >"$1/proc/meminfo"
}
fake_board "$TMP/pi4" "Raspberry Pi 4 Model B Rev 1.4" 4 7997928
fake_board "$TMP/pi5" "Raspberry Pi 5 Model B Rev 1.0" 4 16582080
fake_board "$TMP/x86" "" 16 24684084
FRUGAL_SYSROOT=$TMP/pi4 "$BIN" serve --profile auto --print-config >"$TMP/pc.out" 2>"$TMP/err"; rc=$?
check "print-config exits 0 ($(cat "$TMP/err"))" [ $rc -eq 0 ]
check "auto on a Pi 4 8 GB is pi4-8g" grep -Eq '^profile +auto -> pi4-8g \(Raspberry Pi 4 Model B Rev 1.4, 4 CPUs, 7.6 GiB\) +flag --profile$' "$TMP/pc.out"
check "pi4-8g: 3 threads from the profile" grep -Eq '^threads +3 +profile pi4-8g$' "$TMP/pc.out"
check "pi4-8g: budget 5G" grep -Eq '^budget +5G +profile pi4-8g$' "$TMP/pc.out"
check "pi4-8g: warning 60" grep -Eq '^warning +60 +profile pi4-8g$' "$TMP/pc.out"
check "untouched settings say default" grep -Eq '^port +8080 +default$' "$TMP/pc.out"
printf '[server]\nprofile = auto\nparallel = 1\n' >"$TMP/pc.ini"
FRUGAL_SYSROOT=$TMP/pi5 "$BIN" serve --config "$TMP/pc.ini" --threads 2 --print-config >"$TMP/pc.out" 2>"$TMP/err"; rc=$?
check "print-config with an INI exits 0 ($(cat "$TMP/err"))" [ $rc -eq 0 ]
check "auto (from the INI) on a Pi 5 16 GB is pi5-16g" grep -Eq "^profile +auto -> pi5-16g .* INI $TMP/pc.ini:2\$" "$TMP/pc.out"
check "pi5-16g: budget 12G" grep -Eq '^budget +12G +profile pi5-16g$' "$TMP/pc.out"
check "--threads beats the profile" grep -Eq '^threads +2 +flag --threads$' "$TMP/pc.out"
check "the INI's parallel beats the profile" grep -Eq "^parallel +1 +INI $TMP/pc.ini:3\$" "$TMP/pc.out"
check "pi5-16g: one model" grep -Eq '^max_loaded +1 +profile pi5-16g$' "$TMP/pc.out"
FRUGAL_SYSROOT=$TMP/x86 FRUGAL_PROFILE=auto "$BIN" serve --print-config >"$TMP/pc.out" 2>"$TMP/err"; rc=$?
check "print-config on x86 exits 0 ($(cat "$TMP/err"))" [ $rc -eq 0 ]
check "auto (from FRUGAL_PROFILE) on a 24 GB x86 is x86-16g" grep -Eq '^profile +auto -> x86-16g \(16 CPUs, 23.5 GiB\) +env FRUGAL_PROFILE$' "$TMP/pc.out"
check "x86-16g: 75% of 24 GB is 18 GB" grep -Eq '^budget +75% \(18079M of 23.5 GiB\) +profile x86-16g$' "$TMP/pc.out"
check "x86-16g: threads keep the physical-core default" grep -Eq '^threads +[0-9]+ +default \(physical cores\)$' "$TMP/pc.out"
FRUGAL_SYSROOT=$TMP/x86 "$BIN" serve --profile pi3 --print-config >"$TMP/pc.out" 2>"$TMP/err"; rc=$?
check "an unknown profile exits 2" [ $rc -eq 2 ]
check "the error lists the known profiles ($(cat "$TMP/err"))" grep -q "unknown profile 'pi3' (known: pi4-4g, pi4-8g, pi5-4g, pi5-8g, pi5-16g, cm4-4g, vps-2c, x86-16g or auto)" "$TMP/err"

echo "cli: $pass passed, $fail failed"
[ $fail -eq 0 ]
