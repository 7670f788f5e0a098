#!/usr/bin/env bash
# scripts/bench-physical.sh: verifying a base backup and its WAL, backproof
# against pg_verifybackup on the same backup in the same run.
#
#  A PostgreSQL 15 cluster with archive_mode = on (archive_command into a
#  directory), pgbench -i -s $SCALE, a pg_basebackup -Fp -X none (CRC32C
#  manifest, the WAL only in the archive), $SECONDS_OF_TRAFFIC s of pgbench,
#  pg_switch_wal().
#  peer: pg_verifybackup -w ARCHIVE BASE (every manifest file's size and
#    checksum, then pg_waldump over the WAL the backup needs).
#  backproof: verify --no-history --wal-archive ARCHIVE BASE (the same, plus
#    every archived segment's page headers and record CRCs, pg_control, the
#    pairing and the recoverable window), with its parallel readers.
#  A second row adds to the peer what backproof's evidence holds beyond
#  it: a SHA-256 of every file (openssl dgst, 2 processes).
#  Warm cache (one untimed run of each first), median of $RUNS runs each,
#  alternated; the ratio is peer seconds / backproof seconds (above 1:
#  backproof is faster). Peak RSS of backproof from /usr/bin/time.
#
# Run as root on Debian 12 with postgresql 15 installed. SCALE (default 50),
# SECONDS_OF_TRAFFIC (default 10), RUNS (default 3). BP names the binary
# (default: target/release/backproof, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "run as root" >&2; exit 2; }
export LC_ALL=C
SCALE=${SCALE:-50}
TRAFFIC=${SECONDS_OF_TRAFFIC:-10}
RUNS=${RUNS:-3}
PGBIN=/usr/lib/postgresql/15/bin
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
if [[ -z ${BP:-} ]]; then
    cargo build --release --quiet
    BP=$PWD/target/release/backproof
fi
[[ -x $BP ]] || { echo "no backproof binary at $BP" >&2; exit 2; }

WORK=$(mktemp -d /tmp/bench-physical.XXXXXX)
chmod 755 "$WORK"
cleanup() {
    [[ -f $WORK/pgdata/postmaster.pid ]] &&
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pgdata" -m immediate -w stop >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

install -d -o postgres -g postgres "$WORK/pgdata" "$WORK/sock" "$WORK/wal" "$WORK/bases"
runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pgdata" -U postgres --auth=trust --no-sync >/dev/null
cat >>"$WORK/pgdata/postgresql.conf" <<EOF
wal_level = replica
archive_mode = on
archive_command = 'test ! -f $WORK/wal/%f && cp %p $WORK/wal/%f'
EOF
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pgdata" -l "$WORK/sock/pg.log" -w \
    -o "-c listen_addresses='' -k $WORK/sock -p 5451" start >/dev/null
export PGHOST=$WORK/sock PGPORT=5451 PGUSER=postgres
"$PGBIN/createdb" bench
echo "== pgbench -i -s $SCALE, pg_basebackup -Fp -X none, ${TRAFFIC}s of traffic"
"$PGBIN/pgbench" -i -s "$SCALE" -q bench 2>&1 | tail -n 1
runuser -u postgres -- "$PGBIN/pg_basebackup" -h "$WORK/sock" -p 5451 -U postgres \
    -D "$WORK/bases/base" -Fp -X none -c fast
"$PGBIN/pgbench" -c 2 -T "$TRAFFIC" bench >/dev/null 2>&1
last=$("$PGBIN/psql" -X -At -c "SELECT pg_walfile_name(pg_switch_wal())")
until [[ $("$PGBIN/psql" -X -At -c "SELECT last_archived_wal FROM pg_stat_archiver") == "$last" ]]; do sleep 0.1; done
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pgdata" -m fast -w stop >/dev/null
unset PGHOST PGPORT PGUSER
base_bytes=$(du -sb "$WORK/bases/base" | cut -f1)
wal_bytes=$(du -sb "$WORK/wal" | cut -f1)
echo "base backup: $((base_bytes / 1048576)) MiB, $(find "$WORK/bases/base" -type f | wc -l) files; archive: $(ls "$WORK/wal" | wc -l) files, $((wal_bytes / 1048576)) MiB"

peer() { "$PGBIN/pg_verifybackup" -q -w "$WORK/wal" "$WORK/bases/base"; }
# backproof also keeps a SHA-256 of every file (base and archive) in its
# evidence, for the tamper-evident history; the peer with that added:
peer_sha() {
    peer && find "$WORK/bases/base" "$WORK/wal" -type f -print0 |
        xargs -0 -P2 -n200 openssl dgst -sha256 >/dev/null
}
ours() {
    /usr/bin/time -f '%M' -o "$WORK/rss" "$BP" verify --no-history --no-progress \
        --format json --wal-archive "$WORK/wal" "$WORK/bases/base" >"$WORK/out.json"
}
# Both must pass the same backup, or the timing means nothing.
peer || { echo "pg_verifybackup failed on the clean backup" >&2; exit 1; }
ours || { echo "backproof failed on the clean backup:" >&2; head -c 4000 "$WORK/out.json" >&2; exit 1; }

now() { date +%s.%N; }
timed() { local t0; t0=$(now); "$@"; echo "$(now) - $t0" | bc; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
p=() q=() o=() rss=()
for _ in $(seq "$RUNS"); do
    p+=("$(timed peer)")
    q+=("$(timed peer_sha)")
    o+=("$(timed ours)")
    rss+=("$(cat "$WORK/rss")")
done
pm=$(median "${p[@]}")
qm=$(median "${q[@]}")
om=$(median "${o[@]}")
mib=$(( $(printf '%s\n' "${rss[@]}" | sort -n | tail -n 1) / 1024 ))
total=$(( (base_bytes + wal_bytes) / 1048576 ))
printf '%-34s %8s %8s %10s\n' workload peer backproof ratio
printf '%-34s %7.2fs %7.2fs %9.2fx\n' "base backup s$SCALE + WAL" "$pm" "$om" "$(echo "$pm / $om" | bc -l)"
printf '%-34s %7.2fs %7.2fs %9.2fx\n' "  peer + openssl sha256 of each file" "$qm" "$om" "$(echo "$qm / $om" | bc -l)"
printf 'throughput: pg_verifybackup %.0f MiB/s, backproof %.0f MiB/s (%d MiB); backproof peak RSS %d MiB\n' \
    "$(echo "$total / $pm" | bc -l)" "$(echo "$total / $om" | bc -l)" "$total" "$mib"
