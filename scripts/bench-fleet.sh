#!/usr/bin/env bash
# scripts/bench-fleet.sh: the scale of fleet runs (issue 13).
#
#  plan: a local tree of $ARTIFACTS empty dump files (1,000 directories),
#    made once and kept in $TREE. `backproof ls --count --shard 0/4` plans
#    the tree as `run --shard 0/4` does (lists, groups, shards; past 100,000
#    artifacts as a stream) and counts the quarter it owns; the peer is
#    `find -type f` over the same tree. Wall time and peak RSS of each, and
#    backproof's RSS per artifact.
#  shards: $FILES files of $MIB MiB (random bytes, a SHA256SUMS), one
#    PostgreSQL 15 history on a unix socket. `run` unsharded, then 4 shards
#    of `run --shard I/4` at once on this machine (the last judges the fleet
#    run). Wall time of each, and the ratio (1 run / 4 shards).
#  Warm cache, median of $RUNS runs each.
#
# Run as root on Debian 12 with postgresql 15 installed. ARTIFACTS (default
# 1000000), FILES (default 64), MIB (default 16), RUNS (default 3), TREE
# (default /tmp/bench-fleet-tree). BP names the binary (default:
# target/release/backproof, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
[[ $(id -u) -eq 0 ]] || { echo "run as root" >&2; exit 2; }
export LC_ALL=C
ARTIFACTS=${ARTIFACTS:-1000000}
FILES=${FILES:-64}
MIB=${MIB:-16}
RUNS=${RUNS:-3}
TREE=${TREE:-/tmp/bench-fleet-tree}
PGBIN=/usr/lib/postgresql/15/bin
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
if [[ -z ${BP:-} ]]; then
    cargo build --release --quiet
    BP=$PWD/target/release/backproof
fi
[[ -x $BP ]] || { echo "no backproof binary at $BP" >&2; exit 2; }

WORK=$(mktemp -d /tmp/bench-fleet.XXXXXX)
chmod 755 "$WORK"
cleanup() {
    [[ -f $WORK/pgdata/postmaster.pid ]] &&
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pgdata" -m immediate -w stop >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Seconds and peak KiB of one command, as "S KIB".
timed() { /usr/bin/time -f "%e %M" -o "$WORK/t" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }; cat "$WORK/t"; }

# --- plan ---------------------------------------------------------------
if [[ ! -f $TREE/.complete-$ARTIFACTS ]]; then
    rm -rf "$TREE"
    make_tree "$TREE" "$ARTIFACTS"
    touch "$TREE/.complete-$ARTIFACTS"
fi
find "$TREE" -type f >/dev/null; "$BP" ls --count "$TREE" --shard 0/4 >/dev/null
find_s=(); find_k=(); ls_s=(); ls_k=()
for _ in $(seq "$RUNS"); do
    read -r s k < <(timed find "$TREE" -type f); find_s+=("$s"); find_k+=("$k")
    read -r s k < <(timed "$BP" ls --count "$TREE" --shard 0/4); ls_s+=("$s"); ls_k+=("$k")
done
fs=$(printf '%s\n' "${find_s[@]}" | median); fk=$(printf '%s\n' "${find_k[@]}" | median)
bs=$(printf '%s\n' "${ls_s[@]}" | median); bk=$(printf '%s\n' "${ls_k[@]}" | median)
owned=$("$BP" ls --count "$TREE" --shard 0/4 --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["backups"])')
echo "plan: $ARTIFACTS artifacts; find -type f ${fs} s (${fk} KiB); backproof ls --count --shard 0/4 ${bs} s (${bk} KiB), owns $owned"
awk -v f="$fs" -v b="$bs" -v k="$bk" -v n="$ARTIFACTS" \
    'BEGIN { printf "plan: ratio find/backproof %.2fx; backproof peak RSS %.0f bytes per artifact\n", f / b, k * 1024 / n }'

# --- shards -------------------------------------------------------------
install -d -o postgres -g postgres "$WORK/pgdata" "$WORK/sock"
runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pgdata" -U backproof --auth=trust --no-sync >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pgdata" -w -l "$WORK/sock/pg.log" \
    -o "-c listen_addresses='' -c unix_socket_directories='$WORK/sock' -c fsync=off" start >/dev/null
HISTORY="postgres://backproof@${WORK//\//%2F}%2Fsock/postgres"
mkdir -p "$WORK/data"
for i in $(seq "$FILES"); do
    head -c $((MIB << 20)) /dev/urandom >"$WORK/data/blob-2026-11-$(printf %02d $((1 + i % 28)))-$i.dat"
done
(cd "$WORK/data" && sha256sum ./*.dat >SHA256SUMS)
cat >"$WORK/cfg.toml" <<EOF
[report]
dir = "$WORK/reports"
formats = ["json"]

[[sources]]
name = "files"
path = "$WORK/data"

[[checks]]
type = "verified"
source = "files"
scope = "all"
EOF
cat "$WORK/data"/* >/dev/null
one_s=(); four_s=()
for r in $(seq "$RUNS"); do
    start=$(date +%s.%N)
    "$BP" run --config "$WORK/cfg.toml" --history "$WORK/alone-$r.sqlite" >/dev/null 2>&1 || true
    one_s+=("$(echo "$(date +%s.%N) - $start" | bc)")
    start=$(date +%s.%N)
    for i in 0 1 2 3; do
        "$BP" run --config "$WORK/cfg.toml" --history "$HISTORY" --shard "$i/4" \
            --run-group "bench-$r" >/dev/null 2>&1 &
    done
    wait
    four_s+=("$(echo "$(date +%s.%N) - $start" | bc)")
done
o=$(printf '%s\n' "${one_s[@]}" | median); f=$(printf '%s\n' "${four_s[@]}" | median)
echo "shards: $FILES x $MIB MiB; 1 run ${o} s; 4 shards at once ${f} s (one PostgreSQL history)"
awk -v o="$o" -v f="$f" 'BEGIN { printf "shards: ratio 1 run / 4 shards on this machine %.2fx\n", o / f }'
"$BP" run --config "$WORK/cfg.toml" --history "$HISTORY" --finalize "bench-$RUNS" --format json |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print("shards: fleet run", r["fleet"]["group"], "judged,", len(r["fleet"]["shard_runs"]), "shards, missing", r["fleet"]["missing"], ", exit", r["summary"]["exit_code"])'
