//! Series (issue 9, item 12): backups whose names differ only in their
//! timestamp form a series; `which = "newest"` restores the newest of each,
//! series promises hold per series, and `pattern` / `exclude` on sources
//! and restore specs choose what counts. Real dumps of the corpus (pg_dump,
//! mariadb-dump), renamed to dates relative to now.

mod common;

use std::fs;
use std::path::Path;

use chrono::{Duration, Utc};
use common::*;
use serde_json::Value;

fn clean(rel: &str) -> Vec<u8> {
    fs::read(corpus().join("clean").join(rel)).unwrap()
}

/// Writes `bytes` as `<prefix>-<now - hours>.<ext>` into `dir`; returns the name.
fn backup(dir: &Path, prefix: &str, ext: &str, hours_ago: i64, bytes: &[u8]) -> String {
    fs::create_dir_all(dir).unwrap();
    let stamp = (Utc::now() - Duration::hours(hours_ago)).format("%Y-%m-%dT%H%M");
    let name = format!("{prefix}-{stamp}.{ext}");
    fs::write(dir.join(&name), bytes).unwrap();
    name
}

/// `backproof run` on a config of one source `db` at `src` plus `body`.
fn run(dir: &Path, src: &Path, source_keys: &str, body: &str) -> (i32, Value, String) {
    let cfg = format!(
        "[report]\ndir = \"out\"\nformats = [\"json\"]\n\n[[sources]]\nname = \"db\"\npath = \"{}\"\n{source_keys}\n{body}",
        src.display()
    );
    let file = dir.join("backproof.toml");
    fs::write(&file, cfg).unwrap();
    let o = bin()
        .args(["run", "--format", "json", "--config"])
        .arg(&file)
        .arg("--history")
        .arg(dir.join("h.sqlite"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let report: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    (code(&o), report, stderr)
}

fn restored(report: &Value) -> Vec<String> {
    let mut v: Vec<String> = findings(report)
        .iter()
        .filter(|f| f["check"] == "restore")
        .map(|f| {
            let s = f["subject"].as_str().unwrap();
            s.rsplit('/').next().unwrap().to_string()
        })
        .collect();
    v.sort();
    v
}

fn finding<'a>(report: &'a Value, check: &str) -> &'a Value {
    findings(report)
        .iter()
        .find(|f| f["check"] == check)
        .unwrap_or_else(|| panic!("no {check} finding:\n{}", describe(report)))
}

#[test]
fn which_newest_restored_the_newest_file_of_any_kind_not_the_newest_of_each_series() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let dump = clean("postgres/appdb-2026-11-20T0300.dump");
    let sql = clean("postgres/appdb-2026-11-20T0300.sql.gz");
    backup(&src, "appdb", "dump", 30, &dump);
    let newest_dump = backup(&src, "appdb", "dump", 6, &dump);
    let newest_sql = backup(&src, "appdb", "sql.gz", 20, &sql);
    backup(&src, "appdb", "sql.gz", 44, &sql);
    let (code, report, stderr) = run(tmp.path(), &src, "", "[sources.restore]\n");
    let mut want = vec![newest_dump.clone(), newest_sql];
    want.sort();
    assert_eq!(restored(&report), want, "{}\n{stderr}", describe(&report));
    assert_eq!(code, 0, "{}", describe(&report));

    // The restore spec's pattern narrows the targets to one series.
    let (_, report, _) = run(
        tmp.path(),
        &src,
        "",
        "[sources.restore]\npattern = \"*.dump\"\n",
    );
    assert_eq!(
        restored(&report),
        vec![newest_dump],
        "{}",
        describe(&report)
    );
}

#[test]
fn freshness_passed_on_the_newest_file_of_any_kind_while_a_series_had_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let dump = clean("postgres/appdb-2026-11-20T0300.dump");
    let my = clean("mysql/shop-2026-11-20T0300.sql");
    for h in [2, 26, 50] {
        backup(&src, "appdb", "dump", h, &dump);
    }
    // The shop dumps stopped ten days ago.
    for h in [240, 264] {
        backup(&src, "shop", "sql", h, &my);
    }
    let checks = "[[checks]]\ntype = \"freshness\"\nsource = \"db\"\nfail_after = \"26h\"\n";
    let (code, report, _) = run(tmp.path(), &src, "", checks);
    let f = finding(&report, "freshness");
    assert_eq!(f["status"], "fail", "{f:#}");
    let summary = f["summary"].as_str().unwrap();
    assert!(summary.starts_with("series shop-*.sql:"), "{summary}");
    let series = f["evidence"]["series"].as_array().unwrap();
    assert_eq!(series.len(), 2, "{f:#}");
    assert_eq!(code, 1);

    // A promise about one series still speaks of it alone.
    let checks = "[[checks]]\ntype = \"freshness\"\nsource = \"db\"\npattern = \"appdb-*\"\nfail_after = \"26h\"\n";
    let (_, report, _) = run(tmp.path(), &src, "", checks);
    assert_eq!(finding(&report, "freshness")["status"], "pass");
}

#[test]
fn sources_had_no_pattern_or_exclude_to_keep_other_files_out() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let dump = clean("postgres/appdb-2026-11-20T0300.dump");
    let kept = backup(&src, "appdb", "dump", 2, &dump);
    backup(&src, "appdb", "dump.partial", 1, b"half");
    fs::write(src.join("notes.txt"), "not a backup").unwrap();
    let (code, report, stderr) = run(
        tmp.path(),
        &src,
        "pattern = \"appdb-*\"\nexclude = [\"*.partial\"]",
        "",
    );
    let keys: Vec<&str> = report["backups"]
        .as_array()
        .unwrap_or_else(|| panic!("{stderr}"))
        .iter()
        .map(|b| b["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec![kept.as_str()], "{}", describe(&report));
    assert_eq!(code, 0, "{}", describe(&report));

    // A bad glob is refused when the config loads.
    let (code, _, _) = (
        bin()
            .args(["run", "--config"])
            .arg({
                let f = tmp.path().join("bad.toml");
                fs::write(
                    &f,
                    format!(
                        "[[sources]]\nname = \"db\"\npath = \"{}\"\nexclude = [\"[x\"]\n",
                        src.display()
                    ),
                )
                .unwrap();
                f
            })
            .output()
            .unwrap()
            .status
            .code()
            .unwrap(),
        (),
        (),
    );
    assert_eq!(code, 2);
}
