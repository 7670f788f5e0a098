#!/usr/bin/env bash
# Hashing benchmark: backproof against openssl, sha256sum and b3sum on the
# same data in the same run (backproof with --no-history: the peers record
# nothing; one extra line shows the cost of recording). Prints seconds (best of $RUNS) and the ratio
# peer_time / backproof_time (above 1: backproof is faster).
#
#   scripts/bench.sh            # 4 GiB file + 20,000 x 64 KiB tree under $BENCH_DIR
#   BENCH_BIG_MIB=512 BENCH_FILES=2000 scripts/bench.sh   # a quick one
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH_DIR=${BENCH_DIR:-/tmp/backproof-bench}
BIG_MIB=${BENCH_BIG_MIB:-4096}
FILES=${BENCH_FILES:-20000}
RUNS=${RUNS:-3}

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need b3sum b3sum
need openssl openssl
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }

cargo build --release --quiet
BP=$PWD/target/release/backproof

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

# best_of CMD...: least wall seconds over $RUNS runs, output discarded.
best_of() {
  local best=
  for _ in $(seq "$RUNS"); do
    local t0 t1 d
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || true
    t1=$(date +%s.%N)
    d=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$best" ] || (( $(echo "$d < $best" | bc -l) )); then best=$d; fi
  done
  printf '%.3f' "$best"
}
ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }
gbps() { printf '%.2f' "$(echo "$1 / $2 / 1000000000" | bc -l)"; }
command -v bc >/dev/null || { apt-get update -qq && apt-get install -y -qq bc >/dev/null; }

report() { # name bytes backproof_secs peer_name peer_secs
  printf '%-34s %8ss %6s GB/s   vs %-28s %8ss  ratio %s\n' "$1" "$3" "$(gbps "$2" "$3")" "$4" "$5" "$(ratio "$5" "$3")"
}

BIG_BYTES=$(stat -c %s "$BIG")
TREE_BYTES=$((FILES * 65536))
cat "$BIG" >/dev/null; cat "$TREE"/* >/dev/null   # warm the page cache: this measures hashing

echo "== warm cache, $(nproc) cores, $RUNS runs each, best shown =="
bp_sha=$(best_of "$BP" verify "$BIG" --digest sha256 --no-progress --no-history)
report "backproof sha256 (big file)" "$BIG_BYTES" "$bp_sha" "openssl dgst -sha256" "$(best_of openssl dgst -sha256 "$BIG")"
report "backproof sha256 (big file)" "$BIG_BYTES" "$bp_sha" "sha256sum" "$(best_of sha256sum "$BIG")"
bp_b3=$(best_of "$BP" verify "$BIG" --digest blake3 --no-progress --no-history)
report "backproof blake3 (big file)" "$BIG_BYTES" "$bp_b3" "b3sum (all threads, mmap)" "$(best_of b3sum "$BIG")"
report "backproof blake3 (big file)" "$BIG_BYTES" "$bp_b3" "b3sum --num-threads 1" "$(best_of b3sum --num-threads 1 "$BIG")"
bp_all=$(best_of "$BP" verify "$BIG" --digest sha256 --digest blake3 --digest md5 --no-progress --no-history)
report "backproof sha256+blake3+md5 (big)" "$BIG_BYTES" "$bp_all" "sha256sum; b3sum; md5sum" \
  "$(best_of sh -c "sha256sum '$BIG'; b3sum '$BIG'; md5sum '$BIG'")"

bp_tree=$(best_of "$BP" verify "$TREE" --digest sha256 --no-progress --no-history)
report "backproof sha256 (tree)" "$TREE_BYTES" "$bp_tree" "openssl dgst (xargs -P$(nproc))" \
  "$(best_of sh -c "cd '$TREE' && ls | xargs -P$(nproc) -n 1000 openssl dgst -sha256")"
report "backproof sha256 (tree)" "$TREE_BYTES" "$bp_tree" "sha256sum (xargs -P$(nproc))" \
  "$(best_of sh -c "cd '$TREE' && ls | xargs -P$(nproc) -n 1000 sha256sum")"
bp_tree_b3=$(best_of "$BP" verify "$TREE" --digest blake3 --no-progress --no-history)
report "backproof blake3 (tree)" "$TREE_BYTES" "$bp_tree_b3" "b3sum (xargs -P$(nproc))" \
  "$(best_of sh -c "cd '$TREE' && ls | xargs -P$(nproc) -n 1000 b3sum")"

if echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
  echo "== cold cache (page cache dropped before each run) =="
  cold() { local t0 t1; sync; echo 3 >/proc/sys/vm/drop_caches; t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; t1=$(date +%s.%N); printf '%.3f' "$(echo "$t1 - $t0" | bc -l)"; }
  c_bp=$(cold "$BP" verify "$TREE" --digest sha256 --no-progress --no-history)
  c_peer=$(cold sh -c "cd '$TREE' && ls | xargs -P$(nproc) -n 1000 sha256sum")
  report "backproof sha256 (cold tree)" "$TREE_BYTES" "$c_bp" "sha256sum (xargs -P$(nproc))" "$c_peer"
else
  echo "(cannot drop the page cache here: cold-read numbers skipped)"
fi

# What recording the evidence costs on top (the default for verify).
hist=$(mktemp -u /tmp/backproof-bench-history.XXXXXX)
t0=$(date +%s.%N); "$BP" verify "$TREE" --digest sha256 --no-progress --history "$hist" >/dev/null 2>&1 || true; t1=$(date +%s.%N)
rm -f "$hist"
printf '%-34s %8ss   (the tree again, appending every backup and finding to a fresh SQLite history)\n' "backproof sha256 (tree) + history" "$(printf '%.3f' "$(echo "$t1 - $t0" | bc -l)")"

echo "== memory =="
/usr/bin/time -f '%M' -o "$BENCH_DIR/rss" "$BP" verify "$BIG" --digest sha256 --digest blake3 --digest md5 --no-progress --no-history >/dev/null || true
echo "backproof peak RSS verifying $(du -h "$BIG" | cut -f1) with three digests: $(( $(cat "$BENCH_DIR/rss") / 1024 )) MiB"
