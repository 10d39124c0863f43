#!/bin/sh
# tests/data/gallery_v1/make.sh — how faceq.db and the expected outputs beside
# it were made: by the faceq of commit ca972f7 (schema version 1, the gallery
# before the storage seam), on LFW photos from ../shared/data/lfw-dev. Kept to
# show where the fixture comes from; test_gallery_store.cpp checks that today's
# faceq opens that file unchanged and answers exactly as the old one did.
#
#   tests/data/gallery_v1/make.sh OLD_FACEQ MODELS_DIR LFW_DIR
set -eu
faceq=$1 models=$2 lfw=$3
out=$(cd "$(dirname "$0")" && pwd)
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
ln -s "$models" "$home/models"
f() { "$faceq" --home "$home" "$@"; }
photo() { printf "%s/%s/%s_%04d.jpg" "$lfw" "$1" "$1" "$2"; }

# Names with letters whose case folds outside ASCII.
f enroll --pick largest -n "Émile Zola" "$(photo Aaron_Peirsol 1)" "$(photo Aaron_Peirsol 2)" >/dev/null
f enroll --pick largest -n "ÇAĞLAR Söyüncü" "$(photo Adam_Sandler 1)" "$(photo Adam_Sandler 2)" >/dev/null
f enroll --pick largest -n "Ñandú Øre" "$(photo Albert_Costa 2)" "$(photo Albert_Costa 4)" >/dev/null
f enroll --pick largest -n "İlkay Işık" "$(photo Alec_Baldwin 1)" "$(photo Alec_Baldwin 2)" >/dev/null
f enroll --pick largest -n "Σωκράτης" "$(photo Ali_Naimi 1)" "$(photo Ali_Naimi 3)" >/dev/null
f enroll --pick largest -n "Alice O'Hara" "$(photo Amanda_Bynes 1)" "$(photo Amanda_Bynes 2)" >/dev/null
# Strangers (one seen twice) and a known face, stored.
f analyze --store "$(photo Alvaro_Uribe 7)" "$(photo Alvaro_Uribe 10)" "$(photo Amelia_Vega 2)" \
    "$(photo Aaron_Peirsol 3)" >/dev/null

# search --name: one line per query, {"query", "persons": [records]}.
: >"$out/search.jsonl"
for q in "" "émile" "ÉMILE" "mile z" "ÇAĞLAR" "çağlar" "ÇağLar" "söyüncü" "SÖYÜNCÜ" "ñandú" "ØRE" "İlkay" \
    "ilkay" "IŞIK" "ışık" "σωκράτης" "ΣΩΚΡΆΤΗΣ" "o'hara" "person_" "unknown_" "a" "zz"; do
    f search --name "$q" | jq -cs --arg q "$q" '{query: $q, persons: .}' >>"$out/search.jsonl"
done
# The probes: analyze (no --store) and search --face, identity fields only.
: >"$out/analyze.jsonl"
: >"$out/nearest.jsonl"
for p in "Aaron_Peirsol 4" "Adam_Sandler 3" "Albert_Costa 5" "Alvaro_Uribe 17" "Ana_Guevara 1" "Amanda_Bynes 3"; do
    set -- $p
    rel=$(printf "%s/%s_%04d.jpg" "$1" "$1" "$2")
    f analyze "$lfw/$rel" |
        jq -c --arg f "$rel" '{file: $f, faces: [.faces[] | {person_id, identity, decision, distance, margin}]}' \
            >>"$out/analyze.jsonl"
    f search --face "$lfw/$rel" --top 3 | jq -cs --arg f "$rel" '{file: $f, results: [.[] | del(.file)]}' >>"$out/nearest.jsonl"
done
# One self-contained file: fold the WAL back in.
sqlite3 "$home/faceq.db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
cp "$home/faceq.db" "$out/faceq.db"
