#!/usr/bin/env bash
# Hashing benchmark: backproof against openssl, sha256sum and b3sum on the
# same data in the same run (backproof with --no-history: the peers record
# nothing; one extra line shows the cost of recording). Prints the median
# seconds of $RUNS runs and the ratio peer_time / backproof_time (above 1:
# backproof is faster), one row per line of issue 16's table (P1-P4c).
#
#   scripts/bench.sh            # 4 GiB file + 20,000 x 64 KiB tree under $BENCH_DIR
#   BENCH_BIG_MIB=512 BENCH_FILES=2000 scripts/bench.sh   # a quick one
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh

BENCH_DIR=${BENCH_DIR:-/tmp/backproof-bench}
BIG_MIB=${BENCH_BIG_MIB:-4096}
FILES=${BENCH_FILES:-20000}
RUNS=${RUNS:-5}

need b3sum b3sum
need openssl openssl
need /usr/bin/time time

backproof_bin

mkdir -p "$BENCH_DIR"
BIG=$BENCH_DIR/big-${BIG_MIB}M.bin
TREE=$BENCH_DIR/tree-$FILES
if [ ! -f "$BIG" ]; then
  echo "making $BIG" >&2
  head -c "$((BIG_MIB * 1024 * 1024))" /dev/urandom >"$BIG.tmp" && mv "$BIG.tmp" "$BIG"
fi
if [ ! -d "$TREE" ]; then
  echo "making $TREE" >&2
  mkdir -p "$TREE.tmp"
  head -c "$((FILES * 65536))" /dev/urandom | split -b 65536 -a 5 - "$TREE.tmp/f"
  mv "$TREE.tmp" "$TREE"
fi

# median CMD...: the median wall seconds of $RUNS runs, output discarded.
median() {
  local ts=()
  for _ in $(seq "$RUNS"); do
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || true
    t1=$(date +%s.%N)
    ts+=("$(echo "$t1 - $t0" | bc -l)")
  done
  printf '%s\n' "${ts[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p" | xargs printf '%.3f'
}
ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }
gbps() { printf '%.2f' "$(echo "$1 / $2 / 1000000000" | bc -l)"; }
command -v bc >/dev/null || { apt-get update -qq && apt-get install -y -qq bc >/dev/null; }

row() { # id goal name bytes backproof_secs peer_name peer_secs
  printf '%-4s %-30s %7ss %6s GB/s  vs %-34s %7ss  ratio %5s  (goal %s)\n' \
    "$1" "$3" "$5" "$(gbps "$4" "$5")" "$6" "$7" "$(ratio "$7" "$5")" "$2"
}

BIG_BYTES=$(stat -c %s "$BIG")
TREE_BYTES=$((FILES * 65536))
cat "$BIG" >/dev/null; cat "$TREE"/* >/dev/null   # warm the page cache: this measures hashing
verify() { "$BP" verify "$@" --no-progress --no-history; }

echo "== warm cache, $(nproc) cores, median of $RUNS runs =="
row P1 ">= 1.25" "sha256, one big file" "$BIG_BYTES" "$(median verify "$BIG" --digest sha256)" \
  "openssl dgst -sha256" "$(median openssl dgst -sha256 "$BIG")"
row P2 ">= 0.95" "blake3, one big file" "$BIG_BYTES" "$(median verify "$BIG" --digest blake3)" \
  "b3sum (all threads, mmap)" "$(median b3sum "$BIG")"
# P3's ratio is the slowest digest alone over all three in one pass: the
# goal is a wall time at most 1.15x of it, a ratio of at least 0.87.
row P3 ">= 0.87 (wall <= 1.15x)" "sha256+blake3+md5, one pass" "$BIG_BYTES" \
  "$(median verify "$BIG" --digest sha256 --digest blake3 --digest md5)" \
  "md5sum (the slowest alone)" "$(median md5sum "$BIG")"
row P4 ">= 1.4" "sha256, $FILES x 64 KiB" "$TREE_BYTES" "$(median verify "$TREE" --digest sha256)" \
  "xargs -P$(nproc) -n500 openssl dgst" \
  "$(median sh -c "cd '$TREE' && ls | xargs -P$(nproc) -n500 openssl dgst -sha256")"
row -- "-" "blake3, $FILES x 64 KiB" "$TREE_BYTES" "$(median verify "$TREE" --digest blake3)" \
  "xargs -P$(nproc) -n500 b3sum" "$(median sh -c "cd '$TREE' && ls | xargs -P$(nproc) -n500 b3sum")"

if echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
  echo "== cold cache (page cache dropped before each run) =="
  cold() { sync; echo 3 >/proc/sys/vm/drop_caches; "$@"; }
  row P4c ">= 3.5" "sha256, $FILES x 64 KiB, cold" "$TREE_BYTES" "$(median cold verify "$TREE" --digest sha256)" \
    "xargs -P$(nproc) sha256sum" "$(median cold sh -c "cd '$TREE' && ls | xargs -P$(nproc) -n500 sha256sum")"
else
  echo "(cannot drop the page cache here: P4c skipped)"
fi

# What recording the evidence costs on top (the default for verify).
hist=$(mktemp -u /tmp/backproof-bench-history.XXXXXX)
t0=$(date +%s.%N); "$BP" verify "$TREE" --digest sha256 --no-progress --history "$hist" >/dev/null 2>&1 || true; t1=$(date +%s.%N)
rm -f "$hist"
printf '%-35s %7ss   (the tree again, appending every backup and finding to a fresh SQLite history)\n' "     sha256, tree + history" "$(printf '%.3f' "$(echo "$t1 - $t0" | bc -l)")"

echo "== memory =="
/usr/bin/time -f '%M' -o "$BENCH_DIR/rss" "$BP" verify "$BIG" --digest sha256 --digest blake3 --digest md5 --no-progress --no-history >/dev/null || true
echo "backproof peak RSS verifying $(du -h "$BIG" | cut -f1) with three digests: $(( $(cat "$BENCH_DIR/rss") / 1024 )) MiB (goal <= 64 MiB)"
