#!/usr/bin/env bash
# Minimises each target's corpus for committing (what `cargo fuzz cmin` does,
# with a size cap, by edges only): the campaign's corpus is moved to $FULL/<target>, its
# inputs up to the target's cap (plus any in $EXTRA/<target>, e.g. fixed
# crash inputs) are merged back into fuzz/corpus/<target>, and every input
# of the full corpus is timed (fuzz/timing.py).
#   fuzz/minimise.sh [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
B=fuzz/target/x86_64-unknown-linux-gnu/release
FULL=${FULL:-/tmp/fuzz-corpus-full}
EXTRA=${EXTRA:-/tmp/fuzz-regress}
# Bigger inputs stay out of the committed corpus (fuzz/seeds.py rebuilds
# the big fixtures); the caps keep it to a few hundred KiB per target.
declare -A keep=([inspect]=32768 [snapshots]=40960 [pgdump]=16384 [tar]=16384 [image]=32768
                 [text]=16384 [compressed]=32768 [config]=16384)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(inspect snapshots pgdump tar image text compressed config)
for t in "${targets[@]}"; do
  old=$FULL/$t
  mkdir -p "$FULL" fuzz/logs
  [ -d "$old" ] || mv "fuzz/corpus/$t" "$old"
  in=$(mktemp -d)
  find "$old" -type f -size -"$((keep[$t] + 1))"c -exec cp {} "$in/" \;
  [ -d "$EXTRA/$t" ] && find "$EXTRA/$t" -type f -size -"$((keep[$t] + 1))"c -exec cp {} "$in/" \;
  rm -rf "fuzz/corpus/$t"
  mkdir -p "fuzz/corpus/$t"
  # -use_counters=0: a smallest set of inputs reaching every edge reached,
  # not every hit-count bucket (a fifth of the files for the config).
  "$B/$t" -merge=1 -use_counters=0 -rss_limit_mb=2048 -timeout=10 "fuzz/corpus/$t" "$in" > "fuzz/logs/$t.cmin.log" 2>&1
  rm -rf "$in"
  echo "$t: $(ls "$old" | wc -l) files $(du -sb "$old" | cut -f1) B -> $(ls "fuzz/corpus/$t" | wc -l) files $(du -sb "fuzz/corpus/$t" | cut -f1) B"
  python3 fuzz/timing.py "$t" "$old"
done
