#!/usr/bin/env bash
# Verifies one EBS snapshot of a 2 GiB volume on a local moto server and
# reports blocks verified per second and backproof's peak RSS.
# BENCH_BLOCKS: allocated blocks (moto's blocks are 512 bytes; default 20000),
# spread evenly over the volume. Needs moto[server] and boto3 (scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/backproof-venv/bin:$PATH
blocks=${BENCH_BLOCKS:-20000}
work=$(mktemp -d /tmp/bench-ebs.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; rm -rf "$work"' EXIT
until curl -s -o /dev/null "http://127.0.0.1:$port/moto-api/"; do sleep 0.2; done
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
export AWS_EC2_METADATA_DISABLED=true
python3 - "$blocks" <<'PY'
import base64, hashlib, os, sys, boto3
n = int(sys.argv[1])
ebs = boto3.client("ebs", region_name="ap-southeast-2")
snap = ebs.start_snapshot(VolumeSize=2, Tags=[{"Key": "backup", "Value": "bench"}])["SnapshotId"]
step = (2 << 30) // 512 // n
for i in range(n):
    data = os.urandom(512)
    ebs.put_snapshot_block(SnapshotId=snap, BlockIndex=i * step, BlockData=data, DataLength=512,
        Checksum=base64.b64encode(hashlib.sha256(data).digest()).decode(), ChecksumAlgorithm="SHA256")
ebs.complete_snapshot(SnapshotId=snap, ChangedBlocksCount=n)
PY
# The dev profile builds dependencies at opt-level 2 (hashing, TLS); BENCH_PROFILE=release for a release build.
profile=${BENCH_PROFILE:-debug}
if [ "$profile" = release ]; then cargo build --release --quiet; else cargo build --quiet; fi
start=$(date +%s.%N)
/usr/bin/time -v "target/$profile/backproof" verify --no-history --no-progress \
  "ebs://ap-southeast-2?tag:backup=bench" >"$work/out.txt" 2>"$work/time.txt" || true
end=$(date +%s.%N)
cat "$work/out.txt" | tail -1
secs=$(echo "$end - $start" | bc -l)
rss=$(awk -F: '/Maximum resident/ {gsub(/ /,"",$2); print $2}' "$work/time.txt")
printf 'blocks: %d in %.1f s = %.0f blocks/s (2 GiB image streamed); peak RSS %d MiB\n' \
  "$blocks" "$secs" "$(echo "$blocks / $secs" | bc -l)" "$((rss / 1024))"
