#!/usr/bin/env bash
# scripts/bench-restore.sh: backproof's test restores against the bare tools.
#
#  PostgreSQL: a pgbench scale-50 database dumped with pg_dump -Fc, restored
#    by `backproof verify --restore` end to end (scratch instance start,
#    verification pass and sanity queries included) vs bare `pg_restore -j2`
#    into an already running server with default settings.
#  MariaDB: a ~240 MB mariadb-dump of two generated tables (2M and 1M rows),
#    restored by backproof vs `mariadb db < dump` into an already running
#    server.
#  Medians of $RUNS (3) interleaved runs, each bare restore into a fresh
#  database; rows P6 and P6b of issue 16.
#
# Run as root on Debian 12 with postgresql and mariadb-server installed
# (fixtures/make.sh installs them). Servers run on unix sockets in a temp
# dir and are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "run as root" >&2; exit 2; }
export LC_ALL=C

PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
cargo build --release --locked --quiet
BP=$PWD/target/release/backproof

WORK=$(mktemp -d /tmp/bench-restore.XXXXXX)
chmod 755 "$WORK"
MY_PID=''
cleanup() {
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pgdata" -m immediate -w stop >/dev/null 2>&1 || true
    [[ -z $MY_PID ]] || { kill "$MY_PID" 2>/dev/null; wait "$MY_PID" 2>/dev/null || true; }
    rm -rf "$WORK"
}
trap cleanup EXIT

RUNS=${RUNS:-3}
now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
secs() { echo "$2 - $1" | bc; }
field() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); f=[f for f in r['findings'] if f['check']=='restore'][0]; print(f['status'], f['evidence'].get('$2'))" "$1"; }

# ---------------------------------------------------------------- PostgreSQL
install -d -o postgres -g postgres "$WORK/pgdata" "$WORK/pgsock"
runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pgdata" -U postgres --auth=trust >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pgdata" -l "$WORK/pgsock/pg.log" -w \
    -o "-c listen_addresses='' -k $WORK/pgsock -p 5439" start >/dev/null
export PGHOST=$WORK/pgsock PGPORT=5439 PGUSER=postgres
"$PGBIN/createdb" bench
echo "== pgbench -i -s 50"
"$PGBIN/pgbench" -i -s 50 -q bench 2>&1 | tail -n 1
"$PGBIN/pg_dump" -Fc -f "$WORK/bench.dump" bench
echo "dump: $(du -h "$WORK/bench.dump" | cut -f1)"

pg_bare=(); pg_bp=()
for _ in $(seq "$RUNS"); do
    "$PGBIN/dropdb" --if-exists bare
    "$PGBIN/createdb" bare
    t0=$(now)
    "$PGBIN/pg_restore" -j2 --no-owner -d bare "$WORK/bench.dump"
    t1=$(now)
    pg_bare+=("$(secs "$t0" "$t1")")
    t0=$(now)
    env -u PGHOST -u PGPORT -u PGUSER "$BP" verify --restore --no-history --no-progress --format json "$WORK/bench.dump" >"$WORK/pg.json" || true
    t1=$(now)
    pg_bp+=("$(secs "$t0" "$t1")")
done
unset PGHOST PGPORT PGUSER
read -r pg_status pg_start < <(field "$WORK/pg.json" scratch_start_seconds)
read -r _ pg_restore_s < <(field "$WORK/pg.json" restore_seconds)

# ---------------------------------------------------------------- MariaDB
install -d -o mysql -g mysql "$WORK/mydata" "$WORK/myrun"
mariadb-install-db --no-defaults --user=mysql --datadir="$WORK/mydata" \
    --auth-root-authentication-method=normal --skip-test-db >/dev/null 2>&1
mariadbd --no-defaults --user=mysql --datadir="$WORK/mydata" \
    --socket="$WORK/myrun/my.sock" --skip-networking --log-error="$WORK/myrun/err.log" \
    </dev/null >/dev/null 2>&1 &
MY_PID=$!
MY=(--no-defaults -S "$WORK/myrun/my.sock" -u root)
for _ in $(seq 300); do mariadb-admin "${MY[@]}" ping >/dev/null 2>&1 && break; sleep 0.1; done
echo "== generating 2M rows in MariaDB"
mariadb "${MY[@]}" -e "CREATE DATABASE gen; CREATE DATABASE bare; USE gen;
  CREATE TABLE gen.t (id INT PRIMARY KEY, a CHAR(32), b CHAR(32), n INT) ENGINE=InnoDB;
  INSERT INTO gen.t SELECT seq, md5(seq), md5(seq+1), seq % 1000 FROM seq_1_to_2000000;
  CREATE TABLE gen.u LIKE gen.t; INSERT INTO gen.u SELECT * FROM gen.t WHERE id <= 1000000;"
mariadb-dump "${MY[@]}" --single-transaction gen >"$WORK/gen.sql"
echo "dump: $(du -h "$WORK/gen.sql" | cut -f1)"
my_bare=(); my_bp=()
for _ in $(seq "$RUNS"); do
    mariadb "${MY[@]}" -e "DROP DATABASE IF EXISTS bare; CREATE DATABASE bare"
    t0=$(now)
    mariadb "${MY[@]}" bare <"$WORK/gen.sql"
    t1=$(now)
    my_bare+=("$(secs "$t0" "$t1")")
    t0=$(now)
    "$BP" verify --restore --no-history --no-progress --format json "$WORK/gen.sql" >"$WORK/my.json" || true
    t1=$(now)
    my_bp+=("$(secs "$t0" "$t1")")
done
read -r my_status my_start < <(field "$WORK/my.json" scratch_start_seconds)
read -r _ my_restore_s < <(field "$WORK/my.json" restore_seconds)

pg_bare=$(median "${pg_bare[@]}"); pg_bp=$(median "${pg_bp[@]}")
my_bare=$(median "${my_bare[@]}"); my_bp=$(median "${my_bp[@]}")
echo
echo "== medians of $RUNS interleaved runs; ratio = backproof / bare (lower is better); last run's parts"
printf 'P6   PostgreSQL: bare pg_restore -j2 %.1fs; backproof end to end %.1fs (%s; restore %.1fs, scratch start %.2fs); ratio %.2f (goal <= 0.9)\n' \
    "$pg_bare" "$pg_bp" "$pg_status" "$pg_restore_s" "$pg_start" "$(echo "$pg_bp / $pg_bare" | bc -l)"
printf 'P6b  MariaDB:    bare mariadb < dump %.1fs; backproof end to end %.1fs (%s; restore %.1fs, scratch start %.2fs); ratio %.2f (goal <= 0.55)\n' \
    "$my_bare" "$my_bp" "$my_status" "$my_restore_s" "$my_start" "$(echo "$my_bp / $my_bare" | bc -l)"
