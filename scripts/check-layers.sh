#!/usr/bin/env bash
# The layering, checked (ARCHITECTURE.md "Layers", STYLE.md "Layout and
# boundaries").  For every file of src/ and include/frugal/, each
# #include "dir/name.h" must be:
#
#   - frugal/*.h (the public API), from anywhere; a public header includes
#     only other public headers;
#   - a header of the file's own layer or of a layer below it, in the order
#     of LAYERS (ARCHITECTURE.md's; a folder of src/ not in it is an error:
#     it gets its place there before code goes in it);
#   - a *_int.h only of the file's own module.  The file is the module:
#     engine/gguf_int.h is for gguf.c and gguf_*.c.  An internals header
#     named after its folder (kernels/kernels_int.h) is the whole layer's.
#     A module of files whose names do not share its prefix is listed in
#     MODULES.
#
# Tests are not checked (white-box: they may include a module's .c file).
# Prints each offence as file:line and exits 1 if there is one.
set -u
cd "$(dirname "$0")/.."

LAYERS="base kernels engine sched manager router search tasks server cli"

# header: the files (without .c/.h) besides its prefix's that belong to it
MODULES="
engine/model_int.h: forward encoder
search/index_int.h: ask
kernels/ops_int.h: table
server/reply_int.h: embeddings
"

rank() {
    local i=0 l
    for l in $LAYERS; do
        [ "$l" = "$1" ] && { echo $i; return; }
        i=$((i + 1))
    done
    echo -1
}

bad=0
offence() { echo "check-layers: $1"; bad=$((bad + 1)); }

for dir in src/*/; do
    d=$(basename "$dir")
    [ "$(rank "$d")" -ge 0 ] || offence "src/$d/: a folder that is not a layer (give it its place in ARCHITECTURE.md and in LAYERS here)"
done

while IFS= read -r hit; do
    file=${hit%%:*}; rest=${hit#*:}; line=${rest%%:*}
    inc=$(printf '%s\n' "${rest#*:}" | sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]*)".*/\1/')
    case $file in
    include/frugal/*)
        case $inc in frugal/*) ;; *) offence "$file:$line: a public header includes \"$inc\" (only frugal/*.h)" ;; esac
        continue ;;
    esac
    own=${file#src/}; own=${own%%/*}
    case $inc in
    frugal/*) continue ;;
    */*) ;;
    *) offence "$file:$line: \"$inc\": name its folder (\"$own/$inc\")"; continue ;;
    esac
    to=${inc%%/*}
    r_to=$(rank "$to"); r_own=$(rank "$own")
    [ "$r_own" -ge 0 ] || continue                                            # said above
    if [ "$r_to" -lt 0 ]; then
        offence "$file:$line: \"$inc\": $to is not a layer"
        continue
    fi
    if [ "$r_to" -gt "$r_own" ]; then
        offence "$file:$line: \"$inc\": $own includes from $to, a layer above it"
        continue
    fi
    case $inc in
    *_int.h)
        hdr=${inc#*/}; mod=${hdr%_int.h}
        base=$(basename "$file"); base=${base%.*}
        [ "$to" = "$own" ] && [ "$mod" = "$to" ] && continue                  # the layer's own
        if [ "$to" = "$own" ]; then
            case $base in "$mod" | "$mod"_*) continue ;; esac
            members=$(printf '%s\n' "$MODULES" | sed -n "s|^$inc:||p")
            case " $members " in *" $base "*) continue ;; esac
        fi
        offence "$file:$line: \"$inc\": the internals of another module (a module of several files: MODULES in scripts/check-layers.sh)"
        ;;
    esac
done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' -r src include/frugal --include='*.c' --include='*.h')

if [ $bad -gt 0 ]; then
    echo "check-layers: $bad offences"
    exit 1
fi
echo "check-layers: every include of src/ and include/frugal/ keeps the layering"
