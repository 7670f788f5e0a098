#!/usr/bin/env bash
# Listing benchmark (issue 16, P8): `backproof ls` against `find`, and
# `backproof compare` against `rclone check`, on the same data in the same
# run, median of $RUNS interleaved runs; peak RSS of each backproof run.
# Also planning (issue 13, item 5): `ls --count --shard 0/4` plans and shards
# as `run --shard` does and keeps no backup: its time and peak RSS.
# Ratios are peer_time / backproof_time (above 1: backproof is faster).
#
# Data: a local tree of $FILES small files (1,000 directories) and an
# identical copy of it; with BENCH_S3_OBJECTS > 0, the first
# BENCH_S3_OBJECTS of them uploaded twice to SeaweedFS on 127.0.0.1
# (source and copy prefixes).
#
#   scripts/bench-listing.sh                        # 1,000,000 files, 100,000 objects
#   BENCH_FILES=200000 BENCH_S3_OBJECTS=0 scripts/bench-listing.sh
#
# Two facts shape the numbers: `find -type f` reads directory entries only,
# while `ls` also needs each file's size and time (one stat, as
# `find -printf '%s %T@'`) and, unless --no-read, reads its first bytes to
# tell its kind (on S3 a GET per object, against the peer's LISTs alone); and
# on this machine two trees of 1,000,000 files hardly stay in the page
# cache, so the runs of both tools swing with the disk.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh

BENCH_DIR=${BENCH_DIR:-/tmp/backproof-bench-listing}
FILES=${BENCH_FILES:-1000000}
OBJECTS=${BENCH_S3_OBJECTS:-100000}
RUNS=${RUNS:-3}
PORT=${BENCH_S3_PORT:-18533}

need rclone rclone
need python3 python3
need bc bc
need /usr/bin/time time

backproof_bin

SRC=$BENCH_DIR/src-$FILES
DST=$BENCH_DIR/dst-$FILES
mkdir -p "$BENCH_DIR"
if [ ! -d "$SRC" ]; then
  echo "making $SRC" >&2
  make_tree "$SRC.tmp" "$FILES" named
  mv "$SRC.tmp" "$SRC"
fi
if [ ! -d "$DST" ]; then
  echo "copying it to $DST" >&2
  cp -a "$SRC" "$DST.tmp" && mv "$DST.tmp" "$DST"
fi

# measure NAME CMD...: one run; appends seconds to NAME's list, peak KiB to NAME_rss.
declare -A secs rss
measure() {
  local name=$1 out
  shift
  out=$(/usr/bin/time -f '%e %M' "$@" 2>&1 >/dev/null | tail -1)
  secs[$name]+="${out% *} "
  local kib=${out#* }
  [ "$kib" -gt "${rss[$name]:-0}" ] && rss[$name]=$kib
  return 0
}
median() { printf '%s\n' ${secs[$1]} | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p"; }
ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }
row() { # id name backproof peer_label peer goal
  printf '%-4s %-30s %8ss  peak %4s MiB  vs %-34s %8ss  ratio %5s  (goal %s)\n' \
    "$1" "$2" "$(median "$3")" "$(( ${rss[$3]} / 1024 ))" "$4" "$(median "$5")" \
    "$(ratio "$(median "$5")" "$(median "$3")")" "$6"
}

# compare must find the trees equal, or the timing measures something else.
"$BP" compare --no-history "$SRC" "$DST" >/dev/null || { echo "backproof compare: the trees differ" >&2; exit 1; }

echo "== $FILES files, $(nproc) cores, median of $RUNS interleaved runs =="
for _ in $(seq "$RUNS"); do
  measure ls "$BP" ls "$SRC"
  measure lsnr "$BP" ls --no-read "$SRC"
  measure plan "$BP" ls --count --shard 0/4 "$SRC"
  measure find find "$SRC" -type f
  measure findstat find "$SRC" -type f -printf '%s %T@ %p\n'
  measure compare "$BP" compare --no-history "$SRC" "$DST"
  measure check rclone check --log-level ERROR "$SRC" "$DST"
done
row P8 "ls --no-read, local tree" lsnr "find -type f" find ">= 0.67"
row -- "ls --no-read, local tree" lsnr "find -printf '%s %T@ %p' (stats)" findstat "-"
row -- "ls (reads heads), local tree" ls "find -type f" find "-"
row -- "ls (reads heads), local tree" ls "find -printf '%s %T@ %p' (stats)" findstat "-"
row -- "plan + shard 0/4, local tree" plan "find -printf '%s %T@ %p' (stats)" findstat "- (issue 13: time, RSS)"
row P8 "compare, local trees" compare "rclone check" check ">= 1, RSS <= 150 MiB"

[ "$OBJECTS" -gt 0 ] || exit 0
s3_env "$PORT"
start_weed "$BENCH_DIR/s3data" "$PORT"

# The first $OBJECTS files of the tree, whole directories of them.
per=$(( FILES / 1000 > 0 ? FILES / 1000 : 1 ))
dirs=$(( (OBJECTS + per - 1) / per ))
if [ "$(rclone lsf -R --files-only sw:bench/copy 2>/dev/null | wc -l)" -lt "$OBJECTS" ]; then
  echo "uploading $OBJECTS objects twice" >&2
  rclone mkdir sw:bench
  (cd "$SRC" && find $(ls | head -n "$dirs") -type f | sort) | head -n "$OBJECTS" >"$BENCH_DIR/objects"
  for side in src copy; do
    rclone copy --transfers 32 --checkers 32 --files-from-raw "$BENCH_DIR/objects" "$SRC" "sw:bench/$side"
  done
fi
n=$(rclone lsf -R --files-only sw:bench/src | wc -l)
echo "== an S3 prefix of $n objects on SeaweedFS, median of $RUNS interleaved runs =="
"$BP" compare --no-history s3://bench/src s3://bench/copy >/dev/null || { echo "backproof compare: the prefixes differ" >&2; exit 1; }
for _ in $(seq "$RUNS"); do
  measure s3ls "$BP" ls s3://bench/src
  measure s3lsnr "$BP" ls --no-read s3://bench/src
  measure s3plan "$BP" ls --count --shard 0/4 s3://bench/src
  measure lsf rclone lsf -R --files-only sw:bench/src
  measure lsfstat rclone lsf -R --files-only --format pst sw:bench/src
  measure s3compare "$BP" compare --no-history s3://bench/src s3://bench/copy
  measure s3check rclone check sw:bench/src sw:bench/copy
done
row P8 "ls --no-read, S3 prefix" s3lsnr "rclone lsf -R" lsf ">= 1"
row -- "ls --no-read, S3 prefix" s3lsnr "rclone lsf -R --format pst" lsfstat "-"
row -- "ls (reads heads), S3 prefix" s3ls "rclone lsf -R" lsf "-"
row -- "plan + shard 0/4, S3 prefix" s3plan "rclone lsf -R" lsf "- (issue 13: time, RSS)"
row P8 "compare, S3 prefixes" s3compare "rclone check" s3check ">= 1"
