//! Physical PostgreSQL backups made by the real tools (fixtures/pg_physical.sh:
//! a PostgreSQL 15 cluster archiving into a directory, `pg_basebackup -Fp`
//! and `-Ft -z`, pgbench traffic, a promoted standby on timeline 2), their
//! corrupted twins, and the verdicts cross-checked with `pg_verifybackup`
//! and the window with `pg_waldump` on the same files.
//!
//! One fixture for the whole file (made once, removed at the end); each
//! twin is a hard-linked copy whose changed file is replaced, never edited
//! in place.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::OnceLock;

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

use common::{bin, describe, findings};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    sysid: String,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

fn fx() -> &'static Fixture {
    FIXTURE.get().expect("fixture made in main")
}

fn make_fixture() -> Fixture {
    let dir = tempfile::Builder::new()
        .prefix("backproof-physical-")
        .tempdir()
        .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pg_physical.sh");
    let o = Command::new("bash")
        .arg(&script)
        .arg(dir.path())
        .output()
        .expect("bash runs");
    assert!(
        o.status.success(),
        "fixture script failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let facts = std::fs::read_to_string(dir.path().join("facts.env")).unwrap();
    let sysid = facts
        .lines()
        .find_map(|l| l.strip_prefix("SYSID="))
        .unwrap()
        .to_string();
    Fixture {
        root: dir.path().to_path_buf(),
        _dir: dir,
        sysid,
    }
}

/// A hard-linked copy of the clean layout.
fn twin() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::Builder::new()
        .prefix("backproof-physical-twin-")
        .tempdir()
        .unwrap();
    let st = Command::new("cp")
        .arg("-al")
        .arg(fx().root.join("layout"))
        .arg(t.path())
        .status()
        .unwrap();
    assert!(st.success());
    let p = t.path().join("layout");
    (t, p)
}

/// Replaces a (hard-linked) file by a changed copy.
fn rewrite(path: &Path, change: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    change(&mut bytes);
    std::fs::remove_file(path).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn verify(args: &[&str], paths: &[&Path]) -> (i32, Value) {
    let mut c = bin();
    c.args(["verify", "--no-history", "--format", "json"])
        .args(args);
    c.args(paths);
    let o = c.output().expect("backproof runs");
    let report: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code().unwrap(), report)
}

fn finding<'a>(report: &'a Value, check: &str, subject_end: &str) -> &'a Value {
    findings(report)
        .iter()
        .find(|f| f["check"] == check && f["subject"].as_str().unwrap().ends_with(subject_end))
        .unwrap_or_else(|| {
            panic!(
                "no {check} finding for {subject_end}:\n{}",
                describe(report)
            )
        })
}

fn ensure(cond: bool, what: impl FnOnce() -> String) -> Result<(), Failed> {
    if cond { Ok(()) } else { Err(what().into()) }
}

/// `pg_verifybackup` on a plain backup, with the archive as its WAL
/// directory: (succeeded, its output).
fn pg_verifybackup(base: &Path, wal: Option<&Path>) -> (bool, String) {
    let mut c = Command::new(format!("{PG_BIN}/pg_verifybackup"));
    if let Some(w) = wal {
        c.arg("-w").arg(w);
    }
    let o = c.arg(base).output().expect("pg_verifybackup runs");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// A tar-format backup unpacked (by the test, for pg_verifybackup, which
/// reads only plain backups in PostgreSQL 15).
fn unpack_tar(base_tar: &Path, into: &Path) {
    std::fs::create_dir_all(into.join("pg_wal")).unwrap();
    for (tar, dest) in [
        ("base.tar.gz", into.to_path_buf()),
        ("pg_wal.tar.gz", into.join("pg_wal")),
    ] {
        let st = Command::new("tar")
            .arg("-xzf")
            .arg(base_tar.join(tar))
            .arg("-C")
            .arg(&dest)
            .status()
            .unwrap();
        assert!(st.success());
    }
    std::fs::copy(
        base_tar.join("backup_manifest"),
        into.join("backup_manifest"),
    )
    .unwrap();
}

/// Commit timestamps pg_waldump prints for a range, as backproof writes
/// instants in JSON (RFC 3339, microseconds).
fn waldump_commits(wal: &Path, tli: u32, start: &str, end: Option<&str>) -> Vec<String> {
    let mut c = Command::new(format!("{PG_BIN}/pg_waldump"));
    c.arg("-p")
        .arg(wal)
        .args(["-t", &tli.to_string(), "-s", start]);
    if let Some(e) = end {
        c.args(["-e", e]);
    }
    let o = c.output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split("desc: COMMIT ").nth(1))
        .map(|t| {
            // "2026-12-02 10:21:51.363327 UTC" -> "2026-12-02T10:21:51.363327Z"
            let t = t.trim().trim_end_matches(" UTC").trim_end_matches(';');
            let t = t.split(';').next().unwrap();
            format!("{}Z", t.replacen(' ', "T", 1))
        })
        .collect()
}

fn manifest_end_lsn(base: &Path) -> String {
    let m = std::fs::read_to_string(base.join("backup_manifest")).unwrap();
    let line = m.lines().find(|l| l.contains("\"End-LSN\"")).unwrap();
    line.split("\"End-LSN\": \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

// ---------------------------------------------------------------- trials

fn clean_layouts_pass_and_agree_with_pg_verifybackup() -> Result<(), Failed> {
    let layout = fx().root.join("layout");
    let (code, report) = verify(&[], &[&layout]);
    ensure(code == 0, || format!("exit {code}:\n{}", describe(&report)))?;
    let kinds: Vec<&str> = report["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["kind"].as_str().unwrap())
        .collect();
    ensure(
        kinds == ["pg_basebackup", "pg_basebackup_tar", "wal_archive"],
        || format!("{kinds:?}"),
    )?;
    for f in findings(&report) {
        ensure(f["status"] == "pass", || describe(&report))?;
    }
    let plain = finding(&report, "integrity", "base-plain");
    ensure(
        plain["summary"]
            .as_str()
            .unwrap()
            .contains("match backup_manifest"),
        || format!("{plain:#}"),
    )?;
    let (ok, out) = pg_verifybackup(&layout.join("base-plain"), Some(&layout.join("wal")));
    ensure(ok, || format!("pg_verifybackup disagrees: {out}"))?;
    let t = tempfile::tempdir().unwrap();
    unpack_tar(&layout.join("base-tar"), &t.path().join("x"));
    let (ok, out) = pg_verifybackup(&t.path().join("x"), None);
    ensure(ok, || {
        format!("pg_verifybackup disagrees on the tar backup: {out}")
    })?;
    // The system identifier is the cluster's (pg_controldata's).
    let a = finding(&report, "continuity", "/wal");
    ensure(a["evidence"]["system_id"] == fx().sysid.as_str(), || {
        format!("{a:#}")
    })
}

fn the_window_matches_pg_waldump() -> Result<(), Failed> {
    let layout = fx().root.join("layout");
    let wal = layout.join("wal");
    let (_, report) = verify(&[], &[&layout]);
    let a = finding(&report, "continuity", "/wal");
    let history = std::fs::read_to_string(wal.join("00000002.history")).unwrap();
    let switchpoint = history.split('\t').nth(1).unwrap().to_string();
    let end = manifest_end_lsn(&layout.join("base-plain"));
    // Earliest: the first commit after the oldest backup is consistent.
    let first = waldump_commits(&wal, 1, &end, Some(&switchpoint));
    let last = waldump_commits(&wal, 2, &switchpoint, None);
    ensure(!first.is_empty() && !last.is_empty(), || {
        "pg_waldump found no commits".into()
    })?;
    ensure(a["evidence"]["earliest"] == first[0].as_str(), || {
        format!(
            "earliest {} but pg_waldump's first commit after {end} is {}",
            a["evidence"]["earliest"], first[0]
        )
    })?;
    ensure(
        a["evidence"]["latest"] == last.last().unwrap().as_str(),
        || {
            format!(
                "latest {} but pg_waldump's last commit is {}",
                a["evidence"]["latest"],
                last.last().unwrap()
            )
        },
    )?;
    // Per timeline: timeline 1 up to the switchpoint, then timeline 2.
    let b = &a["evidence"]["backups"][0];
    let tls: Vec<u64> = b["timelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["timeline"].as_u64().unwrap())
        .collect();
    ensure(tls == [1, 2], || format!("{b:#}"))?;
    ensure(
        b["timelines"][0]["latest"] == first.last().unwrap().as_str(),
        || {
            format!(
                "timeline 1 ends at {} but pg_waldump's last commit before {switchpoint} is {}",
                b["timelines"][0]["latest"],
                first.last().unwrap()
            )
        },
    )?;
    ensure(a["evidence"]["target_timeline"] == 2, || format!("{a:#}"))
}

fn a_flipped_byte_in_a_base_file_fails_naming_it() -> Result<(), Failed> {
    let (_t, layout) = twin();
    let file = layout.join("base-plain/global/1260");
    rewrite(&file, |b| b[100] ^= 0x01);
    let (code, report) = verify(&[], &[&layout]);
    ensure(code == 1, || describe(&report))?;
    let f = finding(&report, "integrity", "base-plain");
    ensure(
        f["status"] == "fail" && f["summary"].as_str().unwrap().contains("global/1260"),
        || format!("{f:#}"),
    )?;
    let (ok, out) = pg_verifybackup(&layout.join("base-plain"), Some(&layout.join("wal")));
    ensure(
        !ok && out.contains("global/1260") && out.contains("checksum mismatch"),
        || out,
    )
}

fn a_file_missing_from_the_backup_fails_naming_it() -> Result<(), Failed> {
    let (_t, layout) = twin();
    std::fs::remove_file(layout.join("base-plain/global/1213")).unwrap();
    let (code, report) = verify(&[], &[&layout]);
    ensure(code == 1, || describe(&report))?;
    let f = finding(&report, "integrity", "base-plain");
    ensure(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("global/1213: listed in backup_manifest"),
        || format!("{f:#}"),
    )?;
    let (ok, out) = pg_verifybackup(&layout.join("base-plain"), Some(&layout.join("wal")));
    ensure(!ok && out.contains("global/1213"), || out)
}

fn extra_files_fail_unless_pg_verifybackup_ignores_them_too() -> Result<(), Failed> {
    let (_t, layout) = twin();
    std::fs::write(layout.join("base-plain/standby.signal"), b"").unwrap();
    let (code, report) = verify(&[], &[&layout]);
    ensure(code == 0, || describe(&report))?;
    let (ok, out) = pg_verifybackup(&layout.join("base-plain"), Some(&layout.join("wal")));
    ensure(ok, || out)?;
    std::fs::write(layout.join("base-plain/global/stray"), b"x").unwrap();
    let (code, report) = verify(&[], &[&layout]);
    ensure(code == 1, || describe(&report))?;
    let f = finding(&report, "integrity", "base-plain");
    ensure(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("global/stray: present in the backup but not in backup_manifest"),
        || format!("{f:#}"),
    )?;
    let (ok, out) = pg_verifybackup(&layout.join("base-plain"), Some(&layout.join("wal")));
    ensure(!ok && out.contains("global/stray"), || out)
}

fn a_wrong_manifest_checksum_fails_naming_the_manifest() -> Result<(), Failed> {
    let (_t, layout) = twin();
    let m = layout.join("base-plain/backup_manifest");
    rewrite(&m, |b| {
        let at = b.len() - 5; // inside the checksum's hex, before `"}\n`
        b[at] = if b[at] == b'0' { b'1' } else { b'0' };
    });
    let (code, report) = verify(&[], &[&layout]);
    ensure(code == 1, || describe(&report))?;
    let f = finding(&report, "structure", "base-plain");
    ensure(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("backup_manifest: Manifest-Checksum"),
        || format!("{f:#}"),
    )?;
    let (ok, out) = pg_verifybackup(&layout.join("base-plain"), Some(&layout.join("wal")));
    ensure(!ok && out.contains("manifest checksum mismatch"), || out)
}

fn a_member_altered_inside_a_tar_backup_fails_naming_it() -> Result<(), Failed> {
    let (t, layout) = twin();
    let x = t.path().join("x");
    unpack_tar(&layout.join("base-tar"), &x);
    let file = x.join("global/1260");
    rewrite(&file, |b| b[100] ^= 0x01);
    // Re-packed with the data directory's own names (no "./" prefix).
    let names: Vec<String> = std::fs::read_dir(&x)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "pg_wal" && n != "backup_manifest")
        .collect();
    std::fs::remove_file(layout.join("base-tar/base.tar.gz")).unwrap();
    let st = Command::new("tar")
        .arg("-czf")
        .arg(layout.join("base-tar/base.tar.gz"))
        .arg("-C")
        .arg(&x)
        .args(&names)
        .status()
        .unwrap();
    assert!(st.success());
    let (code, report) = verify(&[], &[&layout]);
    ensure(code == 1, || describe(&report))?;
    let f = finding(&report, "integrity", "base-tar");
    ensure(
        f["status"] == "fail" && f["summary"].as_str().unwrap().contains("global/1260"),
        || format!("{f:#}"),
    )?;
    let (ok, out) = pg_verifybackup(&x, None);
    ensure(!ok && out.contains("global/1260"), || out)
}

fn a_cut_tar_fails() -> Result<(), Failed> {
    let (_t, layout) = twin();
    rewrite(&layout.join("base-tar/base.tar.gz"), |b| {
        b.truncate(b.len() / 2)
    });
    let (code, report) = verify(&[], &[&layout]);
    ensure(code == 1, || describe(&report))?;
    let f = finding(&report, "structure", "base-tar");
    ensure(
        f["status"] == "fail" && f["summary"].as_str().unwrap().contains("base.tar.gz"),
        || format!("{f:#}"),
    )
}

fn a_required_segment_missing_fails_naming_it() -> Result<(), Failed> {
    let (_t, layout) = twin();
    std::fs::remove_file(layout.join("wal/000000010000000000000003")).unwrap();
    let (code, report) = verify(&[], &[&layout]);
    ensure(code == 1, || describe(&report))?;
    let f = finding(&report, "continuity", "base-plain");
    ensure(
        f["status"] == "fail"
            && f["summary"].as_str().unwrap().contains("consistent")
            && f["summary"]
                .as_str()
                .unwrap()
                .contains("000000010000000000000003"),
        || format!("{f:#}"),
    )?;
    let (ok, out) = pg_verifybackup(&layout.join("base-plain"), Some(&layout.join("wal")));
    ensure(!ok, || format!("pg_verifybackup passed: {out}"))
}

fn a_gap_fails_and_moves_the_window_end_to_it() -> Result<(), Failed> {
    let (_t, layout) = twin();
    std::fs::remove_file(layout.join("wal/000000010000000000000005")).unwrap();
    let (code, report) = verify(&[], &[&layout]);
    ensure(code == 1, || describe(&report))?;
    let f = finding(&report, "continuity", "base-plain");
    ensure(
        f["status"] == "fail"
            && f["summary"]
                .as_str()
                .unwrap()
                .contains("000000010000000000000005 missing"),
        || format!("{f:#}"),
    )?;
    // The window now ends at the last commit before the gap.
    let before = waldump_commits(
        &fx().root.join("layout/wal"),
        1,
        "0/4000000",
        Some("0/5000000"),
    );
    ensure(
        f["evidence"]["latest"] == before.last().unwrap().as_str(),
        || {
            format!(
                "latest {} but the last commit before the gap is {}",
                f["evidence"]["latest"],
                before.last().unwrap()
            )
        },
    )?;
    let a = finding(&report, "continuity", "/wal");
    ensure(
        a["status"] == "fail"
            && a["summary"]
                .as_str()
                .unwrap()
                .contains("000000010000000000000005"),
        || format!("{a:#}"),
    )?;
    // The tar backup carries segment 5 itself (pg_wal.tar): unaffected.
    let t = finding(&report, "continuity", "base-tar");
    ensure(t["status"] == "pass", || format!("{t:#}"))
}

fn a_renamed_segment_is_found_by_content() -> Result<(), Failed> {
    let (_t, layout) = twin();
    let four = std::fs::read(layout.join("wal/000000010000000000000004")).unwrap();
    rewrite(&layout.join("wal/000000010000000000000006"), |b| *b = four);
    let (code, report) = verify(&[], &[&layout]);
    ensure(code == 1, || describe(&report))?;
    let f = finding(&report, "structure", "/wal");
    ensure(
        f["summary"].as_str().unwrap().contains(
            "000000010000000000000006: its pages are those of segment 000000010000000000000004",
        ),
        || format!("{f:#}"),
    )?;
    // And recovery cannot pass it: a gap at 6.
    let c = finding(&report, "continuity", "base-plain");
    ensure(
        c["status"] == "fail"
            && c["summary"]
                .as_str()
                .unwrap()
                .contains("000000010000000000000006"),
        || format!("{c:#}"),
    )
}

fn a_truncated_segment_fails_naming_it() -> Result<(), Failed> {
    let (_t, layout) = twin();
    rewrite(&layout.join("wal/000000010000000000000006"), |b| {
        b.truncate(5 << 20)
    });
    let (code, report) = verify(&[], &[&layout]);
    ensure(code == 1, || describe(&report))?;
    let f = finding(&report, "structure", "/wal");
    ensure(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("000000010000000000000006: truncated"),
        || format!("{f:#}"),
    )
}

fn an_altered_wal_record_fails_its_crc() -> Result<(), Failed> {
    let (_t, layout) = twin();
    // Inside segment 4's records (its first pages are full of them).
    rewrite(&layout.join("wal/000000010000000000000004"), |b| {
        b[8192 + 1000] ^= 0x40
    });
    let (code, report) = verify(&[], &[&layout]);
    ensure(code == 1, || describe(&report))?;
    let f = finding(&report, "integrity", "/wal");
    ensure(
        f["status"] == "fail"
            && f["summary"]
                .as_str()
                .unwrap()
                .contains("000000010000000000000004")
            && f["summary"].as_str().unwrap().contains("CRC mismatch"),
        || format!("{f:#}"),
    )
}

fn a_missing_history_file_fails() -> Result<(), Failed> {
    let (_t, layout) = twin();
    std::fs::remove_file(layout.join("wal/00000002.history")).unwrap();
    let (code, report) = verify(&[], &[&layout]);
    ensure(code == 1, || describe(&report))?;
    let f = finding(&report, "continuity", "/wal");
    ensure(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("00000002.history is missing"),
        || format!("{f:#}"),
    )
}

fn a_foreign_clusters_segment_fails_naming_it() -> Result<(), Failed> {
    let (_t, layout) = twin();
    let foreign = std::fs::read(fx().root.join("foreign/000000010000000000000001")).unwrap();
    rewrite(&layout.join("wal/000000010000000000000001"), |b| {
        *b = foreign
    });
    let (code, report) = verify(&[], &[&layout]);
    ensure(code == 1, || describe(&report))?;
    let f = finding(&report, "structure", "/wal");
    ensure(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("000000010000000000000001: a segment of another cluster"),
        || format!("{f:#}"),
    )
}

fn another_versions_wal_is_named() -> Result<(), Failed> {
    let (_t, layout) = twin();
    rewrite(&layout.join("wal/000000010000000000000001"), |b| {
        for page in b.chunks_mut(8192) {
            if page[..2] == [0x10, 0xD1] {
                page[..2].copy_from_slice(&0xD10Du16.to_le_bytes());
            }
        }
    });
    let (_, report) = verify(&[], &[&layout]);
    let f = finding(&report, "structure", "/wal");
    ensure(
        f["status"] == "warn"
            && f["summary"]
                .as_str()
                .unwrap()
                .contains("PostgreSQL 14 (page magic 0xD10D)"),
        || format!("{f:#}"),
    )
}

fn an_archive_elsewhere_is_paired_by_wal_archive() -> Result<(), Failed> {
    let layout = fx().root.join("layout");
    let base = layout.join("base-plain");
    let wal = layout.join("wal");
    let (code, report) = verify(&[], &[&base]);
    ensure(code == 1, || describe(&report))?;
    let f = finding(&report, "continuity", "base-plain");
    ensure(
        f["summary"].as_str().unwrap().contains("no WAL archive"),
        || format!("{f:#}"),
    )?;
    // pg_verifybackup agrees: without the archive the WAL is not there.
    let (ok, _) = pg_verifybackup(&base, None);
    ensure(!ok, || "pg_verifybackup passed without the WAL".into())?;
    let (code, report) = verify(&["--wal-archive", wal.to_str().unwrap()], &[&base]);
    ensure(code == 0, || describe(&report))?;
    let f = finding(&report, "continuity", "base-plain");
    ensure(
        f["status"] == "pass" && f["summary"].as_str().unwrap().contains("recoverable"),
        || format!("{f:#}"),
    )?;
    // The archive is verified once, as a backup of its own.
    ensure(
        findings(&report)
            .iter()
            .any(|f| f["check"] == "integrity" && f["subject"].as_str().unwrap().ends_with("/wal")),
        || describe(&report),
    )
}

/// `backproof run` on a config whose source "postgres-physical" holds
/// `base` with `wal_archive = archive`, including the Heroku PITR pack and
/// `extra` checks; returns (exit code, pitr findings by name).
fn run_pitr(dir: &Path, base: &Path, archive: &Path, extra: &str) -> (i32, Vec<Value>) {
    let pack = Path::new(env!("CARGO_MANIFEST_DIR")).join("checks/heroku-postgres-pitr.toml");
    let cfg = format!(
        "[report]\ndir = \"out\"\nformats = [\"json\"]\n\n[[sources]]\nname = \"postgres-physical\"\npath = \"{}\"\nwal_archive = \"{}\"\n\n[policy]\ninclude = [\"{}\"]\n{extra}",
        base.display(),
        archive.display(),
        pack.display()
    );
    let file = dir.join("backproof.toml");
    std::fs::write(&file, cfg).unwrap();
    let o = bin()
        .args(["run", "--format", "json", "--config"])
        .arg(&file)
        .arg("--history")
        .arg(dir.join("h.sqlite"))
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    let pitr = findings(&report)
        .iter()
        .filter(|f| f["check"] == "pitr")
        .cloned()
        .collect();
    (o.status.code().unwrap(), pitr)
}

fn the_pitr_promises_are_judged_from_the_window() -> Result<(), Failed> {
    let (t, layout) = twin();
    // Base backups in one place, the archive elsewhere (wal_archive).
    let bases = t.path().join("bases");
    std::fs::create_dir(&bases).unwrap();
    for b in ["base-plain", "base-tar"] {
        std::fs::rename(layout.join(b), bases.join(b)).unwrap();
    }
    let short = "\n[[checks]]\nname = \"short window\"\ntype = \"pitr\"\nsource = \"postgres-physical\"\nmin_window = \"1s\"\n";
    let (code, f) = run_pitr(t.path(), &bases, &layout.join("wal"), short);
    let by = |n: &str| {
        f.iter()
            .find(|x| x["subject"].as_str().unwrap().contains(n))
            .cloned()
            .unwrap_or_else(|| panic!("{n}: {f:#?}"))
    };
    // The fixture's WAL spans seconds, not 7 days: that promise fails...
    let week = by("7 days");
    ensure(
        week["status"] == "fail"
            && week["summary"]
                .as_str()
                .unwrap()
                .contains("not the promised last 7days"),
        || format!("{week:#}"),
    )?;
    ensure(code == 1, || format!("exit {code}"))?;
    // ...while the archive's newest commit is minutes old (RPO 1 h kept).
    ensure(by("1 h old")["status"] == "pass", || {
        format!("{:#}", by("1 h old"))
    })?;
    // A gap (timeline 2's segments gone): every window now ends before it,
    // and the promise names it.
    let latest_before = by("short window")["evidence"]["clusters"][0]["latest"].clone();
    std::fs::remove_file(layout.join("wal/000000020000000000000008")).unwrap();
    std::fs::remove_file(layout.join("wal/000000020000000000000007")).unwrap();
    let (code, f) = run_pitr(t.path(), &bases, &layout.join("wal"), short);
    let cut = f.iter().find(|x| x["subject"] == "short window").unwrap();
    ensure(code == 1 && cut["status"] == "fail", || format!("{cut:#}"))?;
    ensure(
        cut["summary"]
            .as_str()
            .unwrap()
            .contains("gap(s): 000000020000000000000007"),
        || format!("{cut:#}"),
    )?;
    ensure(
        cut["evidence"]["clusters"][0]["latest"] != latest_before,
        || format!("{cut:#}"),
    )
}

fn trial(name: &'static str, f: fn() -> Result<(), Failed>) -> Trial {
    Trial::test(name, f)
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let trials = vec![
        trial(
            "clean_layouts_pass_and_agree_with_pg_verifybackup",
            clean_layouts_pass_and_agree_with_pg_verifybackup,
        ),
        trial(
            "the_window_matches_pg_waldump",
            the_window_matches_pg_waldump,
        ),
        trial(
            "a_flipped_byte_in_a_base_file_fails_naming_it",
            a_flipped_byte_in_a_base_file_fails_naming_it,
        ),
        trial(
            "a_file_missing_from_the_backup_fails_naming_it",
            a_file_missing_from_the_backup_fails_naming_it,
        ),
        trial(
            "extra_files_fail_unless_pg_verifybackup_ignores_them_too",
            extra_files_fail_unless_pg_verifybackup_ignores_them_too,
        ),
        trial(
            "a_wrong_manifest_checksum_fails_naming_the_manifest",
            a_wrong_manifest_checksum_fails_naming_the_manifest,
        ),
        trial(
            "a_member_altered_inside_a_tar_backup_fails_naming_it",
            a_member_altered_inside_a_tar_backup_fails_naming_it,
        ),
        trial("a_cut_tar_fails", a_cut_tar_fails),
        trial(
            "a_required_segment_missing_fails_naming_it",
            a_required_segment_missing_fails_naming_it,
        ),
        trial(
            "a_gap_fails_and_moves_the_window_end_to_it",
            a_gap_fails_and_moves_the_window_end_to_it,
        ),
        trial(
            "a_renamed_segment_is_found_by_content",
            a_renamed_segment_is_found_by_content,
        ),
        trial(
            "a_truncated_segment_fails_naming_it",
            a_truncated_segment_fails_naming_it,
        ),
        trial(
            "an_altered_wal_record_fails_its_crc",
            an_altered_wal_record_fails_its_crc,
        ),
        trial("a_missing_history_file_fails", a_missing_history_file_fails),
        trial(
            "a_foreign_clusters_segment_fails_naming_it",
            a_foreign_clusters_segment_fails_naming_it,
        ),
        trial(
            "another_versions_wal_is_named",
            another_versions_wal_is_named,
        ),
        trial(
            "an_archive_elsewhere_is_paired_by_wal_archive",
            an_archive_elsewhere_is_paired_by_wal_archive,
        ),
        trial(
            "the_pitr_promises_are_judged_from_the_window",
            the_pitr_promises_are_judged_from_the_window,
        ),
    ];
    if args.list {
        return libtest_mimic::run(&args, trials).exit_code();
    }
    if FIXTURE.set(make_fixture()).is_err() {
        unreachable!("set once");
    }
    let ran = libtest_mimic::run(&args, trials);
    // Statics are never dropped: the fixture goes here.
    let _ = std::fs::remove_dir_all(&fx().root);
    ran.exit_code()
}
