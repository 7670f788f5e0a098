//! Policy checks at and around their thresholds, on real backups renamed to
//! dates relative to now, and the shipped policy packs on corpora that keep
//! and break their promises.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};
use common::*;
use serde_json::Value;

fn clean(rel: &str) -> Vec<u8> {
    fs::read(corpus().join("clean").join(rel)).unwrap()
}

/// Writes `bytes` as `<prefix>-<now - hours>.<ext>` into `dir`.
fn backup(dir: &Path, prefix: &str, ext: &str, hours_ago: i64, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    let stamp = (Utc::now() - Duration::hours(hours_ago)).format("%Y-%m-%dT%H%M");
    fs::write(dir.join(format!("{prefix}-{stamp}.{ext}")), bytes).unwrap();
}

/// Runs `backproof run` on a config made of `sources` and `body`; returns
/// (exit code, policy findings by subject).
fn run(
    dir: &Path,
    sources: &[(&str, &Path)],
    body: &str,
) -> (i32, std::collections::BTreeMap<String, Value>) {
    let mut cfg = String::from("[report]\ndir = \"out\"\nformats = [\"json\"]\n");
    for (name, path) in sources {
        cfg += &format!(
            "\n[[sources]]\nname = \"{name}\"\npath = \"{}\"\n",
            path.display()
        );
    }
    cfg += body;
    let file = dir.join("backproof.toml");
    fs::write(&file, cfg).unwrap();
    let o = bin()
        .args(["run", "--format", "json", "--config"])
        .arg(&file)
        .arg("--history")
        .arg(dir.join("h.sqlite"))
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    let policy = findings(&report)
        .iter()
        .filter(|f| {
            [
                "freshness",
                "retention",
                "size_anomaly",
                "verified",
                "coverage",
                "versioning",
                "parity",
                "separation",
                "encryption",
                "restore",
                "snapshot_before_change",
            ]
            .contains(&f["check"].as_str().unwrap())
        })
        .map(|f| (f["subject"].as_str().unwrap().to_string(), f.clone()))
        .collect();
    (code(&o), policy)
}

fn status(findings: &std::collections::BTreeMap<String, Value>, name: &str) -> String {
    findings
        .get(name)
        .unwrap_or_else(|| panic!("no finding {name}: {findings:#?}"))["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn freshness_at_its_thresholds() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("pg");
    backup(
        &src,
        "appdb",
        "dump",
        10,
        &clean("postgres/appdb-2026-11-20T0300.dump"),
    );
    let (code, f) = run(
        tmp.path(),
        &[("pg", &src)],
        r#"
[[checks]]
name = "rpo-9h"
type = "freshness"
source = "pg"
fail_after = "9h"
[[checks]]
name = "rpo-11h"
type = "freshness"
source = "pg"
fail_after = "11h"
[[checks]]
name = "rpo-warn"
type = "freshness"
source = "pg"
warn_after = "9h"
fail_after = "11h"
"#,
    );
    assert_eq!(status(&f, "rpo-9h"), "fail");
    assert_eq!(status(&f, "rpo-11h"), "pass");
    assert_eq!(status(&f, "rpo-warn"), "warn");
    assert!(f["rpo-9h"]["evidence"]["age_seconds"].as_i64().unwrap() >= 10 * 3600 - 120);
    assert_eq!(code, 1);

    // The auditor's export states, per promise, the RPO achieved against it.
    let o = bin()
        .args(["report", "--since", "1d", "--format", "json", "--history"])
        .arg(tmp.path().join("h.sqlite"))
        .output()
        .unwrap();
    let export: Value = serde_json::from_slice(&o.stdout).unwrap();
    let promise = |name: &str| {
        export["promises"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["promise"] == name)
            .unwrap_or_else(|| panic!("no promise {name}: {export:#}"))
            .clone()
    };
    let p = promise("rpo-9h");
    assert_eq!(p["measure"], "RPO");
    assert_eq!(p["pass_rate"], 0.0);
    assert_eq!(p["promised_seconds"], 9.0 * 3600.0);
    assert!(p["worst_achieved_seconds"].as_f64().unwrap() >= 10.0 * 3600.0 - 120.0);
    assert_eq!(promise("rpo-11h")["pass_rate"], 1.0);
}

#[test]
fn retention_counts_ages_gaps_and_deletion_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let daily = tmp.path().join("daily");
    let gappy = tmp.path().join("gappy");
    let dump = clean("postgres/appdb-2026-11-20T0300.dump");
    for h in [10, 34, 58, 82] {
        backup(&daily, "appdb", "dump", h, &dump);
    }
    for h in [10, 58] {
        backup(&gappy, "appdb", "dump", h, &dump);
    }
    let check = |name: &str, source: &str, field: &str| {
        format!(
            "\n[[checks]]\nname = \"{name}\"\ntype = \"retention\"\nsource = \"{source}\"\n{field}\n"
        )
    };
    let body = [
        check("age-3d", "daily", "min_age = \"3d\""),
        check("age-4d", "daily", "min_age = \"4d\""),
        check("count-4", "daily", "min_count = 4"),
        check("count-5", "daily", "min_count = 5"),
        check("gap-ok", "daily", "max_gap = \"25h\""),
        check("gap-broken", "gappy", "max_gap = \"25h\""),
        check("privacy-3d", "daily", "max_age = \"3d\""),
        check("privacy-4d", "daily", "max_age = \"4d\""),
    ]
    .concat();
    let (_, f) = run(tmp.path(), &[("daily", &daily), ("gappy", &gappy)], &body);
    for (name, want) in [
        ("age-3d", "pass"),
        ("age-4d", "fail"),
        ("count-4", "pass"),
        ("count-5", "fail"),
        ("gap-ok", "pass"),
        ("gap-broken", "fail"),
        ("privacy-3d", "fail"),
        ("privacy-4d", "pass"),
    ] {
        assert_eq!(status(&f, name), want, "{name}: {:#}", f[name]);
    }
    assert!(
        f["gap-broken"]["summary"]
            .as_str()
            .unwrap()
            .contains("gap of 2days")
    );
}

#[test]
fn size_anomaly_against_the_recent_median() {
    let tmp = tempfile::tempdir().unwrap();
    let sql = clean("postgres/appdb-2026-11-20T0300.sql");
    let mut sources = Vec::new();
    for (name, share) in [("full", 100), ("seventy", 70), ("twenty", 20)] {
        let dir = tmp.path().join(name);
        for h in [34, 58, 82] {
            backup(&dir, "appdb", "sql", h, &sql);
        }
        backup(&dir, "appdb", "sql", 10, &sql[..sql.len() * share / 100]);
        sources.push((name, dir));
    }
    let body: String = ["full", "seventy", "twenty"]
        .iter()
        .map(|s| {
            format!(
                "\n[[checks]]\nname = \"size-{s}\"\ntype = \"size_anomaly\"\nsource = \"{s}\"\n"
            )
        })
        .collect();
    let refs: Vec<(&str, &Path)> = sources.iter().map(|(n, p)| (*n, p.as_path())).collect();
    let (_, f) = run(tmp.path(), &refs, &body);
    assert_eq!(status(&f, "size-full"), "pass");
    assert_eq!(status(&f, "size-seventy"), "warn");
    assert_eq!(status(&f, "size-twenty"), "fail");
    assert_eq!(f["size-twenty"]["evidence"]["median_bytes"], sql.len());
}

#[test]
fn verified_and_coverage() {
    let tmp = tempfile::tempdir().unwrap();
    let pg = tmp.path().join("appdb");
    let dump = clean("postgres/appdb-2026-11-20T0300.dump");
    backup(&pg, "appdb", "dump", 58, &dump[..dump.len() / 2]); // an old broken one
    backup(&pg, "appdb", "dump", 10, &dump);
    let body = r#"
[[checks]]
name = "newest"
type = "verified"
source = "appdb"
[[checks]]
name = "all"
type = "verified"
source = "appdb"
scope = "all"
[[checks]]
name = "inventory"
type = "coverage"
inventory = ["appdb", "shop"]
max_age = "1d"
[[checks]]
name = "inventory-pg"
type = "coverage"
inventory = ["appdb"]
max_age = "1d"
"#;
    let (_, f) = run(tmp.path(), &[("appdb", &pg)], body);
    assert_eq!(status(&f, "newest"), "pass");
    assert_eq!(status(&f, "all"), "fail");
    assert_eq!(status(&f, "inventory"), "fail");
    assert!(
        f["inventory"]["summary"]
            .as_str()
            .unwrap()
            .contains("shop (no backup found)")
    );
    assert_eq!(status(&f, "inventory-pg"), "pass");
}

/// Copy, separation, versioning and encryption promises on local sources:
/// copies are compared like buckets; what only a bucket can prove is an
/// error, never a pass.
#[test]
fn store_promises_on_local_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let (pg, pg_copy) = (tmp.path().join("pg"), tmp.path().join("pg-copy"));
    let (my, my_copy) = (tmp.path().join("my"), tmp.path().join("my-copy"));
    let dump = clean("postgres/appdb-2026-11-20T0300.dump");
    let sql = clean("mysql/shop-2026-11-20T0300.sql");
    backup(&pg, "appdb", "dump", 2, &dump);
    backup(&pg_copy, "appdb", "dump", 2, &dump);
    backup(&my, "shop", "sql", 30, &sql);
    backup(&my, "shop", "sql", 2, &sql);
    backup(&my_copy, "shop", "sql", 30, &sql); // last night's copy is missing
    let source = |name: &str, path: &Path, extra: &str| {
        format!(
            "\n[[sources]]\nname = \"{name}\"\npath = \"{}\"\n{extra}",
            path.display()
        )
    };
    let body = source(
        "pg",
        &pg,
        &format!("copy = \"{}\"\nregion = \"eu-west-1\"\n", pg_copy.display()),
    ) + &source(
        "my",
        &my,
        &format!(
            "copy = \"{}\"\nregion = \"eu-central-1\"\n",
            my_copy.display()
        ),
    ) + &source("pg-again", &pg, "")
        + r#"
[[checks]]
name = "pg-copied"
type = "copy"
source = "pg"
max_lag = "1h"
[[checks]]
name = "my-copied"
type = "copy"
source = "my"
[[checks]]
name = "no-copy"
type = "copy"
source = "pg-again"
[[checks]]
name = "same-disk"
type = "separation"
sources = ["pg", "my"]
[[checks]]
name = "regions"
type = "separation"
sources = ["pg", "my"]
by = ["region"]
[[checks]]
name = "same-region"
type = "separation"
sources = ["pg", "pg-again"]
by = ["region"]
[[checks]]
name = "accounts"
type = "separation"
sources = ["pg", "my"]
by = ["account"]
[[checks]]
name = "versioned"
type = "versioning"
source = "pg"
[[checks]]
name = "encrypted"
type = "encryption"
source = "pg"
"#;
    let (code, f) = run(tmp.path(), &[], &body);
    assert_eq!(code, 1);
    assert_eq!(status(&f, "pg-copied"), "pass", "{:#?}", f["pg-copied"]);
    assert_eq!(status(&f, "my-copied"), "fail");
    assert!(
        f["my-copied"]["summary"]
            .as_str()
            .unwrap()
            .contains("problem")
    );
    assert_eq!(status(&f, "no-copy"), "fail");
    assert_eq!(status(&f, "same-disk"), "fail");
    assert!(
        f["same-disk"]["summary"]
            .as_str()
            .unwrap()
            .contains("share the storage")
    );
    assert_eq!(status(&f, "regions"), "pass");
    // pg-again declares no region and a local directory has none.
    assert_eq!(status(&f, "same-region"), "error");
    assert_eq!(status(&f, "accounts"), "error");
    assert_eq!(status(&f, "versioned"), "error");
    assert_eq!(status(&f, "encrypted"), "error");
}

fn pack(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("checks")
        .join(name)
}

fn with_pack(name: &str) -> String {
    format!("\n[policy]\ninclude = [\"{}\"]\n", pack(name).display())
}

fn all_pass(f: &std::collections::BTreeMap<String, Value>) -> Result<(), String> {
    let bad: Vec<_> = f
        .iter()
        .filter(|(_, v)| v["status"] != "pass")
        .map(|(k, v)| format!("{k}: {}", v["summary"]))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("\n"))
    }
}

#[test]
fn aws_pack_kept_and_broken() {
    let dump = clean("postgres/appdb-2026-11-20T0300.dump");
    let tmp = tempfile::tempdir().unwrap();
    let kept = tmp.path().join("kept");
    for h in [2, 26, 50, 74] {
        backup(&kept, "appdb", "dump", h, &dump);
    }
    let (code, f) = run(
        tmp.path(),
        &[("backups", &kept)],
        &with_pack("aws-3day.toml"),
    );
    assert_eq!(f.len(), 4);
    all_pass(&f).unwrap();
    assert_eq!(code, 0);

    let tmp = tempfile::tempdir().unwrap();
    let broken = tmp.path().join("broken");
    for h in [30, 54] {
        backup(&broken, "appdb", "dump", h, &dump);
    }
    let (code, f) = run(
        tmp.path(),
        &[("backups", &broken)],
        &with_pack("aws-3day.toml"),
    );
    assert_eq!(code, 1);
    assert_eq!(status(&f, "backups: newest at most 24 h old (RPO)"), "fail");
    assert_eq!(status(&f, "backups: 3 days kept, daily, no gap"), "fail");
}

#[test]
fn heroku_pack_kept_and_broken() {
    let dump = clean("postgres/appdb-2026-11-20T0300.dump");
    let tmp = tempfile::tempdir().unwrap();
    let pg = tmp.path().join("pg");
    for day in 0..8 {
        backup(&pg, "appdb", "dump", 3 + 24 * day, &dump);
    }
    // Restored into a scratch PostgreSQL each night (the table attaches
    // to the last [[sources]] entry).
    let body = format!(
        "[sources.restore]\nrto = \"1h\"\n{}",
        with_pack("heroku-postgres.toml")
    );
    let (_, f) = run(tmp.path(), &[("postgres", &pg)], &body);
    all_pass(&f).unwrap();

    // Last night's dump is a 1 KB stub: size, verification and restore
    // promises break.
    backup(&pg, "appdb", "dump", 1, &dump[..1024]);
    let (code, f) = run(tmp.path(), &[("postgres", &pg)], &body);
    assert_eq!(code, 1);
    assert_eq!(
        status(&f, "postgres: newest dump not suspiciously small or large"),
        "fail"
    );
    assert_eq!(status(&f, "postgres: newest dump intact"), "fail");
    assert_eq!(
        status(
            &f,
            "postgres: newest dump restored in the last day, within the 1 h RTO"
        ),
        "fail"
    );
}

/// The consul source's lines, last in [[sources]]: its change log, with
/// changes `hours_ago` (fractions allowed) written as a deploy log.
fn consul_changes(dir: &Path, hours_ago: &[f64]) -> String {
    let log = dir.join("deploys.log");
    let lines: String = hours_ago
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let at = Utc::now() - Duration::seconds((h * 3600.0) as i64);
            format!("{} deploy lms v2.{i}\n", at.format("%Y-%m-%d %H:%M:00"))
        })
        .collect();
    fs::write(&log, format!("# lms deploys\n{lines}")).unwrap();
    format!("changes = \"{}\"\n", log.display())
}

#[test]
fn lms_pack_kept_and_broken() {
    let mysql = clean("mysql/shop-2026-11-20T0300.sql.gz");
    let qcow = clean("disk/vm-2026-11-20.qcow2");
    let snap = clean("consul/consul-2026-11-20T0300.snap");
    let tmp = tempfile::tempdir().unwrap();
    let (my, snaps, consul) = (
        tmp.path().join("mysql"),
        tmp.path().join("snapshots"),
        tmp.path().join("consul"),
    );
    for h in [5, 29, 53] {
        backup(&my, "shop", "sql.gz", h, &mysql);
        backup(&snaps, "vm", "qcow2", h, &qcow);
        // A snapshot before each deploy, the deploy half an hour later;
        // one deploy older than the 3 days judged has none.
        backup(&consul, "consul", "snap", h, &snap);
    }
    let sources: [(&str, &Path); 3] = [("mysql", &my), ("snapshots", &snaps), ("consul", &consul)];
    let body =
        consul_changes(tmp.path(), &[4.5, 28.5, 52.5, 100.0]) + &with_pack("lms-hosting.toml");
    let (code, f) = run(tmp.path(), &sources, &body);
    assert_eq!(f.len(), 9);
    all_pass(&f).unwrap();
    assert_eq!(code, 0);
    let before = &f["consul: a verified snapshot at most 1 h before every change"];
    assert_eq!(before["evidence"]["changes"], 3);
    assert_eq!(before["evidence"]["changes_in_log"], 4);

    // Tonight's deploy went out with no snapshot before it: the last one
    // is from 5 h ago.
    let body = consul_changes(tmp.path(), &[1.0, 28.5, 52.5]) + &with_pack("lms-hosting.toml");
    let (code, f) = run(tmp.path(), &sources, &body);
    assert_eq!(code, 1);
    let before = &f["consul: a verified snapshot at most 1 h before every change"];
    assert_eq!(before["status"], "fail");
    let s = before["summary"].as_str().unwrap();
    assert!(
        s.starts_with("1 of 3 change(s) in the last 3days without a verified snapshot at most 1h before: line 2 at ")
            && s.contains("\"deploy lms v2.0\"")
            && s.contains("(4h before)"),
        "{s}"
    );
    assert_eq!(status(&f, "mysql: nightly dump at most 26 h old"), "pass");

    // The snapshot job stopped two days ago.
    let tmp = tempfile::tempdir().unwrap();
    let (my, snaps, consul) = (
        tmp.path().join("mysql"),
        tmp.path().join("snapshots"),
        tmp.path().join("consul"),
    );
    for h in [5, 29, 53] {
        backup(&my, "shop", "sql.gz", h, &mysql);
        backup(&consul, "consul", "snap", h, &snap);
    }
    for h in [53, 77, 101] {
        backup(&snaps, "vm", "qcow2", h, &qcow);
    }
    let body = consul_changes(tmp.path(), &[]) + &with_pack("lms-hosting.toml");
    let (_, f) = run(
        tmp.path(),
        &[("mysql", &my), ("snapshots", &snaps), ("consul", &consul)],
        &body,
    );
    assert_eq!(
        status(&f, "snapshots: nightly snapshot at most 26 h old"),
        "fail"
    );
    assert_eq!(
        status(&f, "inventory: LMS database and server both protected"),
        "fail"
    );
    assert_eq!(status(&f, "mysql: nightly dump at most 26 h old"), "pass");
    // No change in the window: nothing to judge, said so.
    let before = &f["consul: a verified snapshot at most 1 h before every change"];
    assert_eq!(before["status"], "pass");
    assert!(
        before["summary"]
            .as_str()
            .unwrap()
            .contains("holds no change"),
        "{before:#}"
    );
}

#[test]
fn policy_errors_name_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("backproof.toml");
    let run_cfg = |text: &str| {
        fs::write(&cfg, text).unwrap();
        let o = bin().args(["run", "--config"]).arg(&cfg).output().unwrap();
        (code(&o), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let base = "[[sources]]\nname = \"pg\"\npath = \"/tmp\"\n";
    let (c, e) = run_cfg(&format!(
        "{base}[[checks]]\ntype = \"freshnes\"\nsource = \"pg\"\n"
    ));
    assert_eq!(c, 2);
    assert!(e.contains("line 5") && e.contains("freshnes"), "{e}");
    let (c, e) = run_cfg(&format!(
        "{base}[[checks]]\ntype = \"freshness\"\nsource = \"mysql\"\nfail_after = \"1d\"\n"
    ));
    assert_eq!(c, 2);
    assert!(e.contains("\"mysql\""), "{e}");
    let (c, e) = run_cfg(&format!(
        "{base}[[checks]]\ntype = \"freshness\"\nsource = \"pg\"\nfail_after = \"soon\"\n"
    ));
    assert_eq!(c, 2);
    // serde placed values inside a tagged check at the check's header
    // (line 4); the error is pinned to the value's own line now.
    assert!(
        e.contains("line 7, key `fail_after`") && e.contains("\"soon\""),
        "{e}"
    );
    let packfile = tmp.path().join("pack.toml");
    fs::write(
        &packfile,
        "[[checks]]\ntype = \"retention\"\nsource = \"pg\"\nmin_days = 3\n",
    )
    .unwrap();
    let (c, e) = run_cfg(&format!("{base}[policy]\ninclude = [\"pack.toml\"]\n"));
    assert_eq!(c, 2);
    assert!(
        e.contains("pack.toml: line 4, key `min_days`") && e.contains("4 | min_days = 3"),
        "{e}"
    );
}
