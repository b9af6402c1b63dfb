#!/usr/bin/env bash
# search.sh — document search over HTTP (docs/API-search.md) with the real
# tiny-bert embedder, tiny-bert-rerank and tiny-llama.
#
#   1. --data in the suite's temp dir: nothing is made before the first
#      write; POST /v1/collections (201, 409 again); ingest five documents
#      with metadata (one of many chunks); GET counts; search in every
#      mode (bm25, vector, hybrid rrf and linear): the right document
#      first, only the legs that apply in scores and ranks, best first;
#      filters; group_by_document; top_k; rerank with tiny-bert-rerank;
#      re-sending a document (unchanged, replaced); a collection made by
#      its first documents; DELETE of a document and of a collection.
#   2. bad input, each with its status, API.md's error shape and param,
#      and the collection's counts unchanged after: empty and blank query,
#      no query, top_k 0 and 1001, bad mode, malformed filters, unknown
#      collection, unknown and mismatched model, a decoder as embedder,
#      a document over the 1 MiB limit (413 document_too_large; the server
#      runs with --max-body 4M so the index, not the body limit, refuses
#      it), bad documents, duplicate ids, bad rerank models.
#   3. ask with tiny-llama: not streamed ({"answer", "sources", "usage"})
#      and streamed (chat chunks, then one chunk with the sources, then
#      [DONE]); its bad input.
#   4. restart on the same --data: the documents are still there and found.
#   5. start-up: --data on a file is exit 2 with one line naming it; a
#      server started without --data in a fresh folder that only reads
#      leaves no ./data behind.
SUITE=search
. "$(dirname "$0")/lib.sh"

E=tiny-bert-q8_0 E2=tiny-bert-f16 R=tiny-bert-rerank-q8_0 L=tiny-llama-q8_0
dir=$(models_dir models $E $E2 $R $L)
DATA=$TMP/data
C=/v1/collections

start s1 --models "$dir" --data "$DATA" --ctx 512 --parallel 2 --keep-alive -1 --max-body 4M || finish
check "the data dir is not made before the first write" [ ! -e "$DATA" ]
check "GET /v1/collections with no index is 200 (got $(http GET $C))" [ "$(http GET $C)" = 200 ]
check "... and an empty list" jqe '.object == "list" and (.data | length) == 0' "$TMP/body"
check "GET an unknown collection is 404" [ "$(http GET $C/papers)" = 404 ]
check "... with the error shape" err_shape 404 not_found
check "reads made no data dir" [ ! -e "$DATA" ]
s=$(post $C '{"name": "papers", "model": "no-such-model"}')
check "a first collection with an unknown model is 404 (got $s)" [ "$s" = 404 ]
check "... with the error shape" err_shape 404 model_not_found
s=$(post $C/papers/documents '{"model": "no-such-model", "documents": [{"text": "x"}]}')
check "first documents with an unknown model are 404 (got $s)" [ "$s" = 404 ]
check "... and neither made the data dir" [ ! -e "$DATA" ]

# ---- 1. collections, documents, search ----
s=$(post $C "{\"name\": \"papers\", \"model\": \"$E\", \"chunk_size\": 32, \"chunk_overlap\": 4}")
check "POST /v1/collections is 201 (got $s: $(head -c 300 "$TMP/body"))" [ "$s" = 201 ]
check "the collection says its model, dimensions and chunking" \
    jqe '.name == "papers" and .model == $m and .dimensions == 256 and .chunk_size == 32 and .chunk_overlap == 4 and .documents == 0' \
    "$TMP/body" --arg m $E
check "the data dir holds frugal.db now" [ -f "$DATA/frugal.db" ]
s=$(post $C "{\"name\": \"papers\", \"model\": \"$E\"}")
check "creating it again is 409 (got $s)" [ "$s" = 409 ]
check "... with the error shape" err_shape 409 collection_exists

LONGDOC=$(python3 -c "
import sys
s = ['Sentence %d of the long report talks about glaciers, ice sheets and the melting of polar ice.' % i for i in range(40)]
print(' '.join(s))")
cat >"$TMP/docs.json" <<EOF
{"documents": [
 {"id": "cats", "text": "Cats are small domestic animals. A cat purrs and sleeps on the mat most of the day.", "metadata": {"topic": "animals", "year": 2020}},
 {"id": "rockets", "text": "A rocket engine burns fuel to launch spacecraft into orbit. Space agencies test rockets.", "metadata": {"topic": "space", "year": 2021}},
 {"id": "pasta", "text": "Boil the pasta in salted water and serve it with tomato sauce and basil.", "metadata": {"topic": "food", "year": 2021}},
 {"id": "moon", "text": "The moon landing was a milestone of space exploration. Astronauts walked on the lunar surface.", "metadata": {"topic": "space", "year": 1969}},
 {"id": "glaciers", "text": "$LONGDOC", "metadata": {"topic": "climate", "year": 2023}}
]}
EOF
s=$(http POST $C/papers/documents -H 'Content-Type: application/json' --data-binary @"$TMP/docs.json")
check "adding five documents is 200 (got $s: $(head -c 300 "$TMP/body"))" [ "$s" = 200 ]
check "every document is added with chunks and vectors" \
    jqe '(.results | length) == 5 and all(.results[]; .status == "added" and .chunks >= 1 and .embedded >= 0)' "$TMP/body"
check "the long document has many chunks ($(jb '.results[4].chunks'))" jqe '.results[4].chunks >= 5' "$TMP/body"
nchunks=$(jb '[.results[].chunks] | add')
http GET $C/papers >/dev/null
check "GET the collection: 5 documents, $nchunks chunks ($(head -c 400 "$TMP/body"))" \
    jqe '.documents == 5 and .chunks == ($n | tonumber) and .vectors >= 1 and .bytes > 0 and .model == $m' \
    "$TMP/body" --arg n "$nchunks" --arg m $E
cp "$TMP/body" "$TMP/before.json"
http GET $C >/dev/null
check "the list holds it" jqe '[.data[].name] == ["papers"]' "$TMP/body"

search() { post $C/${2:-papers}/search "$1"; }
s=$(search '{"query": "rocket engine fuel", "mode": "bm25", "top_k": 3}')
check "bm25 search is 200 (got $s: $(head -c 300 "$TMP/body"))" [ "$s" = 200 ]
check "bm25: the rocket document first" jqe '.results[0].document_id == "rockets"' "$TMP/body"
check "bm25: scores and ranks hold the bm25 leg only" \
    jqe 'all(.results[]; (.scores | keys) == ["bm25"] and (.ranks | keys) == ["bm25"])' "$TMP/body"
check "bm25: best first, at most top_k, metadata an object" \
    jqe '(.results | length) <= 3 and ([.results[].score] == ([.results[].score] | sort | reverse)) and (.results[0].metadata.topic == "space")' "$TMP/body"
check "bm25: took_ms and dropped_terms" jqe '(.took_ms | type) == "number" and (.dropped_terms | type) == "array"' "$TMP/body"
s=$(search '{"query": "rocket launch into orbit", "mode": "vector", "top_k": 4}')
check "vector search is 200 (got $s)" [ "$s" = 200 ]
check "vector: cosine scores in [-1, 1], vector leg only" \
    jqe '(.results | length) == 4 and all(.results[]; (.scores | keys) == ["vector"] and .scores.vector >= -1.0001 and .scores.vector <= 1.0001 and .score == .scores.vector and (.ranks | keys) == ["vector"])' "$TMP/body"
check "vector: best first" jqe '[.results[].score] == ([.results[].score] | sort | reverse)' "$TMP/body"
s=$(search '{"query": "pasta with tomato sauce", "top_k": 5}')
check "hybrid search (the default) is 200 (got $s)" [ "$s" = 200 ]
check "hybrid: the pasta document first" jqe '.results[0].document_id == "pasta" and .mode == "hybrid"' "$TMP/body"
check "hybrid: every result has a fused rank" jqe 'all(.results[]; .ranks.fused >= 1)' "$TMP/body"
check "hybrid: the first has both legs" jqe '.results[0].scores | has("bm25") and has("vector")' "$TMP/body"
check "hybrid rrf: score = sum of 1/(60 + rank)" \
    jqe 'all(.results[]; (.score - ([.ranks.bm25, .ranks.vector] | map(select(. != null) | 1 / (60 + .)) | add)) | fabs < 1e-9)' "$TMP/body"
s=$(search '{"query": "pasta with tomato sauce", "fusion": "linear", "weights": {"bm25": 0.3, "vector": 0.7}, "top_k": 5}')
check "hybrid linear is 200 (got $s: $(head -c 200 "$TMP/body"))" [ "$s" = 200 ]
check "linear: scores within [0, 1]" jqe 'all(.results[]; .score >= -1e-9 and .score <= 1.0000001)' "$TMP/body"
s=$(search '{"query": "space", "mode": "hybrid", "filter": {"topic": "space"}, "top_k": 10}')
check "filter topic=space is 200 (got $s)" [ "$s" = 200 ]
check "filter: only space documents ($(jb '[.results[].document_id] | unique | join(",")'))" \
    jqe '(.results | length) >= 1 and all(.results[]; .metadata.topic == "space")' "$TMP/body"
s=$(search '{"query": "space", "filter": {"topic": "space", "year": 1969}, "top_k": 10}')
check "filter on two keys: the moon only" jqe '(.results | length) >= 1 and all(.results[]; .document_id == "moon")' "$TMP/body"
s=$(search '{"query": "space", "filter": {"topic": "nothing"}}')
check "a filter nothing matches: 200 and no results" jqe '(.results | length) == 0' "$TMP/body"
s=$(search '{"query": "glaciers polar ice melting report", "top_k": 20, "group_by_document": true}')
check "group_by_document is 200 (got $s)" [ "$s" = 200 ]
check "group_by_document: one result per document" \
    jqe '([.results[].document_id] | length) == ([.results[].document_id] | unique | length)' "$TMP/body"
s=$(search '{"query": "glaciers polar ice melting report", "top_k": 20}')
check "without it, the long document has several chunks" \
    jqe '([.results[] | select(.document_id == "glaciers")] | length) > 1' "$TMP/body"
s=$(search '{"query": "space", "top_k": 1}')
check "top_k 1: one result" jqe '(.results | length) == 1' "$TMP/body"
s=$(search "{\"query\": \"a rocket into space\", \"rerank\": \"$R\", \"top_k\": 3, \"rerank_top_n\": 5}")
check "rerank is 200 (got $s: $(head -c 300 "$TMP/body"))" [ "$s" = 200 ]
check "rerank: every result has a rerank score and rank, the score is the rerank score" \
    jqe '(.results | length) == 3 and all(.results[]; (.scores | has("rerank")) and .ranks.rerank >= 1 and .score == .scores.rerank)' "$TMP/body"
check "rerank: best first" jqe '[.results[].score] == ([.results[].score] | sort | reverse)' "$TMP/body"
s=$(search "{\"query\": \"rocket\", \"model\": \"$E\", \"mode\": \"vector\"}")
check "model: the collection's own is fine (got $s)" [ "$s" = 200 ]

# re-sending
s=$(post $C/papers/documents '{"documents": [{"id": "cats", "text": "Cats are small domestic animals. A cat purrs and sleeps on the mat most of the day.", "metadata": {"topic": "animals", "year": 2020}}]}')
check "the same document again: unchanged (got $s: $(jb '.results[0].status'))" jqe '.results[0].status == "unchanged"' "$TMP/body"
s=$(post $C/papers/documents '{"documents": [{"id": "cats", "text": "Dogs bark at the mailman. A dog is a loyal companion.", "metadata": {"topic": "animals", "year": 2024}}]}')
check "new text under the same id: replaced (got $s: $(jb '.results[0].status'))" jqe '.results[0].status == "replaced"' "$TMP/body"
search '{"query": "dog barks", "mode": "bm25"}' >/dev/null
check "the new text is found" jqe '.results[0].document_id == "cats" and (.results[0].text | contains("Dogs"))' "$TMP/body"
search '{"query": "purrs", "mode": "bm25"}' >/dev/null
check "the old text is gone" jqe '(.results | length) == 0' "$TMP/body"
http GET $C/papers >/dev/null
check "still 5 documents" jqe '.documents == 5' "$TMP/body"
s=$(post $C/papers/documents '{"documents": [{"text": "A document without an id gets one."}]}')
check "a document without id gets a random one (got $s: $(jb '.results[0].id'))" jqe '.results[0].id | test("^[0-9a-f]{32}$")' "$TMP/body"
rid=$(jb '.results[0].id')
check "deleting it is 200" [ "$(http DELETE $C/papers/documents/$rid)" = 200 ]

# a collection made by its first documents
s=$(post $C/notes/documents '{"documents": [{"id": "n1", "text": "a note"}]}')
check "documents for a missing collection without model: 404 (got $s)" [ "$s" = 404 ]
check "... with the error shape" err_shape 404 not_found
s=$(post $C/notes/documents "{\"model\": \"$E\", \"documents\": [{\"id\": \"n1\", \"text\": \"A note about the weather: sunny.\"}]}")
check "with model it is made (got $s: $(head -c 200 "$TMP/body"))" jqe '.created_collection == true and .results[0].status == "added"' "$TMP/body"
http GET $C/notes >/dev/null
check "notes: 1 document, the model recorded" jqe '.documents == 1 and .model == $m' "$TMP/body" --arg m $E
check "DELETE the collection is 200" [ "$(http DELETE $C/notes)" = 200 ]
check "then GET it is 404" [ "$(http GET $C/notes)" = 404 ]
check "and DELETE again is 404" [ "$(http DELETE $C/notes)" = 404 ]

# deleting a document
check "DELETE a document is 200" [ "$(http DELETE $C/papers/documents/pasta)" = 200 ]
check "DELETE it again is 404" [ "$(http DELETE $C/papers/documents/pasta)" = 404 ]
check "... with the error shape" err_shape 404 not_found
search '{"query": "pasta tomato", "mode": "bm25"}' >/dev/null
check "the deleted document is not found" jqe 'all(.results[]; .document_id != "pasta")' "$TMP/body"
http GET $C/papers >/dev/null
check "4 documents left" jqe '.documents == 4' "$TMP/body"
cp "$TMP/body" "$TMP/before.json"

# ---- 2. bad input ----
counts() { http GET $C/papers >/dev/null; jq -c '[.documents, .chunks, .vectors, .text_bytes]' "$TMP/body"; }
want_counts=$(jq -c '[.documents, .chunks, .vectors, .text_bytes]' "$TMP/before.json")
# bad_req WHAT STATUS CODE PARAM ROUTE BODY [curl data file]
bad_req() {
    local what=$1 want=$2 code=$3 param=$4 route=$5 body=$6 s
    if [ "${body:0:1}" = @ ]; then
        s=$(http POST "$route" -H 'Content-Type: application/json' --data-binary "$body")
    else
        s=$(post "$route" "$body")
    fi
    check "$what: status $want (got $s: $(head -c 300 "$TMP/body"))" [ "$s" = "$want" ]
    check "$what: the error shape with code $code" err_shape "$want" "$code"
    check "$what: param is $param (got $(jb .error.param))" [ "$(jb .error.param)" = "$param" ]
    local now
    now=$(counts)
    check "$what: the index is untouched ($now)" [ "$now" = "$want_counts" ]
}
S=$C/papers/search D=$C/papers/documents
bad_req "empty query" 400 invalid_value query $S '{"query": ""}'
bad_req "blank query" 400 invalid_value query $S '{"query": "   "}'
bad_req "no query" 400 missing_field query $S '{"top_k": 3}'
bad_req "query a number" 400 invalid_value query $S '{"query": 5}'
bad_req "top_k 0" 400 invalid_value top_k $S '{"query": "x", "top_k": 0}'
bad_req "top_k 1001" 400 invalid_value top_k $S '{"query": "x", "top_k": 1001}'
bad_req "top_k 2.5" 400 invalid_value top_k $S '{"query": "x", "top_k": 2.5}'
bad_req "mode fuzzy" 400 invalid_value mode $S '{"query": "x", "mode": "fuzzy"}'
bad_req "fusion max" 400 invalid_value fusion $S '{"query": "x", "fusion": "max"}'
bad_req "candidates 0" 400 invalid_value candidates $S '{"query": "x", "candidates": 0}'
bad_req "weights a list" 400 invalid_value weights $S '{"query": "x", "weights": [1, 2]}'
bad_req "filter a string" 400 invalid_value filter $S '{"query": "x", "filter": "topic=space"}'
bad_req "filter with an array value" 400 invalid_value filter $S '{"query": "x", "filter": {"topic": ["a"]}}'
bad_req "filter with an object value" 400 invalid_value filter $S '{"query": "x", "filter": {"topic": {"$ne": 1}}}'
bad_req "filter with a quote in a key" 400 invalid_value filter $S '{"query": "x", "filter": {"to\"pic": 1}}'
bad_req "search an unknown collection" 404 not_found name $C/nope/search '{"query": "x"}'
bad_req "search with another model" 400 invalid_value model $S "{\"query\": \"x\", \"model\": \"$E2\"}"
bad_req "search with an unknown model" 400 invalid_value model $S '{"query": "x", "model": "no-such-model"}'
bad_req "rerank with an unknown model" 404 model_not_found rerank $S '{"query": "x", "rerank": "no-such-model"}'
bad_req "rerank with the embedder" 400 unsupported rerank $S "{\"query\": \"x\", \"rerank\": \"$E\"}"
bad_req "a collection with an unknown model" 404 model_not_found model $C '{"name": "c2", "model": "no-such-model"}'
bad_req "a collection with a decoder as embedder" 400 unsupported model $C "{\"name\": \"c2\", \"model\": \"$L\"}"
bad_req "a collection with a bad name" 400 invalid_value name $C "{\"name\": \"bad name!\", \"model\": \"$E\"}"
bad_req "a collection without model" 400 missing_field model $C '{"name": "c2"}'
bad_req "chunk_size 8" 400 invalid_value chunk_size $C "{\"name\": \"c2\", \"model\": \"$E\", \"chunk_size\": 8}"
bad_req "documents with another model" 400 invalid_value model $D "{\"model\": \"$E2\", \"documents\": [{\"text\": \"x\"}]}"
bad_req "no documents" 400 invalid_value documents $D '{"documents": []}'
bad_req "a document without text" 400 missing_field 'documents[1].text' $D '{"documents": [{"text": "fine"}, {"id": "x"}]}'
bad_req "a document text a number" 400 invalid_value 'documents[0].text' $D '{"documents": [{"text": 7}]}'
bad_req "metadata not an object" 400 invalid_value 'documents[0].metadata' $D '{"documents": [{"text": "x", "metadata": [1]}]}'
bad_req "a duplicate id" 400 invalid_value 'documents[1].id' $D '{"documents": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]}'
bad_req "an id with a control character" 400 invalid_value 'documents[0].id' $D '{"documents": [{"id": "a\u0001b", "text": "x"}]}'
python3 -c "
import json
print(json.dumps({'documents': [{'id': 'ok', 'text': 'fine'}, {'id': 'big', 'text': 'word ' * (1048576 // 5 + 1)}]}))" >"$TMP/big.json"
bad_req "a document over 1 MiB" 413 document_too_large 'documents[1].text' $D "@$TMP/big.json"
bad_req "documents to a collection with a bad name" 404 not_found name "$C/bad%20name/documents" '{"documents": [{"text": "x"}]}'
s=$(http DELETE $C/papers/documents/no-such-doc)
check "DELETE an unknown document is 404 (got $s)" [ "$s" = 404 ]
check "... with the error shape" err_shape 404 not_found
check "the collections list is unchanged" [ "$(http GET $C >/dev/null; jb '[.data[].name] | join(",")')" = papers ]

# ---- 3. ask ----
s=$(post $C/papers/ask "{\"question\": \"What does a rocket engine do?\", \"model\": \"$L\", \"top_k\": 3, \"max_tokens\": 8, \"temperature\": 0}")
check "ask is 200 (got $s: $(head -c 400 "$TMP/body"))" [ "$s" = 200 ]
check "ask: an answer, sources numbered from 1 with chunk and document ids and text, usage" \
    jqe '(.answer | type) == "string" and (.sources | length) >= 1 and ([.sources[].marker] == [range(1; (.sources | length) + 1)]) and all(.sources[]; (.chunk_id | type) == "number" and (.document_id | type) == "string" and (.text | length) > 0 and (.metadata | type) == "object") and .usage.prompt_tokens > 0 and .usage.completion_tokens <= 8 and (.finish_reason | type) == "string"' "$TMP/body"
check "ask: the rocket document among the sources" jqe '[.sources[].document_id] | index("rockets") != null' "$TMP/body"
check "ask: each source says whether the answer cites it, and the cited list matches" \
    jqe '(.answer // "") as $a | (.sources | all(has("cited"))) and ([.sources[] | select(.cited) | .marker] == .cited)
         and (.cited | all(. as $m | $a | contains("[" + ($m | tostring)) or test("[0-9], *" + ($m | tostring))))
         and ([.sources[] | select(.cited | not) | .marker] | all(. as $m | $a | contains("[" + ($m | tostring) + "]") | not))' "$TMP/body"
curl -s -N -m 60 -H 'Content-Type: application/json' -o "$TMP/ask.sse" -D "$TMP/head" \
    --data-binary "{\"question\": \"What is on the moon?\", \"model\": \"$L\", \"top_k\": 2, \"max_tokens\": 8, \"stream\": true, \"rerank\": \"$R\"}" \
    "$(url $C/papers/ask)"
check "ask stream: text/event-stream" grep -qi '^content-type: text/event-stream' "$TMP/head"
check "ask stream: ends with [DONE]" sse_done "$TMP/ask.sse"
check "ask stream: chat chunks with a finish reason ($(sse_finish "$TMP/ask.sse"))" [ -n "$(sse_finish "$TMP/ask.sse")" ]
check "ask stream: one event carries the sources, with the usage" \
    [ "$(sse_events "$TMP/ask.sse" | jq -s '[.[] | select(.sources)] | length == 1 and (.[0].sources | length) >= 1 and .[0].usage.prompt_tokens > 0')" = true ]
check "ask stream: the sources come last" \
    [ "$(sse_events "$TMP/ask.sse" | tail -1 | jq 'has("sources")')" = true ]
check "ask stream: no error event" nogrep '"error"' "$TMP/ask.sse"
bad_req "ask without question" 400 missing_field question $C/papers/ask "{\"model\": \"$L\"}"
bad_req "ask with an empty question" 400 invalid_value question $C/papers/ask "{\"question\": \"\", \"model\": \"$L\"}"
bad_req "ask without model" 400 missing_field model $C/papers/ask '{"question": "q"}'
bad_req "ask an embedder" 400 invalid_value model $C/papers/ask "{\"question\": \"q\", \"model\": \"$E\"}"
bad_req "ask an unknown model" 404 model_not_found model $C/papers/ask '{"question": "q", "model": "no-such-model"}'
bad_req "ask an unknown collection" 404 not_found name $C/nope/ask "{\"question\": \"q\", \"model\": \"$L\"}"
bad_req "ask with top_k 0" 400 invalid_value top_k $C/papers/ask "{\"question\": \"q\", \"model\": \"$L\", \"top_k\": 0}"
bad_req "ask with max_tokens past the context" 413 context_length_exceeded max_tokens $C/papers/ask \
    "{\"question\": \"q\", \"model\": \"$L\", \"max_tokens\": 600}"
check "/health after all that" [ "$(http GET /health)" = 200 ]
stop_server

# ---- 4. restart on the same data ----
start s2 --models "$dir" --data "$DATA" --keep-alive -1 || finish
check "after a restart the collection is there with its counts" [ "$(counts)" = "$want_counts" ]
search '{"query": "moon landing astronauts", "top_k": 2}' >/dev/null
check "and its documents are found" jqe '.results[0].document_id == "moon"' "$TMP/body"
stop_server

# ---- 5. start-up ----
# bad_start WHAT TEXT ARGS... : exit 2 with one line holding TEXT
bad_start() {
    local what=$1 want=$2; shift 2
    "$BIN" serve --port 0 "$@" >/dev/null 2>"$TMP/startup.err" &
    local p=$! rc
    wait "$p"; rc=$?
    check "$what exits 2 (rc $rc: $(head -c 300 "$TMP/startup.err"))" [ "$rc" -eq 2 ]
    check "$what prints one line ($(wc -l <"$TMP/startup.err"))" [ "$(wc -l <"$TMP/startup.err")" -eq 1 ]
    check "$what names it" grep -qF -- "$want" "$TMP/startup.err"
}
: >"$TMP/afile"
bad_start "--data on a file" "$TMP/afile" --data "$TMP/afile"
bad_start "--data under a file" "$TMP/afile/sub" --data "$TMP/afile/sub"
FRUGAL_DATA="$TMP/afile" bad_start "FRUGAL_DATA on a file" "$TMP/afile"
printf '[search]\ndata = %s\n' "$TMP/afile" >"$TMP/s.ini"
bad_start "INI [search] data on a file" "$TMP/afile" --config "$TMP/s.ini"
printf 'not an sqlite database, not at all, but long enough to be read as one.............\n' >"$TMP/afile2"
mkdir -p "$TMP/notdb" && cp "$TMP/afile2" "$TMP/notdb/frugal.db"
bad_start "--data holding a frugal.db that is not a database" "$TMP/notdb" --data "$TMP/notdb"
printf '[search]\ndata = %s\n' "$TMP/afile" >"$TMP/s2.ini"
FRUGAL_DATA="$TMP/data" start precedence --config "$TMP/s2.ini" || finish
check "FRUGAL_DATA beats the INI file (it starts; the counts are there)" [ "$(counts)" = "$want_counts" ]
stop_server
mkdir -p "$TMP/cwd"
cd "$TMP/cwd" || finish
start plain || finish
cd - >/dev/null || finish
check "a server without --data answers GET /v1/collections" [ "$(http GET $C)" = 200 ]
check "... and leaves no ./data behind" [ ! -e "$TMP/cwd/data" ]
stop_server
finish
