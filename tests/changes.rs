//! The promise "a snapshot before every change" end to end: the change-log
//! fixtures in fixtures/changes/ against directories of Consul-shaped
//! snapshots (the corpus's archive, and its bit-flipped twin, copied under
//! timestamped names), and freshness and retention on snapshot series.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};
use common::*;
use serde_json::Value;

fn consul(clean: bool) -> Vec<u8> {
    let rel = if clean {
        "clean/consul/consul-2026-11-20T0300.snap"
    } else {
        "corrupt/consul-state-bitflip/consul-2026-11-20T0300.snap"
    };
    fs::read(corpus().join(rel)).unwrap()
}

fn changes(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/changes")
        .join(name)
}

/// A directory of snapshots taken on 2026-11-20 at these "HHMM" times;
/// those in `corrupt` are the bit-flipped twin.
fn snapshots(dir: &Path, times: &[&str], corrupt: &[&str]) -> PathBuf {
    let d = dir.join("consul");
    fs::create_dir_all(&d).unwrap();
    for t in times {
        fs::write(
            d.join(format!("consul-2026-11-20T{t}.snap")),
            consul(!corrupt.contains(t)),
        )
        .unwrap();
    }
    d
}

/// `backproof run` on a consul source and `checks`; returns (exit code, the
/// findings of the check named "before", the stderr).
fn run_check(dir: &Path, snaps: &Path, checks: &str) -> (i32, Value, String) {
    run_check_with(dir, snaps, checks, &[])
}

fn run_check_with(dir: &Path, snaps: &Path, checks: &str, args: &[&str]) -> (i32, Value, String) {
    let cfg = format!(
        "[report]\ndir = \"out\"\nformats = [\"json\"]\n\n[[sources]]\nname = \"consul\"\npath = \"{}\"\n{checks}",
        snaps.display()
    );
    let file = dir.join("backproof.toml");
    fs::write(&file, cfg).unwrap();
    let o = bin()
        .args(["run", "--format", "json", "--config"])
        .arg(&file)
        .arg("--history")
        .arg(dir.join("h.sqlite"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let report: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let f = findings(&report)
        .iter()
        .find(|f| f["check"] == "snapshot_before_change")
        .unwrap_or_else(|| panic!("no snapshot_before_change finding: {}", describe(&report)))
        .clone();
    (code(&o), f, stderr)
}

fn check(changes: &Path) -> String {
    format!(
        "\n[[checks]]\nname = \"before\"\ntype = \"snapshot_before_change\"\nsource = \"consul\"\nchanges = \"{}\"\nwithin = \"1h\"\n",
        changes.display()
    )
}

fn summary(f: &Value) -> &str {
    f["summary"].as_str().unwrap()
}

#[test]
fn every_change_with_a_snapshot_before_it_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let snaps = snapshots(tmp.path(), &["0300", "0930", "1315", "1700"], &[]);
    for log in ["deploys.log", "audit.jsonl"] {
        let (c, f, err) = run_check(tmp.path(), &snaps, &check(&changes(log)));
        assert_eq!(c, 0, "{log}: {f:#}\n{err}");
        assert_eq!(f["status"], "pass", "{log}: {}", summary(&f));
        assert_eq!(f["evidence"]["changes"], 3, "{log}");
        let matched: Vec<(&str, &str)> = f["evidence"]["matched"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["change"]["time"].as_str().unwrap(),
                    m["snapshot"].as_str().unwrap().rsplit('/').next().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            matched.iter().map(|m| m.1).collect::<Vec<_>>(),
            [
                "consul-2026-11-20T0930.snap",
                "consul-2026-11-20T1315.snap",
                "consul-2026-11-20T1700.snap"
            ],
            "{log}"
        );
        assert!(
            summary(&f).contains("every one of 3 change(s)"),
            "{}",
            summary(&f)
        );
    }
    // The audit log's reads and response halves are set aside, counted.
    let (_, f, _) = run_check(tmp.path(), &snaps, &check(&changes("audit.jsonl")));
    assert_eq!(f["evidence"]["set_aside"], 3);
    assert_eq!(f["evidence"]["format"], "json lines");
}

/// Sampled out tonight, a snapshot counts as its last full read judged it.
#[test]
fn sampled_out_snapshots_count_as_last_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let snaps = snapshots(tmp.path(), &["0930", "1315", "1700"], &[]);
    let sample = ["--sample", "rotate:7"];
    let (c, f, _) = run_check_with(tmp.path(), &snaps, &check(&changes("deploys.log")), &sample);
    assert_eq!((c, f["status"].as_str()), (0, Some("pass")));
    let (c, f, _) = run_check_with(tmp.path(), &snaps, &check(&changes("deploys.log")), &sample);
    assert_eq!((c, f["status"].as_str()), (0, Some("pass")), "{f:#}");
    assert_eq!(f["evidence"]["snapshots_counted"], 3);
}

#[test]
fn a_change_without_a_snapshot_fails_naming_it_and_a_later_one_does_not_count() {
    let tmp = tempfile::tempdir().unwrap();
    // The 14:00 consul upgrade: the snapshot came 5 minutes after it.
    let snaps = snapshots(tmp.path(), &["0930", "1405", "1700"], &[]);
    let (c, f, _) = run_check(tmp.path(), &snaps, &check(&changes("deploys.log")));
    assert_eq!(c, 1);
    assert_eq!(f["status"], "fail");
    let s = summary(&f);
    assert!(
        s.starts_with("1 of 3 change(s) without a verified snapshot at most 1h before")
            && s.contains("line 3 at 2026-11-20T14:00:00+00:00 \"upgrade consul to 1.20\"")
            && s.contains("nearest verified snapshot before it is ")
            && s.contains("/consul-2026-11-20T0930.snap (4h 30m before)")
            && s.contains("consul-2026-11-20T1405.snap is 5m after it and does not count"),
        "{s}"
    );
    let failing = &f["evidence"]["failing"][0];
    assert_eq!(failing["change"]["line"], 3);
    assert_eq!(failing["nearest_before"]["age_seconds"], 4 * 3600 + 1800);
    assert_eq!(f["evidence"]["matched"].as_array().unwrap().len(), 2);
}

#[test]
fn a_corrupt_snapshot_before_the_change_does_not_count() {
    let tmp = tempfile::tempdir().unwrap();
    let snaps = snapshots(tmp.path(), &["0930", "1315", "1700"], &["1315"]);
    let (c, f, _) = run_check(tmp.path(), &snaps, &check(&changes("deploys.log")));
    assert_eq!(c, 1);
    let s = summary(&f);
    assert!(
        s.contains("\"upgrade consul to 1.20\"")
            && s.contains("/consul-2026-11-20T1315.snap in the window failed verification"),
        "{s}"
    );
    let rejected = f["evidence"]["not_counted_failed_verification"][0]["subject"]
        .as_str()
        .unwrap();
    assert!(
        rejected.ends_with("/consul-2026-11-20T1315.snap"),
        "{rejected}"
    );
    assert_eq!(f["evidence"]["snapshots_counted"], 2);
}

#[test]
fn an_unreadable_line_or_a_missing_log_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let snaps = snapshots(tmp.path(), &["0930", "1315", "1700"], &[]);
    let log = tmp.path().join("deploys.log");
    let mut text = fs::read_to_string(changes("deploys.log")).unwrap();
    text += "yesterday evening: restarted consul\n";
    fs::write(&log, text).unwrap();
    let (c, f, _) = run_check(tmp.path(), &snaps, &check(&log));
    assert_eq!(f["status"], "error");
    assert_eq!(c, 2);
    assert!(
        summary(&f).contains(&format!("{}:5: no timestamp", log.display())),
        "{}",
        summary(&f)
    );

    // A relative path is relative to the config file; this one is absent.
    let (c, f, _) = run_check(
        tmp.path(),
        &snaps,
        "\n[[checks]]\nname = \"before\"\ntype = \"snapshot_before_change\"\nsource = \"consul\"\nchanges = \"nope.log\"\nwithin = \"1h\"\n",
    );
    assert_eq!((c, f["status"].as_str()), (2, Some("error")));
    assert!(
        summary(&f).contains(&tmp.path().join("nope.log").display().to_string()),
        "{}",
        summary(&f)
    );

    // Naming no change log at all is refused when the config loads.
    let file = tmp.path().join("backproof.toml");
    fs::write(
        &file,
        format!(
            "[[sources]]\nname = \"consul\"\npath = \"{}\"\n[[checks]]\ntype = \"snapshot_before_change\"\nsource = \"consul\"\nwithin = \"1h\"\n",
            snaps.display()
        ),
    )
    .unwrap();
    let o = bin().args(["run", "--config"]).arg(&file).output().unwrap();
    assert_eq!(code(&o), 2);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("names no change log"), "{e}");
}

/// Writes `bytes` as `<prefix>-<now - hours>.<ext>` into `dir`.
fn backup(dir: &Path, prefix: &str, ext: &str, hours_ago: i64, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    let stamp = (Utc::now() - Duration::hours(hours_ago)).format("%Y-%m-%dT%H%M");
    fs::write(dir.join(format!("{prefix}-{stamp}.{ext}")), bytes).unwrap();
}

/// Freshness and retention know nothing of formats: on a source holding
/// Consul and etcd snapshots they judge each series.
#[test]
fn freshness_and_retention_on_snapshot_series() {
    let etcd = fs::read(corpus().join("clean/etcd/etcd-2026-11-20T0300.db")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snaps");
    for h in [2, 26, 50] {
        backup(&dir, "consul", "snap", h, &consul(true));
        backup(&dir, "etcd", "db", h + 1, &etcd);
    }
    let checks = |dir: &Path| {
        let cfg = format!(
            "[report]\ndir = \"out\"\nformats = [\"json\"]\n[[sources]]\nname = \"cfg\"\npath = \"{}\"\n\
             [[checks]]\nname = \"fresh\"\ntype = \"freshness\"\nsource = \"cfg\"\nfail_after = \"26h\"\n\
             [[checks]]\nname = \"kept\"\ntype = \"retention\"\nsource = \"cfg\"\nmin_count = 3\nmax_gap = \"25h\"\n",
            dir.display()
        );
        let file = tmp.path().join("backproof.toml");
        fs::write(&file, cfg).unwrap();
        let o = bin()
            .args(["run", "--format", "json", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&o.stdout).unwrap();
        let get = |n: &str| {
            findings(&report)
                .iter()
                .find(|f| f["subject"] == n)
                .unwrap()
                .clone()
        };
        (code(&o), get("fresh"), get("kept"))
    };
    let (c, fresh, kept) = checks(&dir);
    assert_eq!(c, 0, "{fresh:#} {kept:#}");
    assert_eq!(fresh["status"], "pass");
    assert_eq!(kept["status"], "pass");
    assert_eq!(fresh["evidence"]["series"].as_array().unwrap().len(), 2);

    // The etcd snapshots stopped a day and a half ago, and one night is
    // missing: both promises name the etcd series.
    let dir2 = tmp.path().join("snaps2");
    for h in [2, 26, 50] {
        backup(&dir2, "consul", "snap", h, &consul(true));
    }
    for h in [36, 84] {
        backup(&dir2, "etcd", "db", h, &etcd);
    }
    let (c, fresh, kept) = checks(&dir2);
    assert_eq!(c, 1);
    assert_eq!(fresh["status"], "fail");
    assert!(
        fresh["summary"]
            .as_str()
            .unwrap()
            .starts_with("series etcd-"),
        "{fresh:#}"
    );
    assert_eq!(kept["status"], "fail");
    assert!(
        kept["summary"].as_str().unwrap().contains("gap of 2days"),
        "{kept:#}"
    );
}
