#!/usr/bin/env bash
# Runs the fuzz campaign (docs/FUZZING.md): each target for SECONDS (default
# 600) from its committed corpus plus fresh seeds, then per-input timings
# over the resulting corpus. Logs go to fuzz/logs/ (not committed).
#   fuzz/campaign.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(inspect snapshots pgdump tar image text compressed config)
export RUSTC_BOOTSTRAP=1
flags=(--sanitizer none --codegen-units 16)
declare -A max_len=([inspect]=262144 [snapshots]=131072 [pgdump]=131072 [tar]=262144 [image]=262144
                    [text]=65536 [compressed]=131072 [config]=16384)
seeds=${SEEDS:-/tmp/fuzz-seeds}
[ -d "$seeds" ] || python3 fuzz/seeds.py "$seeds"
mkdir -p fuzz/logs
cargo fuzz build "${flags[@]}"
# A private copy: rebuilding (a fix) while a target runs must not swap the
# binary under libFuzzer's forked children.
bin=$(mktemp -d)
cp fuzz/target/x86_64-unknown-linux-gnu/release/{inspect,snapshots,pgdump,tar,image,text,compressed,config} "$bin/"
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  # Fork mode keeps going after a crash, timeout or OOM (each saved under
  # fuzz/artifacts/<target>/), so one finding does not end the run.
  "$bin/$t" "fuzz/corpus/$t" "$seeds/$t" -artifact_prefix="fuzz/artifacts/$t/" \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len="${max_len[$t]}" \
    -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -print_final_stats=1 \
    > "fuzz/logs/$t.log" 2>&1 || echo "$t: libFuzzer exit $?" >> "fuzz/logs/$t.log"
  tail -n 3 "fuzz/logs/$t.log"
done
