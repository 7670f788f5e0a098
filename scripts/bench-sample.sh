#!/usr/bin/env bash
# Sampling benchmark (issue 16, P7): bytes read per night by
# `run --sample rotate:7` over an archive of 30 unchanged backups plus one
# new a night, against the same run without sampling. Each simulated night adds a
# backup, drops the oldest, and runs against one SQLite history; the bytes
# are the run report's own `summary.bytes_read`.
#
#   scripts/bench-sample.sh                     # 31 x 16 MiB, 28 nights
#   BENCH_MIB=4 BENCH_NIGHTS=14 scripts/bench-sample.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh

BENCH_DIR=${BENCH_DIR:-/tmp/backproof-bench-sample}
MIB=${BENCH_MIB:-16}
NIGHTS=${BENCH_NIGHTS:-28}
KEPT=31 # 30 unchanged + tonight's new one
EVERY=7

need python3 python3
need bc bc
backproof_bin

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR/archive"
cat >"$BENCH_DIR/backproof.toml" <<EOF
[[sources]]
name = "archive"
path = "$BENCH_DIR/archive"
EOF
# Day d's backup: MIB of random bytes, its date in the name.
add() { head -c "$((MIB * 1024 * 1024))" /dev/urandom >"$BENCH_DIR/archive/app-$(date -u -d "2026-01-01 + $1 days" +%F).bin"; }
for d in $(seq 1 "$KEPT"); do add "$d"; done
bytes_read() { python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["bytes_read"])'; }
night() { "$BP" run --config "$BENCH_DIR/backproof.toml" --history "$BENCH_DIR/h.sqlite" --no-progress --format json "$@" 2>/dev/null | bytes_read; }

size=$((MIB * 1024 * 1024))
echo "== $((KEPT - 1)) unchanged backups of $MIB MiB + 1 new a night, --sample rotate:$EVERY, $NIGHTS nights =="
sum=0; max=0; counted=0
for n in $(seq 1 "$NIGHTS"); do
  add "$((KEPT + n))"
  oldest=$(ls "$BENCH_DIR/archive" | head -1)
  rm "$BENCH_DIR/archive/$oldest"
  read_bytes=$(night --sample "rotate:$EVERY")
  # The first $EVERY nights fill the ledger (night 1 reads everything).
  if [ "$n" -gt "$EVERY" ]; then
    sum=$((sum + read_bytes)); counted=$((counted + 1))
    [ "$read_bytes" -gt "$max" ] && max=$read_bytes
  fi
  printf 'night %2d: %6.1f MiB read\n' "$n" "$(echo "$read_bytes / 1048576" | bc -l)"
done
full=$(night)
python3 - "$sum" "$counted" "$max" "$full" "$size" "$KEPT" "$EVERY" <<'EOF'
import sys
total, nights, peak, full, size, kept, every = map(int, sys.argv[1:])
mean = total / nights
goal = size + (kept - 1) * size / every * 1.10  # the new one + 1/N of the rest, +10 %
mib = 1 << 20
print(f"P7   rotate:{every}: mean {mean / mib:.1f} MiB a night, max {peak / mib:.1f} MiB "
      f"(nights {every + 1}+); without sampling {full / mib:.1f} MiB; "
      f"goal <= {goal / mib:.1f} MiB: mean {'met' if mean <= goal else 'NOT met'}, "
      f"max {'met' if peak <= goal else 'not met'}; mean/unsampled {mean / full:.3f}")
EOF
