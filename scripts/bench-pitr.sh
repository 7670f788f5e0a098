#!/usr/bin/env bash
# scripts/bench-pitr.sh: backproof's point-in-time restore against the same
# steps done by hand.
#
#  A PostgreSQL cluster with archive_mode = on (archive_command into a
#  directory), pgbench -i -s $SCALE, a pg_basebackup -Fp, pgbench traffic,
#  a target time, more traffic, pg_switch_wal().
#  backproof: `run --config` with the source's wal_archive and
#    [sources.restore] target_time, end to end (the verification pass over the base backup,
#    the copy, the replay, the sanity queries and the teardown included).
#  by hand: cp -a the base backup, recovery.signal, postgres with the same
#    restore_command, recovery_target_time and promote, wait until
#    pg_is_in_recovery() is false, count(*) every pgbench table, stop, rm.
#  Each is run 3 times; the medians and their ratio are printed.
#
# Run as root on Debian 12 with postgresql installed. SCALE (default 10)
# and SECONDS_OF_TRAFFIC (default 10 on each side of the target) change the
# size. BP names the binary (default: target/release/backproof if built,
# else target/debug/backproof).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "run as root" >&2; exit 2; }
export LC_ALL=C
SCALE=${SCALE:-10}
TRAFFIC=${SECONDS_OF_TRAFFIC:-10}

PGBIN=/usr/lib/postgresql/15/bin
if [[ -z ${BP:-} ]]; then
    BP=$PWD/target/release/backproof
    [[ -x $BP ]] || BP=$PWD/target/debug/backproof
fi
[[ -x $BP ]] || { echo "build backproof first (cargo build)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/bench-pitr.XXXXXX)
chmod 755 "$WORK"
cleanup() {
    for d in "$WORK/pgdata" "$WORK/hand"; do
        [[ -f $d/postmaster.pid ]] &&
            runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }

install -d -o postgres -g postgres "$WORK/pgdata" "$WORK/sock" "$WORK/archive" "$WORK/backups"
runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pgdata" -U postgres --auth=trust --no-sync >/dev/null
cat >>"$WORK/pgdata/postgresql.conf" <<EOF
wal_level = replica
archive_mode = on
archive_command = 'test ! -f $WORK/archive/%f && cp %p $WORK/archive/%f'
EOF
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pgdata" -l "$WORK/sock/pg.log" -w \
    -o "-c listen_addresses='' -k $WORK/sock -p 5449" start >/dev/null
export PGHOST=$WORK/sock PGPORT=5449 PGUSER=postgres
"$PGBIN/createdb" bench
echo "== pgbench -i -s $SCALE, base backup, ${TRAFFIC}s of traffic each side of the target"
"$PGBIN/pgbench" -i -s "$SCALE" -q bench 2>&1 | tail -n 1
runuser -u postgres -- "$PGBIN/pg_basebackup" -h "$WORK/sock" -p 5449 -U postgres \
    -D "$WORK/backups/base" -Fp -X stream -c fast
"$PGBIN/pgbench" -c 2 -T "$TRAFFIC" bench >/dev/null 2>&1
TARGET=$("$PGBIN/psql" -X -At -c "SELECT now()")
"$PGBIN/pgbench" -c 2 -T "$TRAFFIC" bench >/dev/null 2>&1
last=$("$PGBIN/psql" -X -At -c "SELECT pg_walfile_name(pg_switch_wal())")
until [[ $("$PGBIN/psql" -X -At -c "SELECT last_archived_wal FROM pg_stat_archiver") == "$last" ]]; do sleep 0.1; done
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pgdata" -m fast -w stop >/dev/null
unset PGHOST PGPORT PGUSER
echo "base backup: $(du -sh "$WORK/backups/base" | cut -f1), archive: $(ls "$WORK/archive" | wc -l) files ($(du -sh "$WORK/archive" | cut -f1)), target $TARGET"

cat >"$WORK/backproof.toml" <<EOF
[report]
dir = "$WORK/reports"
formats = ["json"]

[[sources]]
name = "bench"
path = "$WORK/backups"
wal_archive = "$WORK/archive"

[sources.restore]
target_time = "$TARGET"
required_tables = ["pgbench_accounts"]
EOF

by_hand() {
    local d=$WORK/hand
    cp -a "$WORK/backups/base" "$d"
    rm -f "$d/backup_manifest"
    chown -R postgres:postgres "$d"
    chmod 700 "$d"
    touch "$d/recovery.signal"
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d" -l "$WORK/sock/hand.log" -w -t 3600 -o \
        "-c listen_addresses='' -k $WORK/sock -p 5450 -c archive_mode=off -c hot_standby=off -c fsync=off \
         -c restore_command='test -f $WORK/archive/%f && cp $WORK/archive/%f %p' \
         -c recovery_target_time='$TARGET' -c recovery_target_action=promote" start >/dev/null
    local q=("$PGBIN/psql" -X -At -h "$WORK/sock" -p 5450 -U postgres -d bench)
    until [[ $("${q[@]}" -c "SELECT pg_is_in_recovery()" 2>/dev/null) == f ]]; do sleep 0.05; done
    for t in pgbench_accounts pgbench_branches pgbench_tellers pgbench_history; do
        "${q[@]}" -c "SELECT count(*) FROM $t" >/dev/null
    done
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null
    rm -rf "$d"
}

hand=() bp=() inside=()
for i in 1 2 3; do
    t0=$(now); by_hand; t1=$(now)
    hand+=("$(secs "$t0" "$t1")")
    t0=$(now)
    "$BP" run --no-progress --format json --config "$WORK/backproof.toml" \
        --history "$WORK/history.sqlite" >"$WORK/run.json" 2>/dev/null || true
    t1=$(now)
    bp+=("$(secs "$t0" "$t1")")
    read -r status restore_s < <(python3 -c "
import json,sys
f=[f for f in json.load(open(sys.argv[1]))['findings'] if f['check']=='restore'][0]
print(f['status'], f['evidence'].get('restore_seconds', 0) + f['evidence'].get('sanity_seconds', 0))" "$WORK/run.json")
    [[ $status == pass ]] || { echo "backproof's restore did not pass: $status" >&2; cat "$WORK/run.json" >&2; exit 1; }
    inside+=("$restore_s")
    echo "run $i: by hand ${hand[-1]}s, backproof ${bp[-1]}s (restore + sanity ${inside[-1]}s)"
done
h=$(median "${hand[@]}") b=$(median "${bp[@]}") r=$(median "${inside[@]}")
echo "median: by hand ${h}s, backproof end to end ${b}s (its restore + sanity ${r}s)"
echo "ratio backproof / by hand: $(echo "scale=2; $b / $h" | bc) (restore + sanity only: $(echo "scale=2; $r / $h" | bc))"
