#!/usr/bin/env bash
# S3 benchmark: `backproof verify s3://...` against `rclone hashsum sha256
# --download` on the same SeaweedFS server and data, in the same run. Prints
# seconds (best of $RUNS), peak RSS, and the ratio rclone_time /
# backproof_time (above 1: backproof is faster). backproof computes more on
# the way: SHA-256, the store's checksums (multipart ETag, composite CRC32)
# and the structure inspection.
#
#   scripts/bench-s3.sh                  # one 4 GiB object, uploaded multipart
#   BENCH_BIG_MIB=512 scripts/bench-s3.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH_DIR=${BENCH_DIR:-/tmp/backproof-bench-s3}
BIG_MIB=${BENCH_BIG_MIB:-4096}
RUNS=${RUNS:-3}
PORT=${BENCH_S3_PORT:-18433}

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need rclone rclone
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
. scripts/bench-lib.sh

cargo build --release --quiet
BP=$PWD/target/release/backproof

s3_env "$PORT"

mkdir -p "$BENCH_DIR"
start_weed "$BENCH_DIR/data" "$PORT"

KEY=big/disk-2026-11-20.img
if ! rclone lsf "sw:bench/$KEY" 2>/dev/null | grep -q .; then
  echo "uploading ${BIG_MIB} MiB (multipart)" >&2
  rclone mkdir sw:bench
  head -c "$((BIG_MIB * 1024 * 1024))" /dev/urandom | rclone rcat "sw:bench/$KEY"
fi

best() { sort -n | head -1; }
time_of() { # prints "seconds peak_kib"
  /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -1
}
bp_runs=(); rc_runs=(); bp_rss=0
for _ in $(seq 1 "$RUNS"); do
  read -r t m < <(time_of "$BP" verify --no-progress --no-history "s3://bench/big")
  bp_runs+=("$t"); [ "$m" -gt "$bp_rss" ] && bp_rss=$m
  read -r t _ < <(time_of rclone hashsum sha256 --download "sw:bench/big")
  rc_runs+=("$t")
done
bp=$(printf '%s\n' "${bp_runs[@]}" | best)
rc=$(printf '%s\n' "${rc_runs[@]}" | best)
sum_bp=$("$BP" verify --no-progress --no-history --format json s3://bench/big | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["backups"][0]["digests"][list(r["backups"][0]["digests"])[0]]["sha256"])')
sum_rc=$(rclone hashsum sha256 --download sw:bench/big | cut -d' ' -f1)
[ "$sum_bp" = "$sum_rc" ] || { echo "sha256 differs: $sum_bp vs $sum_rc" >&2; exit 1; }
printf '%-34s %8s s  peak RSS %s MiB\n' "backproof verify s3://" "$bp" "$((bp_rss / 1024))"
printf '%-34s %8s s\n' "rclone hashsum sha256 --download" "$rc"
python3 -c "print(f'ratio rclone/backproof: {$rc/$bp:.2f}  ({$BIG_MIB} MiB, sha256 equal)')"
