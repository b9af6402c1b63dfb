#!/usr/bin/env bash
# durability.sh — the index survives kill -9 (issue 6, acceptance
# "Durability"), with the real tiny-bert:
#
#   1. a large ingest over HTTP (several requests, sent one after the
#      other by a background curl loop) into a collection with small
#      chunks; searches run during it (bm25 for one document's marker,
#      hybrid and vector) and every result set must be consistent: each
#      hit's text belongs to its document, and a document found by its
#      marker is found whole (every sentence of it in its chunks);
#   2. kill -9 of the server in the middle of it, a restart on the same
#      --data: `frugal index check` exits 0 with no problems, every
#      document is whole or absent, GET /v1/collections/{name} counts
#      exactly the documents found; then the whole ingest again completes
#      with the right counts;
#   3. `frugal index add` of a big directory while the server runs,
#      killed -9 in the middle: the same checks (through the server), then
#      the add again completes (the documents stored before are
#      unchanged) while the server ingests into another collection (two
#      writing processes), and the server's searches (bm25 and vector,
#      whose int8 cache was loaded before the add) see the new documents.
#
# Every document is sentences like "docmNNNN sNNNNkKK w w docmNNNN w w
# docmNNNN w." so that each chunk (32 tokens) holds its document's marker
# and the sentence markers say which parts of the document a search saw.
SUITE=durability
. "$(dirname "$0")/lib.sh"
[ -d "$TMP" ] || exit 1     # every path below is under the suite's temp dir

E=tiny-bert-q8_0
dir=$(models_dir models $E)
DATA=$TMP/data
COLL=docs
# sizes (a third of them under the sanitizers, whose encoder is far slower)
[ "$SAN_BUILD" = 1 ] && div=3 || div=1
N_REQ=${DUR_REQUESTS:-8}                  # requests of the HTTP ingest
PER_REQ=${DUR_DOCS:-$((60 / div))}        # documents per request
N_FILES=${DUR_FILES:-$((360 / div))}      # files of the CLI ingest

cat >"$TMP/dur.py" <<'PY'
import http.client, json, os, random, sys, time

WORDS = ("river stone cloud field green quiet silver morning window garden paper bright "
         "winter harbor candle forest yellow basket mirror ladder thunder pepper meadow "
         "copper marble velvet anchor island lantern orchard pebble saddle timber").split()

def doc_text(marker, k, rng):
    out = []
    for j in range(k):
        w = [rng.choice(WORDS) for _ in range(5)]
        out.append("%s s%sk%02d %s %s %s %s %s %s %s." % (marker, marker[4:], j, w[0], w[1], marker, w[2], w[3],
                                                            marker, w[4]))
    out.append(marker + ".")
    return " ".join(out)

def sentences(n, marker):
    return {"s%sk%02d" % (marker[4:], j) for j in range(n)}

CONN = {}

def call(port, method, path, body=None, timeout=60):
    """One request on a kept-alive connection (a new one after an error)."""
    data = json.dumps(body).encode() if body is not None else None
    for attempt in (0, 1):
        c = CONN.get(port) or http.client.HTTPConnection("127.0.0.1", int(port), timeout=timeout)
        CONN[port] = c
        try:
            c.request(method, path, body=data, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, json.loads(r.read() or b"null")
        except (http.client.HTTPException, OSError):
            c.close()
            CONN.pop(port, None)
            if attempt:
                raise

def search(port, coll, query, mode="bm25", top_k=100):
    return call(port, "POST", "/v1/collections/%s/search" % coll,
                {"query": query, "mode": mode, "top_k": top_k, "candidates": 1000})

def load(path):
    return json.load(open(path))

def consistent(manifest, hits):
    """Every hit's text holds its own document's marker and only that one."""
    for h in hits:
        d = manifest.get(h["document_id"])
        if d is None:
            return "unknown document %r" % h["document_id"]
        m = d["marker"]
        if m not in h["text"]:
            return "hit of %s without its marker: %r" % (h["document_id"], h["text"][:80])
        others = [w for w in h["text"].replace(".", " ").split() if w.startswith("docm") and w != m]
        if others:
            return "hit of %s holds another document's marker %s" % (h["document_id"], others[0])
    return None

def whole(manifest, doc_id, hits):
    """'whole', 'absent', or what is wrong: the hits of a search for the
    document's marker are its chunks and cover all its sentences."""
    d = manifest[doc_id]
    bad = consistent(manifest, hits)
    if bad:
        return bad
    mine = [h for h in hits if h["document_id"] == doc_id]
    if len(mine) != len(hits):
        return "a search for %s found other documents" % d["marker"]
    if not mine:
        return "absent"
    seen = set()
    for h in mine:
        seen |= {w for w in h["text"].replace(".", " ").split() if w.startswith("s" + d["marker"][4:] + "k")}
    want = sentences(d["k"], d["marker"])
    if seen != want:
        return "%s is not whole: %d of %d sentences" % (doc_id, len(seen & want), len(want))
    return "whole"

def cmd_gen(out, n_req, per_req, n_files, files_dir):
    rng = random.Random(6)
    manifest = {}
    for r in range(n_req):
        docs = []
        for i in range(per_req):
            n = r * per_req + i
            marker, k = "docm%04d" % n, 8 + n % 9
            doc = {"id": "d%04d" % n, "text": doc_text(marker, k, rng), "metadata": {"n": n}}
            docs.append(doc)
            manifest[doc["id"]] = {"marker": marker, "k": k, "text": doc["text"]}
        json.dump({"documents": docs}, open(os.path.join(out, "req%d.json" % r), "w"))
    json.dump(manifest, open(os.path.join(out, "http.json"), "w"))
    files = {}
    for n in range(n_files):
        marker, k = "docm%04d" % (5000 + n), 8 + n % 9
        rel = "part%02d/f%04d.txt" % (n // 40, n)
        os.makedirs(os.path.join(files_dir, os.path.dirname(rel)), exist_ok=True)
        text = doc_text(marker, k, rng)
        open(os.path.join(files_dir, rel), "w").write(text + "\n")
        files[rel] = {"marker": marker, "k": k, "text": text}
    # the last file: one short chunk, for the vector search
    rel = "zz/last.txt"
    os.makedirs(os.path.join(files_dir, "zz"), exist_ok=True)
    text = "docm9999 s9999k00 the very last lantern of the orchard."
    open(os.path.join(files_dir, rel), "w").write(text + "\n")
    files[rel] = {"marker": "docm9999", "k": 1, "text": text}
    json.dump(files, open(os.path.join(out, "files.json"), "w"))

def cmd_during(port, coll, manifest_path, stop_at):
    """Search until the collection holds stop_at documents (or 40 s):
    every result consistent, every document found by its marker whole.
    Prints searches, problems, documents at the end."""
    manifest = load(manifest_path)
    ids = sorted(manifest)
    rng = random.Random(1)
    searches = problems = 0
    t_end = time.time() + 40
    count = 0
    while time.time() < t_end:
        st, info = call(port, "GET", "/v1/collections/" + coll)
        count = info.get("documents", 0) if st == 200 else 0
        if count >= stop_at:
            break
        doc_id = rng.choice(ids)
        mode = ("bm25", "hybrid", "vector")[searches % 3]
        st, res = search(port, coll, manifest[doc_id]["marker"], mode, 50 if mode != "bm25" else 100)
        searches += 1
        if st == 404:
            continue            # the collection is not made yet
        if st != 200:
            problems += 1
            print("search %s: status %s %s" % (mode, st, str(res)[:200]))
            continue
        hits = res["results"]
        v = consistent(manifest, hits) if mode != "bm25" else whole(manifest, doc_id, hits)
        if v not in (None, "whole", "absent"):
            problems += 1
            print("search %s during the ingest: %s" % (mode, v))
        if mode == "bm25" or v is not None:
            continue
        # the documents a vector leg found exist whole (nothing replaces them meanwhile)
        for other in sorted({h["document_id"] for h in hits})[:3]:
            st, res = search(port, coll, manifest[other]["marker"])
            searches += 1
            w = whole(manifest, other, res["results"]) if st == 200 else "status %s" % st
            if w != "whole":
                problems += 1
                print("a %s hit's document %s: %s" % (mode, other, w))
    print("during: %d searches, %d problems, %d documents" % (searches, problems, count))

def cmd_verify(port, coll, manifest_path, want_all):
    """Every document whole or absent; the collection's count equals the
    documents found; with want_all every one is there."""
    manifest = load(manifest_path)
    n_whole = n_absent = 0
    problems = []
    for doc_id in sorted(manifest):
        st, res = search(port, coll, manifest[doc_id]["marker"])
        if st != 200:
            problems.append("search for %s: status %s %s" % (doc_id, st, str(res)[:200]))
            continue
        v = whole(manifest, doc_id, res["results"])
        if v == "whole":
            n_whole += 1
        elif v == "absent":
            n_absent += 1
        else:
            problems.append(v)
    st, info = call(port, "GET", "/v1/collections/" + coll)
    count = info.get("documents", -1) if st == 200 else -1
    if count != n_whole:
        problems.append("the collection counts %d documents, %d are found whole" % (count, n_whole))
    if want_all and n_whole != len(manifest):
        problems.append("%d of %d documents are there" % (n_whole, len(manifest)))
    for p in problems[:5]:
        print("problem:", p)
    print("verify: %d whole, %d absent, %d problems, count %d" % (n_whole, n_absent, len(problems), count))
    sys.exit(1 if problems else 0)

def cmd_first(port, coll, query, mode):
    st, res = search(port, coll, query, mode, 5)
    print(res["results"][0]["document_id"] if st == 200 and res["results"] else "(status %s, no results)" % st)

cmd = sys.argv[1]
if cmd == "gen": cmd_gen(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
elif cmd == "during": cmd_during(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
elif cmd == "verify": cmd_verify(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "all")
elif cmd == "first": cmd_first(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
PY
dur() { python3 "$TMP/dur.py" "$@"; }

TOTAL=$((N_REQ * PER_REQ))
FILES=$TMP/files
dur gen "$TMP" "$N_REQ" "$PER_REQ" "$N_FILES" "$FILES"
check "the ingest requests are written" [ -s "$TMP/req0.json" ] && [ -s "$TMP/files.json" ]

# ingest [COLL [TAG]]: POST every req*.json one by one to COLL ($COLL);
# each status to $TMP/ingest$TAG.st, each reply to $TMP/ingest$TAG.N.json
ingest() {
    local r c=${1:-$COLL} t=${2:-}
    for r in $(seq 0 $((N_REQ - 1))); do
        curl -s -m 120 -o "$TMP/ingest$t.$r.json" -w '%{http_code}\n' -H 'Content-Type: application/json' \
            --data-binary @"$TMP/req$r.json" "$(url /v1/collections/$c/documents)" >>"$TMP/ingest$t.st"
    done
}
kill9() { # PID: kill -9 one process we started, reap it, forget it
    local keep=() q
    kill -9 "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    for q in "${PIDS[@]}"; do [ "$q" = "$1" ] || keep+=("$q"); done
    PIDS=("${keep[@]}")
}
doc_count() { # COLL: documents in it (-1 when it cannot be read)
    local s
    s=$(curl -s -m 10 -o "$TMP/count.json" -w '%{http_code}' "$(url /v1/collections/$1)")
    if [ "$s" = 200 ]; then jq -r .documents "$TMP/count.json"; else echo -1; fi
}
index_check() { # WHAT: frugal index check on $DATA exits 0 and says consistent
    "$BIN" index check --data "$DATA" >"$TMP/check.err" 2>&1
    local rc=$?
    check "$1: frugal index check exits 0 ($(cat "$TMP/check.err"))" [ $rc -eq 0 ]
    check "$1: no problems" grep -q "consistent$" "$TMP/check.err"
}

# ---- 1. a large ingest over HTTP, searched while it runs ----
start s1 --models "$dir" --data "$DATA" --keep-alive -1 || finish
s=$(post /v1/collections "{\"name\": \"$COLL\", \"model\": \"$E\", \"chunk_size\": 32, \"chunk_overlap\": 4}")
check "create the collection: 201 (got $s: $(head -c 300 "$TMP/body"))" [ "$s" = 201 ]
: >"$TMP/ingest.st"
ingest &
ING=$!
dur during "$PORT" "$COLL" "$TMP/http.json" $((TOTAL * 2 / 5)) >"$TMP/during.out" 2>&1
cat "$TMP/during.out" | grep -v "^during:" | head -5
check "searches during the ingest are consistent ($(tail -1 "$TMP/during.out"))" \
    grep -q "^during: [1-9][0-9]* searches, 0 problems" "$TMP/during.out"

# ---- 2. kill -9 in the middle, restart, check ----
before=$(doc_count $COLL)
kill9 "$PID"
wait "$ING" 2>/dev/null
echo "note [durability]: server killed at $before of $TOTAL documents; $(tail -1 "$TMP/during.out")"
check "the kill came in the middle of the ingest ($before of $TOTAL documents)" \
    [ "$before" -gt 0 ] && [ "$before" -lt "$TOTAL" ]
check "an ingest request was cut by the kill ($(tr '\n' ' ' <"$TMP/ingest.st"))" grep -qv '^200$' "$TMP/ingest.st"
index_check "after kill -9 of the server"
start s2 --models "$dir" --data "$DATA" --keep-alive -1 || finish
dur verify "$PORT" "$COLL" "$TMP/http.json" some >"$TMP/verify.out" 2>&1
cat "$TMP/verify.out" | grep -v "^verify:" | head -5
check "after the restart every document is whole or absent, the count agrees ($(tail -1 "$TMP/verify.out"))" \
    grep -q "^verify: [0-9]* whole, [0-9]* absent, 0 problems" "$TMP/verify.out"
after=$(doc_count $COLL)
echo "note [durability]: after the restart $(tail -1 "$TMP/verify.out")"
check "the restart keeps at least what was counted before the kill ($after >= $before)" [ "$after" -ge "$before" ]
: >"$TMP/ingest.st"
ingest
check "the re-ingest: every request 200 ($(tr '\n' ' ' <"$TMP/ingest.st"))" \
    [ "$(grep -c '^200$' "$TMP/ingest.st")" -eq "$N_REQ" ]
check "the re-ingest counts every document ($(doc_count $COLL) of $TOTAL)" [ "$(doc_count $COLL)" -eq "$TOTAL" ]
n_unch=$(cat "$TMP"/ingest.*.json | jq -s '[.[].results[]? | select(.status == "unchanged")] | length')
check "the re-ingest leaves the stored documents unchanged ($n_unch unchanged, $after stored)" [ "$n_unch" -eq "$after" ]
dur verify "$PORT" "$COLL" "$TMP/http.json" all >"$TMP/verify.out" 2>&1
cat "$TMP/verify.out" | grep -v "^verify:" | head -5
check "after the re-ingest every document is whole ($(tail -1 "$TMP/verify.out"))" \
    grep -q "^verify: $TOTAL whole, 0 absent, 0 problems" "$TMP/verify.out"
index_check "after the re-ingest"

# ---- 3. frugal index add next to the server, killed -9, then again ----
CLI=files
s=$(post /v1/collections "{\"name\": \"$CLI\", \"model\": \"$E\", \"chunk_size\": 32, \"chunk_overlap\": 4}")
check "create the collection for the CLI: 201 (got $s)" [ "$s" = 201 ]
# a first document and a vector search: the server's int8 cache is loaded
# (its id as the walk below makes it; the walk replaces it: its metadata path differs)
(cd "$FILES" && "$BIN" index add --data "$DATA" --models "$dir" --collection $CLI part00/f0000.txt) >/dev/null 2>"$TMP/add0.err"
check "a first file added by the CLI ($(cat "$TMP/add0.err"))" [ "$(doc_count $CLI)" -eq 1 ]
s=$(post /v1/collections/$CLI/search '{"query": "lantern", "mode": "vector", "top_k": 3}')
check "a vector search of the server loads the collection (got $s)" [ "$s" = 200 ]
N_ALL=$((N_FILES + 1))
"$BIN" index add --data "$DATA" --models "$dir" --collection $CLI "$FILES" >"$TMP/add1.out" 2>"$TMP/add1.err" &
ADD=$!
PIDS+=("$ADD")
dur during "$PORT" $CLI "$TMP/files.json" $((N_ALL / 3)) >"$TMP/during.out" 2>&1
cat "$TMP/during.out" | grep -v "^during:" | head -5
check "the server's searches during the CLI's ingest are consistent ($(tail -1 "$TMP/during.out"))" \
    grep -q "^during: [1-9][0-9]* searches, 0 problems" "$TMP/during.out"
kill9 "$ADD"
cli_before=$(doc_count $CLI)
echo "note [durability]: frugal index add killed at $cli_before of $N_ALL documents; $(tail -1 "$TMP/during.out")"
check "frugal index add was killed in the middle ($cli_before of $N_ALL documents)" \
    [ "$cli_before" -gt 1 ] && [ "$cli_before" -lt "$N_ALL" ]
index_check "after kill -9 of frugal index add"
dur verify "$PORT" $CLI "$TMP/files.json" some >"$TMP/verify.out" 2>&1
cat "$TMP/verify.out" | grep -v "^verify:" | head -5
check "after the killed add every document is whole or absent ($(tail -1 "$TMP/verify.out"))" \
    grep -q "^verify: [0-9]* whole, [0-9]* absent, 0 problems" "$TMP/verify.out"
# again, while the server writes too (another collection: two writers)
s=$(post /v1/collections "{\"name\": \"both\", \"model\": \"$E\", \"chunk_size\": 32, \"chunk_overlap\": 4}")
check "create a collection for the server's writes: 201 (got $s)" [ "$s" = 201 ]
: >"$TMP/ingestb.st"
ingest both b &
ING=$!
"$BIN" index add --data "$DATA" --models "$dir" --collection $CLI "$FILES" >"$TMP/add2.out" 2>"$TMP/add2.err"
rc=$?
wait "$ING"
check "the add again exits 0 ($(cat "$TMP/add2.err"))" [ $rc -eq 0 ]
check "the server's ingest at the same time: every request 200 ($(tr '\n' ' ' <"$TMP/ingestb.st"))" \
    [ "$(grep -c '^200$' "$TMP/ingestb.st")" -eq "$N_REQ" ]
dur verify "$PORT" both "$TMP/http.json" all >"$TMP/verify.out" 2>&1
cat "$TMP/verify.out" | grep -v "^verify:" | head -5
check "the server's documents written next to the CLI are whole ($(tail -1 "$TMP/verify.out"))" \
    grep -q "^verify: $TOTAL whole, 0 absent, 0 problems" "$TMP/verify.out"
want="^$N_ALL files: $((N_ALL - cli_before)) added, 0 replaced, $cli_before unchanged, 0 failed"
check "the add again adds the rest ($(tail -1 "$TMP/add2.out"); want $want)" grep -q "$want" "$TMP/add2.out"
check "the server counts every file ($(doc_count $CLI) of $N_ALL)" [ "$(doc_count $CLI)" -eq "$N_ALL" ]
dur verify "$PORT" $CLI "$TMP/files.json" all >"$TMP/verify.out" 2>&1
cat "$TMP/verify.out" | grep -v "^verify:" | head -5
check "the server finds every file whole ($(tail -1 "$TMP/verify.out"))" \
    grep -q "^verify: $N_ALL whole, 0 absent, 0 problems" "$TMP/verify.out"
got=$(dur first "$PORT" $CLI "docm9999 s9999k00 the very last lantern of the orchard." vector)
check "the server's vector search sees the last file the CLI added (got $got)" [ "$got" = zz/last.txt ]
got=$(dur first "$PORT" $CLI "s9999k00" bm25)
check "the server's bm25 search sees it (got $got)" [ "$got" = zz/last.txt ]
index_check "at the end"
finish
