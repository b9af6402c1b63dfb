#!/usr/bin/env bash
# rerank.sh — the two rerank shapes (embeddings.c) with curl, against
# llama.cpp's reference scores for tiny-bert-rerank-q8_0 (refs/, raw
# classifier logits):
#   - text-embeddings-inference's POST /rerank: no model (the first
#     reranker by id: two names of the same file, the log line names the
#     first), a bare JSON array of {index, score} sorted by score
#     descending in the reference's order; raw_scores: true gives the
#     logits (within 0.3 of llama.cpp's, the tolerance embed.sh uses too),
#     the default their sigmoid (equal to 1/(1+e^-raw) of the raw reply to
#     1e-6, and in (0, 1)); return_text adds "text", absent by default;
#     texts missing or not strings: 400 naming texts; a server without a
#     reranker: 404 saying so; "model" may still name one
#   - Jina's/Cohere's POST /v1/rerank: {model, results: [{index,
#     relevance_score}], usage}, relevance_score the same sigmoid, top_n,
#     return_documents (document: {text}; absent by default), documents as
#     {"text"} objects, model optional (the first reranker, as /rerank);
#     /rerank with "documents" and no "texts" (llama-server's alias)
#     answers this shape
SUITE=rerank
. "$(dirname "$0")/lib.sh"

R=tiny-bert-rerank-q8_0
REF=$TD/refs/$R.json
dir=$TMP/models
mkdir -p "$dir"
ln -sf "$MODELS/$R.gguf" "$dir/a-rerank.gguf"
ln -sf "$MODELS/$R.gguf" "$dir/z-rerank.gguf"
ln -sf "$MODELS/tiny-llama-q8_0.gguf" "$dir/0-llama.gguf"
start rerank --models "$dir" --embed-cache 0 || finish

ncases=$(jq '.cases | length' "$REF")
for c in $(seq 0 $((ncases - 1))); do
    jq -c ".cases[$c] | {query, texts: .documents, raw_scores: true}" "$REF" >"$TMP/raw.json"
    s=$(post /rerank "@$TMP/raw.json")
    cp "$TMP/body" "$TMP/raw.out"
    check "case $c TEI raw: 200 (got $s)" [ "$s" = 200 ]
    check "case $c TEI raw: a bare array of {index, score}" jqe 'type == "array" and all(keys == ["index", "score"])' "$TMP/raw.out"
    check "case $c TEI raw: the reference's order" jqe '[.[].index] == ($r[0].cases[$c].scores | to_entries | sort_by(-.value) | map(.key))' "$TMP/raw.out" --slurpfile r "$REF" --argjson c "$c"
    check "case $c TEI raw: descending" jqe '[.[].score] == ([.[].score] | sort | reverse)' "$TMP/raw.out"
    check "case $c TEI raw: logits within 0.3 of llama.cpp's ($(jq -c '[.[] | .score * 1000 | round / 1000]' "$TMP/raw.out"))" \
        jqe 'all(((.score - $r[0].cases[$c].scores[.index]) | fabs) <= 0.3)' "$TMP/raw.out" --slurpfile r "$REF" --argjson c "$c"
    check "case $c TEI raw: a logit is not a probability (some score > 1)" jqe 'any(.score > 1)' "$TMP/raw.out"

    jq -c ".cases[$c] | {query, texts: .documents}" "$REF" >"$TMP/sig.json"
    s=$(post /rerank "@$TMP/sig.json")
    check "case $c TEI default: 200 (got $s)" [ "$s" = 200 ]
    check "case $c TEI default: the same order" jqe '[.[].index] == [$raw[0][].index]' "$TMP/body" --slurpfile raw "$TMP/raw.out"
    check "case $c TEI default: score = sigmoid(raw) to 1e-6, in (0, 1)" \
        jqe '[., $raw[0]] | transpose | all(.[0].score > 0 and .[0].score < 1 and ((.[0].score - 1 / (1 + ((-.[1].score) | exp))) | fabs) < 1e-6)' "$TMP/body" --slurpfile raw "$TMP/raw.out"
    check "case $c TEI default: no text unless asked" jqe 'all(has("text") | not)' "$TMP/body"
    check "case $c TEI: the first reranker by id answered" grep -q "POST /rerank model=a-rerank " "$SRV_LOG"

    jq -c ".cases[$c] | {query, texts: .documents, return_text: true, truncate: true}" "$REF" >"$TMP/txt.json"
    s=$(post /rerank "@$TMP/txt.json")
    check "case $c TEI return_text: each text is its document" jqe 'all(.text == $r[0].cases[$c].documents[.index])' "$TMP/body" --slurpfile r "$REF" --argjson c "$c"

    jq -c ".cases[$c] | {model: \"z-rerank\", query, documents: [.documents[] | {text: .}]}" "$REF" >"$TMP/jina.json"
    s=$(post /v1/rerank "@$TMP/jina.json")
    cp "$TMP/body" "$TMP/jina.out"
    check "case $c Jina: 200 (got $s)" [ "$s" = 200 ]
    check "case $c Jina: model, results, usage" jqe '.model == "z-rerank" and (.results | type == "array") and .usage.total_tokens > 0' "$TMP/jina.out"
    check "case $c Jina: results {index, relevance_score}, no document by default" jqe 'all(.results[]; keys == ["index", "relevance_score"])' "$TMP/jina.out"
    check "case $c Jina: relevance_score = TEI's sigmoid score, same order" \
        jqe '[.results, $t[0]] | transpose | all(.[0].index == .[1].index and ((.[0].relevance_score - .[1].score) | fabs) < 1e-6)' "$TMP/jina.out" --slurpfile t <(post /rerank "@$TMP/sig.json" >/dev/null; cat "$TMP/body")
    jq -c ".cases[$c] | {model: \"a-rerank\", query, documents, top_n: 1, return_documents: true}" "$REF" >"$TMP/top.json"
    s=$(post /v1/rerank "@$TMP/top.json")
    check "case $c Jina top_n 1 + return_documents: the best, with its text" \
        jqe '(.results | length) == 1 and .results[0].index == $j[0].results[0].index and .results[0].document == {text: $r[0].cases[$c].documents[.results[0].index]}' \
        "$TMP/body" --slurpfile j "$TMP/jina.out" --slurpfile r "$REF" --argjson c "$c"
    jq -c ".cases[$c] | {query, documents}" "$REF" >"$TMP/alias.json"
    s=$(post /rerank "@$TMP/alias.json")
    check "case $c /rerank with documents (llama-server's alias): Jina's shape, the same scores" \
        jqe '[.results, $j[0].results] | transpose | all(.[0] == .[1])' "$TMP/body" --slurpfile j "$TMP/jina.out"
done

s=$(post /rerank '{"query": "q"}')
check "TEI without texts: 400 missing_field texts (got $s)" jqe '.error.code == "missing_field" and .error.param == "texts"' "$TMP/body"
s=$(post /rerank '{"query": "q", "texts": ["a", 3]}')
check "TEI with a number in texts: 400 naming texts[1] (got $s)" jqe '.error.param == "texts" and (.error.message | contains("texts[1]"))' "$TMP/body"
s=$(post /rerank '{"query": "q", "texts": ["a"], "raw_scores": "yes"}')
check "TEI raw_scores not a bool: 400 (got $s)" jqe '.error.param == "raw_scores"' "$TMP/body"
s=$(post /rerank '{"model": "0-llama", "query": "q", "texts": ["a"]}')
check "TEI with a model that does not rerank: 400 (got $s)" [ "$s" = 400 ]
s=$(post /v1/rerank '{"query": "q", "documents": ["a"]}')
check "Jina without model (optional, as llama-server): the first reranker (got $s)" jqe '.model == "a-rerank" and (.results | length) == 1' "$TMP/body"
s=$(post /v1/rerank '{"model": "a-rerank", "query": "q", "documents": [{"txt": "a"}]}')
check "Jina with a document object without text: 400 naming documents[0] (got $s)" jqe '.error.param == "documents" and (.error.message | contains("documents[0]"))' "$TMP/body"
stop_server

dir2=$(models_dir none tiny-llama-q8_0)
start none --models "$dir2" || finish
s=$(post /rerank '{"query": "q", "texts": ["a"]}')
check "TEI on a server without a reranker: 404 (got $s)" [ "$s" = 404 ]
check "... saying there is no reranker" jqe '.error.code == "model_not_found" and (.error.message | contains("no reranker"))' "$TMP/body"
finish
