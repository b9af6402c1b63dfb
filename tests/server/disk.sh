#!/usr/bin/env bash
# disk.sh — the document index on a full disk, and its durability setting
# (issue 11, findings 6 and 7), with the real tiny-bert:
#
#   1. --data-sync: a bad value as flag, variable or INI key stops start-up
#      (exit 2, one line naming it), as does `frugal index --data-sync`;
#      the level SQLite reports on the index's connections is logged when
#      the index opens: normal by default, full with the flag, the
#      variable or the INI key (and `frugal index` says the same at
#      FRUGAL_LOG=debug).
#   2. --data on a 2 MB tmpfs (mounted here: we run as root; without
#      mount the suite says "skipped"), 1 MB of it taken by a ballast
#      file: documents are ingested, five a request, until one is refused:
#      507 with code insufficient_storage, a message naming the data
#      directory, and a result for every document of the request (id,
#      stored true/false; the stored ones first, added; the others
#      not_stored); the server still answers; `frugal index check` is
#      clean; every stored document is found whole by its marker, none of
#      the others; the collection's count is what was stored.
#   3. the disk filled to the last byte: creating collections ends in 507
#      insufficient_storage (none half made); `frugal index add` stops with
#      a line naming the data directory, exit 1; the index still checks
#      clean.
#   4. space freed (the ballast removed): a collection is deleted, the
#      refused request sent again is 200 (the stored documents unchanged,
#      the others added), more requests and `frugal index add` succeed,
#      the index checks clean and everything is found.
# The tmpfs is unmounted at exit.
SUITE=disk
. "$(dirname "$0")/lib.sh"
[ -d "$TMP" ] || exit 1     # every path below is under the suite's temp dir

E=tiny-bert-q8_0
dir=$(models_dir models $E)
C=/v1/collections
MNT=$TMP/mnt
mkdir -p "$MNT"

# servers first (the mount must not be busy), then the mount, then $TMP
_disk_cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if mountpoint -q "$MNT"; then umount "$MNT" 2>/dev/null || umount -l "$MNT"; fi
    rm -rf "$TMP"
}
trap _disk_cleanup EXIT

# bad_start WHAT WANT ARGS... : `frugal serve ARGS` exits 2 with one line holding WANT.
bad_start() {
    local what=$1 want=$2; shift 2
    timeout -s KILL 30 "$BIN" serve --port 0 --data "$TMP/d7" "$@" >/dev/null 2>"$TMP/bad.err" &
    local p=$!
    wait "$p"
    local rc=$?
    check "$what exits 2 (rc $rc: $(head -c 300 "$TMP/bad.err"))" [ "$rc" -eq 2 ]
    check "$what prints one line" [ "$(wc -l <"$TMP/bad.err")" -eq 1 ]
    check "$what names it ('$want' in '$(cat "$TMP/bad.err")')" grep -qF -- "$want" "$TMP/bad.err"
}

# sync_level NAME ARGS... : start a server on a fresh --data with ARGS (env
# from the caller), create a collection, set LV to the synchronous level of
# its "index ... opened" log line, stop it.
sync_level() {
    local name=$1; shift
    LV=
    start "$name" --models "$dir" --data "$TMP/$name.data" "$@" || return
    post $C "{\"name\": \"s\", \"model\": \"$E\"}" >/dev/null
    LV=$(sed -n 's/.*search: index .* opened (synchronous=\([a-z?]*\))$/\1/p' "$SRV_LOG")
    stop_server "$PID"
}

# ---- 1. --data-sync ----
bad_start "--data-sync fast" "--data-sync: bad value 'fast' (want normal or full)" --data-sync fast
FRUGAL_DATA_SYNC=always bad_start "FRUGAL_DATA_SYNC=always" "FRUGAL_DATA_SYNC: bad value 'always'"
printf '[search]\ndata_sync = sometimes\n' >"$TMP/sync.ini"
bad_start "INI data_sync = sometimes" "sync.ini:2: [search] data_sync: bad value 'sometimes'" --config "$TMP/sync.ini"
check "no data dir was made by the refused starts" [ ! -e "$TMP/d7" ]

sync_level sync-default
check "by default the index runs with synchronous=normal (got '$LV')" [ "$LV" = normal ]
sync_level sync-flag --data-sync full
check "--data-sync full: synchronous=full (got '$LV')" [ "$LV" = full ]
FRUGAL_DATA_SYNC=full sync_level sync-env
check "FRUGAL_DATA_SYNC=full: synchronous=full (got '$LV')" [ "$LV" = full ]
printf '[search]\ndata_sync = full\n' >"$TMP/full.ini"
sync_level sync-ini --config "$TMP/full.ini"
check "INI data_sync = full: synchronous=full (got '$LV')" [ "$LV" = full ]
FRUGAL_DATA_SYNC=full sync_level sync-flag-wins --data-sync normal
check "the flag beats the variable: synchronous=normal (got '$LV')" [ "$LV" = normal ]

FRUGAL_LOG=debug "$BIN" index ls --data "$TMP/sync-default.data" --data-sync full >/dev/null 2>"$TMP/cli-sync.err"
check "frugal index --data-sync full opens with synchronous=full ($(cat "$TMP/cli-sync.err"))" \
    grep -q 'opened (synchronous=full)' "$TMP/cli-sync.err"
FRUGAL_LOG=debug "$BIN" index ls --data "$TMP/sync-default.data" >/dev/null 2>"$TMP/cli-sync.err"
check "frugal index without it: synchronous=normal" grep -q 'opened (synchronous=normal)' "$TMP/cli-sync.err"
"$BIN" index check --data "$TMP/sync-default.data" --data-sync often >/dev/null 2>"$TMP/cli-sync.err"
rc=$?
check "frugal index --data-sync often exits 2 (rc $rc)" [ "$rc" -eq 2 ]
check "... naming it ($(cat "$TMP/cli-sync.err"))" grep -qF -- "--data-sync: bad value 'often'" "$TMP/cli-sync.err"
FRUGAL_DATA_SYNC=often "$BIN" index check --data "$TMP/sync-default.data" >/dev/null 2>"$TMP/cli-sync.err"
rc=$?
check "frugal index with FRUGAL_DATA_SYNC=often exits 2 (rc $rc: $(cat "$TMP/cli-sync.err"))" [ "$rc" -eq 2 ]

# ---- 2. a full disk ----
if ! mount -t tmpfs -o size=2m tmpfs "$MNT" 2>"$TMP/mount.err"; then
    echo "note [disk]: full-disk checks skipped: cannot mount a tmpfs here ($(head -c 200 "$TMP/mount.err"))"
    finish
fi
head -c 700000 /dev/zero >"$MNT/ballast"
DATA=$MNT/data

cat >"$TMP/ingest.py" <<'PY'
# ingest.py PORT COLL FIRST MAX_REQUESTS OUTDIR: requests of 5 documents
# (ids dNNNNN, each sentence holding its document's marker "mkNNNNN")
# until one is not 200; the last request and reply go to OUTDIR/req.json
# and OUTDIR/reply.json, the ids of the 200s to OUTDIR/stored.txt; prints
# "STATUS REQUESTS".
import http.client, json, random, sys
port, coll, first, max_req, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
W = ("river stone cloud field green quiet silver morning window garden paper bright winter harbor candle "
     "forest yellow basket mirror ladder thunder pepper meadow copper marble").split()
rng = random.Random(first)
status, k, stored = 200, first, []
for r in range(max_req):
    docs = []
    for i in range(5):
        m = "mk%05d" % k
        text = " ".join("%s %s." % (m, " ".join(rng.choice(W) for _ in range(9))) for _ in range(40))
        docs.append({"id": "d%05d" % k, "text": text})
        k += 1
    body = json.dumps({"documents": docs})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("POST", "/v1/collections/%s/documents" % coll, body, {"Content-Type": "application/json"})
    resp = c.getresponse()
    reply = resp.read()
    status = resp.status
    open(out + "/req.json", "w").write(body)
    open(out + "/reply.json", "wb").write(reply)
    if status != 200:
        break
    stored += [d["id"] for d in docs]
open(out + "/stored.txt", "w").write("\n".join(stored) + "\n")
print(status, r + 1)
PY

start full --models "$dir" --data "$DATA" --keep-alive -1 || finish
s=$(post $C "{\"name\": \"docs\", \"model\": \"$E\", \"chunk_size\": 64, \"chunk_overlap\": 8}")
check "a collection on the small disk is 201 (got $s: $(head -c 200 "$TMP/body"))" [ "$s" = 201 ]
s=$(post $C/spare/documents "{\"model\": \"$E\", \"documents\": [{\"id\": \"x\", \"text\": \"a spare collection\"}]}")
check "a second collection with a document is 200 (got $s)" [ "$s" = 200 ]

read -r st nreq < <(python3 "$TMP/ingest.py" "$PORT" docs 0 200 "$TMP")
check "ingesting until the disk is full ends in 507 (got $st after $nreq requests)" [ "$st" = 507 ]
cp "$TMP/reply.json" "$TMP/body"
cp "$TMP/reply.json" "$TMP/reply507.json"
check "the 507 has the error shape, code insufficient_storage, type server_error" err_shape 507 insufficient_storage
check "its message names the data directory and the lack of space ($(jb .error.message))" \
    jqe '.error.message | contains($d) and contains("no space left")' "$TMP/body" --arg d "$DATA"
check "it carries a result for each of the 5 documents" jqe '(.results | length) == 5' "$TMP/body"
check "each result has the id sent and whether it was stored" \
    jqe '[.results[] | .id] == ([$req[0].documents[] | .id]) and all(.results[]; (.stored | type) == "boolean")' \
    "$TMP/body" --slurpfile req "$TMP/req.json"
check "the stored ones come first and were added, the others are not_stored" \
    jqe '[.results[] | .stored] as $s | ($s | sort | reverse) == $s
         and all(.results[]; (.stored and .status == "added" and .chunks > 0) or (.stored == false and .status == "not_stored"))
         and any(.results[]; .stored == false)' "$TMP/body"
check "\"stored\" counts them" jqe '.stored == ([.results[] | select(.stored)] | length)' "$TMP/body"
jq -r '.results[] | select(.stored) | .id' "$TMP/body" >>"$TMP/stored.txt"
jq -r '.results[] | select(.stored | not) | .id' "$TMP/body" >"$TMP/unstored.txt"
sed -i '/^$/d' "$TMP/stored.txt"
nstored=$(wc -l <"$TMP/stored.txt")
echo "note [disk]: the disk was full after $nstored documents ($nreq requests)"
check "the server is alive after the 507" alive "$PID"
check "/health answers" [ "$(http GET /health)" = 200 ]
check "the 507 is logged as an error naming the directory" grep -q "error: .*$DATA: no space left" "$SRV_LOG"

"$BIN" index check --data "$DATA" >"$TMP/check.out" 2>&1
rc=$?
check "frugal index check after the 507 exits 0 (rc $rc: $(cat "$TMP/check.out"))" [ "$rc" -eq 0 ]
check "... and says consistent" grep -q ': consistent$' "$TMP/check.out"
http GET $C/docs >/dev/null
check "the collection counts the $nstored documents stored ($(jb .documents))" jqe '.documents == $n' "$TMP/body" --argjson n "$nstored"

# found(COLL, ID): a bm25 search for the document's marker finds only
# it, in as many chunks as it has (every sentence's marker in them).
found() {
    local m="mk${2#d}"
    post $C/$1/search "{\"query\": \"$m\", \"mode\": \"bm25\", \"top_k\": 100}" >/dev/null
    jqe '(.results | length) > 0 and all(.results[]; .document_id == $id)
        and ([.results[].text] | join(" ") | [scan($m)] | length) >= 40' "$TMP/body" --arg id "$2" --arg m "$m"
}
notfound() {
    local m="mk${2#d}"
    post $C/$1/search "{\"query\": \"$m\", \"mode\": \"bm25\", \"top_k\": 10}" >/dev/null
    jqe '(.results | length) == 0' "$TMP/body"
}
whole=0 missing=0
while read -r id; do found docs "$id" || { whole=$((whole + 1)); echo "  not found whole: $id"; }; done <"$TMP/stored.txt"
while read -r id; do notfound docs "$id" || { missing=$((missing + 1)); echo "  found but not stored: $id"; }; done <"$TMP/unstored.txt"
check "every stored document is found whole by its marker ($whole not)" [ "$whole" -eq 0 ]
check "no document reported not stored is found ($missing are)" [ "$missing" -eq 0 ]
s=$(post $C/docs/search '{"query": "river stone", "mode": "hybrid", "top_k": 5}')
check "a hybrid search on the full disk is 200 (got $s)" [ "$s" = 200 ]

# ---- 3. the disk full to the last byte ----
dd if=/dev/zero of="$MNT/fill" bs=4k 2>/dev/null
dd if=/dev/zero of="$MNT/fill2" bs=512 2>/dev/null
made=0 s=
for i in $(seq 1 20); do
    s=$(post $C "{\"name\": \"more$i\", \"model\": \"$E\"}")
    [ "$s" = 201 ] || break
    made=$((made + 1))
done
check "creating collections on the full disk ends in 507 (got $s after $made made)" [ "$s" = 507 ]
check "... insufficient_storage" err_shape 507 insufficient_storage
http GET $C >/dev/null
check "the refused collection does not exist" jqe 'all(.data[]; .name != $n)' "$TMP/body" --arg n "more$((made + 1))"

mkdir -p "$TMP/files"
for i in 1 2 3; do
    python3 -c "print(' '.join('file$i part%d of the notes.' % k for k in range(300)))" >"$TMP/files/f$i.txt"
done
"$BIN" index add --data "$DATA" --models "$dir" --collection docs "$TMP/files" >"$TMP/add.out" 2>"$TMP/add.err"
rc=$?
check "frugal index add on the full disk exits 1 (rc $rc)" [ "$rc" -eq 1 ]
check "... with a line naming the data directory and the lack of space ($(head -c 400 "$TMP/add.err"))" \
    grep -q "not stored: data directory $DATA: no space left" "$TMP/add.err"
check "... and one saying what to do" grep -q "free space and run it again" "$TMP/add.err"
"$BIN" index check --data "$DATA" >"$TMP/check.out" 2>&1
check "the index still checks clean ($(cat "$TMP/check.out"))" grep -q ': consistent$' "$TMP/check.out"
check "the server is alive" [ "$(http GET /health)" = 200 ]

# ---- 4. space again ----
rm -f "$MNT/ballast" "$MNT/fill" "$MNT/fill2"
s=$(http DELETE $C/spare)
check "deleting a collection after space was freed is 200 (got $s: $(head -c 200 "$TMP/body"))" [ "$s" = 200 ]
s=$(http POST $C/docs/documents -H 'Content-Type: application/json' --data-binary @"$TMP/req.json")
check "the refused request sent again is 200 (got $s: $(head -c 300 "$TMP/body"))" [ "$s" = 200 ]
check "... its stored documents unchanged, the others added, all stored" \
    jqe '[.results[] | select(.status == "added") | .id] == $u and all(.results[]; .stored)
         and all(.results[]; .status == "added" or .status == "unchanged")' "$TMP/body" \
    --argjson u "$(jq -R . "$TMP/unstored.txt" | jq -s .)"
cat "$TMP/stored.txt" "$TMP/unstored.txt" >"$TMP/all.txt"
read -r st nreq2 < <(python3 "$TMP/ingest.py" "$PORT" docs 90000 3 "$TMP")
check "three more requests are 200 (got $st after $nreq2)" [ "$st" = 200 ]
sed '/^$/d' "$TMP/stored.txt" >>"$TMP/all.txt"
total=$(wc -l <"$TMP/all.txt")
"$BIN" index add --data "$DATA" --models "$dir" --collection docs "$TMP/files" >"$TMP/add.out" 2>"$TMP/add.err"
rc=$?
check "frugal index add now exits 0 (rc $rc: $(cat "$TMP/add.err"))" [ "$rc" -eq 0 ]
check "... and adds the 3 files" grep -q '3 files: 3 added' "$TMP/add.out"
http GET $C/docs >/dev/null
check "the collection counts every document ($total + 3: $(jb .documents))" \
    jqe '.documents == $n' "$TMP/body" --argjson n $((total + 3))
"$BIN" index check --data "$DATA" >"$TMP/check.out" 2>&1
rc=$?
check "frugal index check exits 0 at the end (rc $rc: $(cat "$TMP/check.out"))" [ "$rc" -eq 0 ]
whole=0
while read -r id; do found docs "$id" || { whole=$((whole + 1)); echo "  not found whole: $id"; }; done \
    < <(cat "$TMP/unstored.txt"; tail -n 15 "$TMP/all.txt")
check "the documents stored after the space came back are found whole ($whole not)" [ "$whole" -eq 0 ]
check "the server is alive at the end" alive "$PID"

finish
