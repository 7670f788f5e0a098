//! Point-in-time test restores of PostgreSQL base backups (issue 11, item
//! 5), on a real PostgreSQL 15 cluster made here: `archive_mode = on` with
//! an `archive_command` into a directory, `pg_basebackup -Fp` and `-Ft -z`,
//! then transaction A (rows 'first'), a target time, transaction B (rows
//! 'second') and `pg_switch_wal()`. Never skipped: PostgreSQL is installed
//! by the test script.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::*;

const PORT: &str = "5451";

fn pg_bin(tool: &str) -> PathBuf {
    Path::new("/usr/lib/postgresql/15/bin").join(tool)
}

fn as_postgres(args: &[&str]) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).args(args);
    c
}

fn sh(what: &str, cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        o.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The cluster's backups and archive, made once per test process.
struct Made {
    root: tempfile::TempDir,
    /// Holds `base/`, a `pg_basebackup -Fp -X stream` directory.
    plain: PathBuf,
    /// Holds `base.tar.gz` and `pg_wal.tar.gz` (`-Ft -z -X stream`).
    tar: PathBuf,
    archive: PathBuf,
    /// After transaction A committed and before transaction B.
    between: String,
    /// The first archived segment after the plain base backup's start:
    /// needed to reach either transaction.
    needed: String,
}

fn made() -> &'static Made {
    static MADE: OnceLock<Made> = OnceLock::new();
    MADE.get_or_init(make)
}

fn make() -> Made {
    let root = tempfile::Builder::new()
        .prefix("bp-pitr-")
        .tempdir()
        .unwrap();
    // The server's user reads the backups and the archive.
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let r = root.path();
    let (data, archive, sock) = (r.join("pgdata"), r.join("archive"), r.join("sock"));
    let (plain, tar) = (r.join("plain"), r.join("tar"));
    for d in [&data, &archive, &sock, &plain, &tar] {
        fs::create_dir_all(d).unwrap();
        sh(
            "chown",
            Command::new("chown").arg("postgres:postgres").arg(d),
        );
    }
    let s = |p: &Path| p.to_str().unwrap().to_string();
    sh(
        "initdb",
        &mut as_postgres(&[
            &s(&pg_bin("initdb")),
            "-D",
            &s(&data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
        ]),
    );
    // In the cluster's own config, as in production: the base backups
    // carry it, and a scratch cluster that kept it would archive into
    // the archive it replays.
    let mut conf = fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .unwrap();
    use std::io::Write;
    writeln!(
        conf,
        "wal_level = replica\narchive_mode = on\narchive_command = 'test ! -f {arch}/%f && cp %p {arch}/%f'",
        arch = s(&archive)
    )
    .unwrap();
    let opts = format!(
        "-c listen_addresses='' -k {sock} -p {PORT} -c fsync=off",
        sock = s(&sock)
    );
    sh(
        "pg_ctl start",
        as_postgres(&[
            &s(&pg_bin("pg_ctl")),
            "-D",
            &s(&data),
            "-l",
            &s(&sock.join("pg.log")),
            "-w",
            "-o",
            &opts,
            "start",
        ])
        .stdout(Stdio::null()),
    );
    let psql = |db: &str, sql: &str| {
        sh(
            sql,
            as_postgres(&[&s(&pg_bin("psql")), "-X", "-At", "-v", "ON_ERROR_STOP=1"]).args([
                "-h",
                &s(&sock),
                "-p",
                PORT,
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ]),
        )
    };
    psql("postgres", "CREATE DATABASE app");
    psql(
        "app",
        "CREATE TABLE t (id serial PRIMARY KEY, what text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())",
    );
    let basebackup = |args: &[&str], into: &Path| {
        sh(
            "pg_basebackup",
            as_postgres(&[&s(&pg_bin("pg_basebackup"))])
                .args(["-h", &s(&sock), "-p", PORT, "-U", "postgres"])
                .args(args)
                .args(["-X", "stream", "-c", "fast", "--no-sync", "-D", &s(into)]),
        );
    };
    basebackup(&["-Fp"], &plain.join("base"));
    basebackup(&["-Ft", "-z"], &tar);
    psql(
        "app",
        "INSERT INTO t (what) SELECT 'first' FROM generate_series(1, 10)",
    );
    std::thread::sleep(Duration::from_millis(300));
    let between = psql("postgres", "SELECT now()");
    std::thread::sleep(Duration::from_millis(1000));
    psql(
        "app",
        "INSERT INTO t (what) SELECT 'second' FROM generate_series(1, 10)",
    );
    let last = psql("postgres", "SELECT pg_walfile_name(pg_switch_wal())");
    // Archived once the server says so: cp makes the file before it is whole.
    let until = Instant::now() + Duration::from_secs(30);
    while psql("postgres", "SELECT last_archived_wal FROM pg_stat_archiver") != last {
        assert!(Instant::now() < until, "{last} was never archived");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = as_postgres(&[
        &s(&pg_bin("pg_ctl")),
        "-D",
        &s(&data),
        "-m",
        "immediate",
        "-w",
        "stop",
    ])
    .stdout(Stdio::null())
    .status();
    let label = fs::read_to_string(plain.join("base/backup_label")).unwrap();
    let start = label
        .lines()
        .find_map(|l| l.split("(file ").nth(1))
        .map(|f| f.trim_end_matches(')').to_string())
        .unwrap();
    let needed = segments(&archive).into_iter().find(|n| *n > start).unwrap();
    Made {
        root,
        plain,
        tar,
        archive,
        between,
        needed,
    }
}

/// The archive's segment names, sorted.
fn segments(archive: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(archive)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 24)
        .collect();
    names.sort();
    names
}

/// Every file of the archive and its bytes.
fn snapshot(archive: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(archive)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// A config with one source at `dir` and its `[sources.restore]` lines.
/// A config with one source, `dir`, whose WAL archive is `archive`.
fn config(tmp: &Path, dir: &Path, archive: Option<&Path>, restore: &str) -> PathBuf {
    let path = tmp.join("backproof.toml");
    let archive = archive
        .map(|a| format!("wal_archive = \"{}\"\n", a.display()))
        .unwrap_or_default();
    fs::write(
        &path,
        format!(
            "[report]\ndir = \"{}\"\nformats = [\"json\"]\n\n[[sources]]\nname = \"pg\"\npath = \"{}\"\n{archive}\n[sources.restore]\n{restore}\n",
            tmp.join("reports").display(),
            dir.display()
        ),
    )
    .unwrap();
    path
}

struct Run {
    code: i32,
    report: Value,
    stderr: String,
    pid: u32,
}

/// `run --config` in its own process, whose pid names its scratch dirs.
fn run(config: &Path, tmpdir: Option<&Path>) -> Run {
    let mut cmd = bin();
    if let Some(t) = tmpdir {
        cmd.env("TMPDIR", t);
    }
    let child = cmd
        .args(["run", "--no-progress", "--format", "json", "--config"])
        .arg(config)
        .arg("--history")
        .arg(config.with_extension("sqlite"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let report = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {stderr}\n{}", String::from_utf8_lossy(&o.stdout)));
    Run {
        code: code(&o),
        report,
        stderr,
        pid,
    }
}

fn restore_finding(report: &Value) -> &Value {
    let restores: Vec<&Value> = findings(report)
        .iter()
        .filter(|f| f["check"] == "restore")
        .collect();
    assert_eq!(restores.len(), 1, "{}", describe(report));
    restores[0]
}

/// Nothing of that run is left: no scratch dir, no server process.
fn assert_nothing_left(pid: u32) {
    assert_eq!(
        scratch_dirs_of(&std::env::temp_dir(), Some(pid)),
        Vec::<PathBuf>::new()
    );
    let needle = format!("backproof-scratch-{pid}-");
    let until = Instant::now() + Duration::from_secs(10);
    while !processes_mentioning(&needle).is_empty() {
        assert!(Instant::now() < until, "a server of run {pid} still runs");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn restore_lines(m: &Made, target: &str) -> String {
    format!(
        "{target}\nrto = \"10m\"\nfreshness_column = \"t.at\"\nrequired_tables = [\"t\"]\n\
         assertions = [\"SELECT count(*) = 10 FROM t WHERE what = 'first'\", \"SELECT count(*) = 0 FROM t WHERE what = 'second'\"]"
    )
    .replace("{between}", &m.between)
}

fn pitr(f: &Value) -> &Value {
    &f["evidence"]["pitr"]
}

/// Target between A and B, on the plain and the tar base backup: A's rows
/// and not B's, timed against the RTO, the server's stop line and the
/// replay timestamp before the target, the data loss measured from the
/// data; the archive untouched; nothing left behind.
#[test]
fn a_restore_to_a_time_between_two_transactions_has_the_first_and_not_the_second() {
    let m = made();
    let before = snapshot(&m.archive);
    for dir in [&m.plain, &m.tar] {
        let tmp = tempfile::tempdir().unwrap();
        let lines = restore_lines(m, "target_time = \"{between}\"");
        let r = run(&config(tmp.path(), dir, Some(&m.archive), &lines), None);
        let f = restore_finding(&r.report);
        assert_eq!(r.code, 0, "{f:#}");
        assert_eq!(f["status"], "pass", "{f:#}");
        let ev = &f["evidence"];
        assert_eq!(ev["engine"], "postgres-pitr");
        assert_eq!(ev["row_counts"]["app.t"], 10, "{f:#}");
        assert!(
            ev["assertions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["result"] == true)
        );
        assert!(ev["restore_seconds"].as_f64().unwrap() > 0.0);
        assert_eq!(ev["rto_seconds"], 600.0);
        let p = pitr(f);
        assert_eq!(p["reached"], true, "{f:#}");
        assert!(
            p["stop_line"]
                .as_str()
                .unwrap()
                .starts_with("recovery stopping before commit of transaction"),
            "{f:#}"
        );
        let target =
            chrono::DateTime::parse_from_str(&m.between, "%Y-%m-%d %H:%M:%S%.f%#z").unwrap();
        let replayed = chrono::DateTime::parse_from_str(
            p["replay_timestamp"].as_str().unwrap(),
            "%Y-%m-%d %H:%M:%S%.f%#z",
        )
        .unwrap();
        assert!(replayed < target, "{f:#}");
        // A committed ~0.3 s before the target: that is the data lost.
        let loss = p["data_loss_seconds"].as_f64().unwrap();
        assert!((0.1..1.0).contains(&loss), "{f:#}");
        assert!(
            f["summary"]
                .as_str()
                .unwrap()
                .contains(&p["target"].as_str().unwrap().to_string())
        );
        assert_nothing_left(r.pid);
    }
    assert!(before == snapshot(&m.archive), "the archive changed");
}

/// The default target, `latest`: the latest instant the paired archive
/// recovers to (B's commit, the last), less a second. The replay must stop
/// there and say so: A's rows and not B's, no longer "whatever the archive
/// ends with".
#[test]
fn latest_is_the_latest_recoverable_instant_less_a_margin() {
    let m = made();
    let tmp = tempfile::tempdir().unwrap();
    let lines = "target = \"latest\"\nfreshness_column = \"t.at\"\nmin_rows = { t = 10 }\n\
                 assertions = [\"SELECT count(*) = 0 FROM t WHERE what = 'second'\"]";
    let cfg = config(tmp.path(), &m.plain, Some(&m.archive), lines);
    let promise = "\n[[checks]]\nname = \"pit\"\ntype = \"pitr\"\nsource = \"pg\"\nrestore_within = \"1d\"\nrto = \"10m\"\n";
    fs::write(&cfg, fs::read_to_string(&cfg).unwrap() + promise).unwrap();
    let r = run(&cfg, None);
    let pit = |report: &Value| {
        findings(report)
            .iter()
            .find(|f| f["check"] == "pitr")
            .cloned()
            .unwrap_or_else(|| panic!("{}", describe(report)))
    };
    let p = pit(&r.report);
    assert_eq!(p["status"], "pass", "{p:#}");
    assert!(
        p["summary"]
            .as_str()
            .unwrap()
            .starts_with("point-in-time restore:"),
        "{p:#}"
    );
    let f = restore_finding(&r.report);
    assert_eq!((r.code, f["status"].as_str()), (0, Some("pass")), "{f:#}");
    assert_eq!(f["evidence"]["row_counts"]["app.t"], 10, "{f:#}");
    let p = pitr(f);
    assert_eq!(p["reached"].as_bool(), Some(true), "{f:#}");
    let from = p["target_from"].as_str().unwrap_or_default();
    assert!(
        from.starts_with("latest: the latest recoverable instant") && from.ends_with("less 1s"),
        "{f:#}"
    );
    assert!(
        p["stop_line"]
            .as_str()
            .is_some_and(|l| l.contains("recovery stopping before commit")),
        "{f:#}"
    );
    assert!(p["segments_restored"].as_u64().unwrap() >= 2, "{f:#}");
    assert_nothing_left(r.pid);

    // Without the archive the base backup only reaches its consistency
    // point: a restore, but no point-in-time one, so the promise fails.
    // (A history of its own: the first run's row counts would be a drop.)
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), &m.plain, None, "");
    fs::write(&cfg, fs::read_to_string(&cfg).unwrap() + promise).unwrap();
    let r = run(&cfg, None);
    let f = restore_finding(&r.report);
    assert_eq!(f["status"], "warn", "{f:#}");
    let p = pit(&r.report);
    assert_eq!(p["status"], "fail", "{p:#}");
}

/// A copy of the archive without the segment both transactions need.
fn gapped(m: &Made, tmp: &Path) -> PathBuf {
    let copy = tmp.join("archive");
    sh(
        "cp -a",
        Command::new("cp").arg("-a").arg(&m.archive).arg(&copy),
    );
    fs::remove_file(copy.join(&m.needed)).unwrap();
    copy
}

/// A segment missing from the archive is a failed restore naming it, for
/// a target time (the server stops short of it) and for latest (the
/// replay stops at the gap although later segments exist): never a pass.
#[test]
fn a_segment_missing_from_the_archive_fails_naming_it() {
    let m = made();
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let archive = gapped(m, tmp.path());
    let lines = restore_lines(m, "target_time = \"{between}\"");
    let r = run(&config(tmp.path(), &m.plain, Some(&archive), &lines), None);
    let f = restore_finding(&r.report);
    assert_eq!((r.code, f["status"].as_str()), (1, Some("fail")), "{f:#}");
    let summary = f["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!("the WAL archive has no {}", m.needed)),
        "{f:#}"
    );
    assert!(
        summary.contains("recovery ended before configured recovery target was reached"),
        "{f:#}"
    );
    assert_eq!(pitr(f)["missing_segment"], m.needed.as_str());
    assert_eq!(pitr(f)["reached"], false);
    assert_nothing_left(r.pid);

    let r = run(&config(tmp.path(), &m.plain, Some(&archive), ""), None);
    let f = restore_finding(&r.report);
    assert_eq!((r.code, f["status"].as_str()), (1, Some("fail")), "{f:#}");
    assert!(
        f["summary"].as_str().unwrap().contains(&format!(
            "the replay stopped at {}, missing from the archive",
            m.needed
        )),
        "{f:#}"
    );
    assert_nothing_left(r.pid);
}

/// A target before the base backup started cannot be reached from it:
/// no verdict on the backup (exit 2), and no server was started for it.
#[test]
fn a_target_before_the_base_backup_is_an_error_not_a_verdict() {
    let m = made();
    let tmp = tempfile::tempdir().unwrap();
    let lines = "target_time = \"2000-01-01 00:00:00+00\"";
    let r = run(&config(tmp.path(), &m.plain, Some(&m.archive), lines), None);
    let f = restore_finding(&r.report);
    assert_eq!((r.code, f["status"].as_str()), (2, Some("error")), "{f:#}");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("the target 2000-01-01 00:00:00+00 is before this base backup started"),
        "{f:#}"
    );
    assert_nothing_left(r.pid);
}

/// SIGKILL during the checks: the scratch cluster dies with backproof, its
/// dir outlives it, and the next run sweeps it.
#[test]
fn a_killed_restore_is_swept_by_the_next_run() {
    let m = made();
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let scratch = tmp.path().join("tmp");
    fs::create_dir(&scratch).unwrap();
    fs::set_permissions(&scratch, fs::Permissions::from_mode(0o755)).unwrap();
    let lines = "assertions = [\"SELECT pg_sleep(30) IS NOT NULL\"]";
    let cfg = config(tmp.path(), &m.plain, Some(&m.archive), lines);
    let mut child = bin()
        .env("TMPDIR", &scratch)
        .args(["run", "--no-progress", "--config"])
        .arg(&cfg)
        .arg("--history")
        .arg(tmp.path().join("h.sqlite"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dir = ready_postgres_scratch(&scratch, child.id());
    std::thread::sleep(Duration::from_millis(1000));
    child.kill().unwrap(); // SIGKILL: no cleanup of its own
    child.wait().unwrap();
    assert!(dir.exists(), "the dir outlives a SIGKILL");
    let until = Instant::now() + Duration::from_secs(10);
    while !processes_mentioning(&dir.to_string_lossy()).is_empty() {
        assert!(
            Instant::now() < until,
            "the scratch cluster outlived its run"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let r = run(
        &config(tmp.path(), &m.plain, Some(&m.archive), ""),
        Some(&scratch),
    );
    let f = restore_finding(&r.report);
    assert_eq!((r.code, f["status"].as_str()), (0, Some("pass")), "{f:#}");
    assert!(r.stderr.contains("swept"), "{}", r.stderr);
    assert!(!dir.exists(), "{} was not swept", dir.display());
    assert_eq!(scratch_dirs_of(&scratch, None), Vec::<PathBuf>::new());
}

/// `verify DIR --restore --target-time`: without an archive the cluster
/// is recovered to its consistency point only, which is a warning, never
/// a pass; bad times are refused naming the flag or the key.
#[test]
fn the_command_line_takes_a_target_time_and_refuses_a_bad_one() {
    let m = made();
    let o = bin()
        .args([
            "verify",
            "--no-history",
            "--no-progress",
            "--format",
            "json",
            "--restore",
        ])
        .args(["--target-time", &m.between])
        .arg(&m.plain)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = restore_finding(&report);
    assert_eq!((code(&o), f["status"].as_str()), (0, Some("warn")), "{f:#}");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("consistency point only"),
        "{f:#}"
    );
    assert_eq!(pitr(f)["consistency_only"], true);
    // The base backup's own rows: made before either transaction.
    assert_eq!(f["evidence"]["row_counts"]["app.t"], 0, "{f:#}");

    // --wal-archive names the archive: paired by system identifier, then
    // replayed to the target.
    let o = bin()
        .args([
            "verify",
            "--no-history",
            "--no-progress",
            "--format",
            "json",
        ])
        .args(["--restore", "--target-time", &m.between, "--wal-archive"])
        .arg(&m.archive)
        .arg(&m.plain)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = restore_finding(&report);
    assert_eq!((code(&o), f["status"].as_str()), (0, Some("pass")), "{f:#}");
    assert_eq!(f["evidence"]["row_counts"]["app.t"], 10, "{f:#}");
    assert_eq!(pitr(f)["reached"], true, "{f:#}");

    let o = run_args(
        &["verify", "--restore", "--target-time", "2026-11-20 03:00"],
        &m.plain,
    );
    assert_eq!(code(&o), 2);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--target-time") && err.contains("UTC offset"),
        "{err}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), &m.plain, None, "target_time = \"20 Nov 2026\"");
    let o = run_args(&["run", "--config", cfg.to_str().unwrap()], &m.plain);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 2, "{err}");
    assert!(
        err.contains("sources.pg.restore") && err.contains("target_time \"20 Nov 2026\""),
        "{err}"
    );
}

fn run_args(args: &[&str], path: &Path) -> std::process::Output {
    let mut c = bin();
    c.args(args);
    if args[0] == "verify" {
        c.arg(path);
    }
    c.output().unwrap()
}

#[test]
fn the_fixture_has_both_transactions_in_the_archive() {
    let m = made();
    assert!(m.root.path().exists());
    assert!(segments(&m.archive).len() >= 3);
    assert!(m.tar.join("base.tar.gz").exists() && m.tar.join("pg_wal.tar.gz").exists());
}
