//! Directory-shaped backups (issue 9, item 11) and what structure checks
//! claim (items 6 and 15), on backups made by the real tools: a throwaway
//! PostgreSQL cluster backed up with `pg_basebackup -Fp`, a throwaway
//! MariaDB server backed up with `mariadb-backup --backup`, GNU tar, gzip.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn sh(what: &str, cmd: &mut Command) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        o.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn pg_bin(tool: &str) -> PathBuf {
    fs::read_dir("/usr/lib/postgresql")
        .unwrap()
        .flatten()
        .map(|e| e.path().join("bin"))
        .find(|p| p.join("initdb").exists())
        .expect("postgresql installed")
        .join(tool)
}

/// Made once per test process; the temp dir lives as long as the process.
struct Made {
    _dir: tempfile::TempDir,
    /// Holds `base/` (the base backup dir) and nothing else.
    pg: PathBuf,
    /// Holds `shop-backup/` (the mariadb-backup dir) and nothing else.
    my: PathBuf,
}

fn made() -> &'static Made {
    static MADE: OnceLock<Made> = OnceLock::new();
    MADE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("bp-dirs-")
            .tempdir()
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let pg = dir.path().join("pg");
        let my = dir.path().join("my");
        fs::create_dir_all(&pg).unwrap();
        fs::create_dir_all(&my).unwrap();
        make_base_backup(dir.path(), &pg.join("base"));
        make_mariadb_backup(dir.path(), &my.join("shop-backup"));
        Made { _dir: dir, pg, my }
    })
}

fn make_base_backup(tmp: &Path, target: &Path) {
    let data = tmp.join("pgdata");
    let sock = tmp.join("pgsock");
    fs::create_dir_all(&sock).unwrap();
    fs::set_permissions(&sock, fs::Permissions::from_mode(0o777)).unwrap();
    let as_pg = |args: &[&str]| {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).args(args);
        c
    };
    let d = data.to_str().unwrap();
    sh(
        "initdb",
        &mut as_pg(&[
            pg_bin("initdb").to_str().unwrap(),
            "-D",
            d,
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
        ]),
    );
    let opts = format!(
        "-c listen_addresses='' -k {} -p 5437 -c fsync=off",
        sock.display()
    );
    let log = tmp.join("pg.log");
    sh(
        "pg_ctl start",
        as_pg(&[
            pg_bin("pg_ctl").to_str().unwrap(),
            "-D",
            d,
            "-l",
            log.to_str().unwrap(),
            "-w",
            "-o",
            &opts,
            "start",
        ])
        .stdout(Stdio::null()),
    );
    let r = Command::new(pg_bin("pg_basebackup"))
        .args(["-h", sock.to_str().unwrap(), "-p", "5437", "-U", "postgres"])
        .args(["-Fp", "-X", "stream", "-c", "fast", "--no-sync", "-D"])
        .arg(target)
        .output();
    let _ = as_pg(&[
        pg_bin("pg_ctl").to_str().unwrap(),
        "-D",
        d,
        "-m",
        "immediate",
        "-w",
        "stop",
    ])
    .stdout(Stdio::null())
    .status();
    let o = r.unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn make_mariadb_backup(tmp: &Path, target: &Path) {
    let data = tmp.join("mydata");
    let sock = tmp.join("my.sock");
    sh(
        "mariadb-install-db",
        Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=mysql", "--skip-test-db"])
            .args(["--auth-root-authentication-method=normal"])
            .arg(format!("--datadir={}", data.display())),
    );
    let server = || {
        Command::new("mariadbd")
            .args(["--no-defaults", "--user=mysql", "--skip-networking"])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", sock.display()))
            .arg(format!("--log-error={}", tmp.join("my.err").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let client = |sql: &str| {
        Command::new("mariadb")
            .args(["--no-defaults", "-u", "root"])
            .arg(format!("--socket={}", sock.display()))
            .args(["-e", sql])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let wait_up = || {
        let until = Instant::now() + Duration::from_secs(60);
        while !client("SELECT 1") {
            assert!(Instant::now() < until, "mariadbd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mut child = server();
    wait_up();
    assert!(client(
        "CREATE DATABASE shop; USE shop; CREATE TABLE shop.sales (id INT PRIMARY KEY, qty INT) ENGINE=InnoDB; \
         INSERT INTO shop.sales SELECT seq, seq % 9 FROM seq_1_to_3000;"
    ));
    // A clean restart checkpoints the redo log, so the new table is copied
    // as sales.ibd rather than replayed as DDL (sales.new).
    assert!(client("SHUTDOWN"));
    let _ = child.wait();
    let mut child = server();
    wait_up();
    let o = Command::new("mariadb-backup")
        .args(["--no-defaults", "--backup", "--user=root"])
        .arg(format!("--socket={}", sock.display()))
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--target-dir={}", target.display()))
        .output();
    let _ = child.kill();
    let _ = child.wait();
    let o = o.unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn copy_tree(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let dst = to.join(e.path().strip_prefix(from).unwrap());
        if e.file_type().is_dir() {
            fs::create_dir_all(&dst).unwrap();
        } else {
            fs::copy(e.path(), &dst).unwrap();
        }
    }
}

fn structure_of<'a>(report: &'a Value, subject: &Path) -> &'a Value {
    let s = subject.display().to_string();
    findings(report)
        .iter()
        .find(|f| f["check"] == "structure" && f["subject"] == s.as_str())
        .unwrap_or_else(|| panic!("no structure finding for {s}:\n{}", describe(report)))
}

#[test]
fn a_plain_base_backup_was_1299_backups_with_false_fails_on_empty_relation_files() {
    let pg = &made().pg;
    let (code, report) = verify_json(&[pg]);
    let backups = report["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 1, "{}", describe(&report));
    assert_eq!(backups[0]["kind"], "pg_basebackup");
    assert_eq!(backups[0]["timestamp_from"], "label", "{:#}", backups[0]);
    let f = structure_of(&report, &pg.join("base"));
    assert_eq!(f["status"], "pass", "{f:#}");
    assert!(f["evidence"]["empty_files"].as_u64().unwrap() > 0, "{f:#}");
    assert!(f["evidence"]["start_wal_location"].is_string(), "{f:#}");
    assert!(f["evidence"]["not_checked"].is_array(), "{f:#}");
    assert!(
        f["summary"].as_str().unwrap().contains("not checked"),
        "{f:#}"
    );
    // Uncovered by a manifest: a warning, never a fail.
    assert_eq!(code, 0, "{}", describe(&report));
}

#[test]
fn a_base_backup_without_its_backup_label_fails() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&made().pg, tmp.path());
    fs::remove_file(tmp.path().join("base/backup_label")).unwrap();
    let (code, report) = verify_json(&[tmp.path()]);
    assert_eq!(code, 1, "{}", describe(&report));
    let f = structure_of(&report, &tmp.path().join("base"));
    assert_eq!(f["status"], "fail", "{f:#}");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("backup_label missing")
    );
}

#[test]
fn a_mariadb_backup_directory_was_209_unknown_backups_and_its_newest_was_xtrabackup_info() {
    let my = &made().my;
    let (code, report) = verify_json(&[my]);
    let backups = report["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 1, "{}", describe(&report));
    assert_eq!(backups[0]["kind"], "mariadb-backup");
    assert_eq!(backups[0]["key"], "shop-backup");
    let f = structure_of(&report, &my.join("shop-backup"));
    assert_eq!(f["status"], "pass", "{f:#}");
    assert_eq!(f["evidence"]["backup_type"], "full-backuped", "{f:#}");
    assert!(
        f["evidence"]["innodb_pages_checksum_verified"]
            .as_u64()
            .unwrap()
            > 0,
        "{f:#}"
    );
    // The empty general_log.CSV / slow_log.CSV are part of it, not failures.
    assert!(f["evidence"]["empty_files"].as_u64().unwrap() > 0, "{f:#}");
    assert_eq!(code, 0, "{}", describe(&report));
}

#[test]
fn a_mariadb_backup_with_a_bad_page_a_cut_tablespace_or_no_checkpoints_fails() {
    type Harm = fn(&Path);
    let damage: [(&str, Harm); 3] = [
        ("checksum does not match", |d| {
            let f = d.join("shop/sales.ibd");
            let mut b = fs::read(&f).unwrap();
            b[3 * 16384 + 5000] ^= 1;
            fs::write(f, b).unwrap();
        }),
        ("truncated", |d| {
            let f = fs::OpenOptions::new()
                .write(true)
                .open(d.join("ibdata1"))
                .unwrap();
            let len = f.metadata().unwrap().len();
            f.set_len(len / 2 / 16384 * 16384).unwrap();
        }),
        ("xtrabackup_checkpoints missing", |d| {
            fs::remove_file(d.join("xtrabackup_checkpoints")).unwrap()
        }),
    ];
    for (want, harm) in damage {
        let tmp = tempfile::tempdir().unwrap();
        copy_tree(&made().my, tmp.path());
        let dir = tmp.path().join("shop-backup");
        harm(&dir);
        let (code, report) = verify_json(&[tmp.path()]);
        assert_eq!(code, 1, "{want}: {}", describe(&report));
        assert_eq!(report["backups"].as_array().unwrap().len(), 1, "{want}");
        let f = structure_of(&report, &dir);
        assert_eq!(f["status"], "fail", "{want}: {f:#}");
        assert!(f["summary"].as_str().unwrap().contains(want), "{f:#}");
    }
}

#[test]
fn a_repacked_tar_with_an_altered_member_passed_as_complete_and_consistent() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("base");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("PG_VERSION"), "15\n").unwrap();
    fs::write(tree.join("16384"), "altered after the backup was taken").unwrap();
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).unwrap();
    let tgz = out.join("base-2026-11-20.tar.gz");
    sh(
        "tar czf",
        Command::new("tar")
            .arg("-czf")
            .arg(&tgz)
            .arg("-C")
            .arg(tmp.path())
            .arg("base"),
    );
    let (_, report) = verify_json(&[&tgz]);
    let f = structure_of(&report, &tgz);
    assert_eq!(f["status"], "pass", "{f:#}");
    let summary = f["summary"].as_str().unwrap();
    assert!(!summary.contains("consistent"), "{summary}");
    assert!(summary.contains("gzip CRC and length checked"), "{summary}");
    assert!(
        summary.contains("member contents not vouched for"),
        "{summary}"
    );
}

#[test]
fn a_gzip_of_unknown_content_said_only_checksums_can_vouch_although_its_crc_was_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("notes.txt");
    fs::write(&plain, "nothing a backup tool knows\n".repeat(100)).unwrap();
    sh("gzip", Command::new("gzip").arg("-n").arg(&plain));
    let gz = tmp.path().join("notes.txt.gz");
    let (_, report) = verify_json(&[&gz]);
    let f = structure_of(&report, &gz);
    assert_eq!(f["status"], "warn", "{f:#}");
    let summary = f["summary"].as_str().unwrap();
    assert!(summary.contains("gzip CRC and length checked"), "{summary}");
    assert!(summary.contains("format is not known"), "{summary}");
}

fn restore_json(dir: &Path) -> (i32, Value) {
    let o = bin()
        .args([
            "verify",
            "--no-history",
            "--no-progress",
            "--format",
            "json",
        ])
        .arg("--restore")
        .arg(dir)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&o.stderr));
    });
    (code(&o), report)
}

fn restore_of<'a>(report: &'a Value, subject: &Path) -> &'a Value {
    let s = subject.display().to_string();
    findings(report)
        .iter()
        .find(|f| f["check"] == "restore" && f["subject"] == s.as_str())
        .unwrap_or_else(|| panic!("no restore finding for {s}:\n{}", describe(report)))
}

#[test]
fn a_mariadb_backup_directory_could_not_be_test_restored() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&made().my, tmp.path());
    let dir = tmp.path().join("shop-backup");
    let before = fs::read_to_string(dir.join("xtrabackup_checkpoints")).unwrap();
    let (code, report) = restore_json(tmp.path());
    let f = restore_of(&report, &dir);
    assert_eq!(f["status"], "pass", "{f:#}");
    assert_eq!(f["evidence"]["engine"], "mariadb-backup", "{f:#}");
    assert_eq!(f["evidence"]["row_counts"]["shop.sales"], 3000, "{f:#}");
    assert_eq!(code, 0, "{}", describe(&report));
    // Prepared on a copy: the backup itself is untouched.
    assert_eq!(
        fs::read_to_string(dir.join("xtrabackup_checkpoints")).unwrap(),
        before
    );
    assert!(before.contains("full-backuped"));

    // A flipped byte in a table the prepare does not touch: the restored
    // server refuses the table, and the restore fails (not "could not run").
    let f = dir.join("shop/sales.ibd");
    let mut b = fs::read(&f).unwrap();
    b[3 * 16384 + 5000] ^= 1;
    fs::write(&f, b).unwrap();
    let (code, report) = restore_json(tmp.path());
    let f = restore_of(&report, &dir);
    assert_eq!(f["status"], "fail", "{f:#}");
    assert_eq!(code, 1);
}
