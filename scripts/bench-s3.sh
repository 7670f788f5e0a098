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
. scripts/bench-lib.sh

BENCH_DIR=${BENCH_DIR:-/tmp/backproof-bench-s3}
BIG_MIB=${BENCH_BIG_MIB:-4096}
RUNS=${RUNS:-3}
PORT=${BENCH_S3_PORT:-18433}

need rclone rclone
need /usr/bin/time time

backproof_bin

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

# P5 (issue 16): one multipart object with SHA-256 checksums plus 64 x 1 MiB
# objects, 512 MiB in all, written by boto3 as an uploader asking for
# SHA-256 would. backproof checks the store's SHA-256 and leaves out the
# ETag MD5s; the row with --digest md5 shows what they cost.
P5_MIB=${BENCH_P5_MIB:-448}
venv=/opt/backproof-venv
"$venv/bin/python" -c 'import boto3' 2>/dev/null || "$venv/bin/pip" install --quiet boto3
if ! rclone lsf sw:bench/p5/ 2>/dev/null | grep -q .; then
  echo "uploading ${P5_MIB} MiB (multipart, SHA-256) + 64 x 1 MiB" >&2
  rclone mkdir sw:bench
  "$venv/bin/python" - "$P5_MIB" <<'PY'
import io, os, sys
import boto3
from boto3.s3.transfer import TransferConfig
mib = int(sys.argv[1])
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"])
parts = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20)
s3.upload_fileobj(io.BytesIO(os.urandom(mib << 20)), "bench", "p5/disk-2026-11-20.img",
                  ExtraArgs={"ChecksumAlgorithm": "SHA256"}, Config=parts)
for i in range(64):
    s3.put_object(Bucket="bench", Key=f"p5/small/db-{i:02d}-2026-11-20.bin",
                  Body=os.urandom(1 << 20), ChecksumAlgorithm="SHA256")
PY
fi
median3() { sort -n | sed -n "$(( (RUNS + 1) / 2 ))p"; }
bp_runs=(); md5_runs=(); rc_runs=(); p5_rss=0
for _ in $(seq 1 "$RUNS"); do
  read -r t m < <(time_of "$BP" verify --no-progress --no-history "s3://bench/p5")
  bp_runs+=("$t"); [ "$m" -gt "$p5_rss" ] && p5_rss=$m
  read -r t _ < <(time_of "$BP" verify --no-progress --no-history --digest sha256 --digest md5 "s3://bench/p5")
  md5_runs+=("$t")
  read -r t _ < <(time_of rclone hashsum sha256 --download "sw:bench/p5")
  rc_runs+=("$t")
done
bp=$(printf '%s\n' "${bp_runs[@]}" | median3)
md5=$(printf '%s\n' "${md5_runs[@]}" | median3)
rc=$(printf '%s\n' "${rc_runs[@]}" | median3)
"$BP" verify --no-progress --no-history "s3://bench/p5" >/dev/null || { echo "backproof verify s3://bench/p5 did not pass" >&2; exit 1; }
printf 'P5   verify s3:// (%s MiB + 64 x 1 MiB)  %6s s  peak RSS %s MiB;  with --digest md5 %6s s;  rclone hashsum sha256 --download %6s s\n' \
  "$P5_MIB" "$bp" "$((p5_rss / 1024))" "$md5" "$rc"
python3 -c "print(f'P5   ratio rclone/backproof: {$rc/$bp:.2f} (with md5: {$rc/$md5:.2f})  (goal >= 2.0)')"
