//! `--sample rotate:N` over simulated nights: new backups are read the night
//! they appear, every backup is re-read at least every N runs, and a night
//! reads only part of the unchanged archive.

mod common;

use std::collections::BTreeMap;
use std::fs;

use chrono::{Duration, Utc};
use common::*;
use serde_json::Value;

#[test]
fn ten_nights_of_rotate_5() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("pg");
    fs::create_dir(&src).unwrap();
    let dump = fs::read(corpus().join("clean/postgres/appdb-2026-11-20T0300.sql.gz")).unwrap();
    let add = |day: i64| {
        let name = format!(
            "appdb-{}.sql.gz",
            (Utc::now() - Duration::days(30 - day)).format("%Y-%m-%d")
        );
        fs::write(src.join(&name), &dump).unwrap();
        src.join(name).display().to_string()
    };
    for day in 0..10 {
        add(day);
    }
    let cfg = tmp.path().join("backproof.toml");
    fs::write(
        &cfg,
        format!("[report]\ndir = \"out\"\nformats = [\"json\"]\n[[sources]]\nname = \"pg\"\npath = \"{}\"\n", src.display()),
    )
    .unwrap();
    let history = tmp.path().join("h.sqlite");

    let mut reads: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut born: BTreeMap<String, usize> = BTreeMap::new();
    for night in 1..=10 {
        let new = add(10 + night as i64);
        born.insert(new.clone(), night);
        let o = bin()
            .args([
                "run", "--format", "json", "--sample", "rotate:5", "--config",
            ])
            .arg(&cfg)
            .arg("--history")
            .arg(&history)
            .output()
            .unwrap();
        assert_eq!(
            code(&o),
            0,
            "night {night}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let report: Value = serde_json::from_slice(&o.stdout).unwrap();
        let read: Vec<String> = report["backups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["subject"].as_str().unwrap().to_string())
            .collect();
        assert!(
            read.contains(&new),
            "night {night}: the new backup was not read"
        );
        let total = 10 + night;
        if night > 1 {
            assert!(
                read.len() < total / 2,
                "night {night}: read {} of {total}: no sampling",
                read.len()
            );
        }
        // Those not read carry their last result, marked as such.
        let carried = findings(&report)
            .iter()
            .filter(|f| f["evidence"]["sampled_out"] == true)
            .count();
        assert_eq!(carried + read.len(), total, "night {night}");
        for s in read {
            reads.entry(s).or_default().push(night);
        }
    }
    for (subject, nights) in &reads {
        let first = *born.get(subject).unwrap_or(&1);
        assert_eq!(
            nights[0], first,
            "{subject} not read on its first night: {nights:?}"
        );
        let mut last = first;
        for &n in &nights[1..] {
            assert!(
                n - last <= 5,
                "{subject}: {} nights between reads: {nights:?}",
                n - last
            );
            last = n;
        }
        assert!(
            10 - last < 5,
            "{subject}: not re-read in the last 5 nights: {nights:?}"
        );
        // Ten nights at rotate:5: read on night 1 and again by night 6 at
        // the latest; the gaps above are the promise, this its consequence.
        if first == 1 {
            assert!(
                nights.len() >= 2,
                "{subject} present all along, read only {nights:?}"
            );
        }
    }
    assert_eq!(reads.len(), 20);
}

/// Regression (issue 9, item 1): with `--sample rotate:3` the restore went
/// to whichever dumps the rotation picked for re-reading, and "newest dump
/// restored in the last day" passed on an old good dump while the newest
/// one was empty. Every night the newest dump must be the one restored
/// (and read for that, sampled or not), and the promise must fail on it.
#[test]
fn restore_promise_passed_on_a_sampled_old_dump_while_the_newest_was_broken() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("pg");
    fs::create_dir(&src).unwrap();
    let good = fs::read(corpus().join("clean/postgres/appdb-2026-11-20T0300.dump")).unwrap();
    for day in 20..26 {
        fs::write(src.join(format!("appdb-2026-11-{day}T0300.dump")), &good).unwrap();
    }
    // Last night's dump is what pg_dump writes of an emptied database: the
    // header only. It reads back fine; only its restore shows it is empty.
    let plain =
        fs::read_to_string(corpus().join("clean/postgres/appdb-2026-11-20T0300.sql")).unwrap();
    let header: String = plain
        .lines()
        .take_while(|l| !l.starts_with("CREATE") && !l.starts_with("-- Name:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let newest = src.join("appdb-2026-11-26T0300.sql");
    fs::write(
        &newest,
        format!(
            "{header}--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict backproofFixtures20261120\n\n"
        ),
    )
    .unwrap();
    let newest = newest.display().to_string();
    let cfg = tmp.path().join("backproof.toml");
    fs::write(
        &cfg,
        format!(
            r#"[report]
dir = "out"
formats = ["json"]
[[sources]]
name = "appdb"
path = "{}"
[sources.restore]
rto = "1h"
required_tables = ["customers", "orders"]
[[checks]]
name = "restored-daily"
type = "restore"
source = "appdb"
within = "1d"
"#,
            src.display()
        ),
    )
    .unwrap();
    let history = tmp.path().join("h.sqlite");
    for night in 1..=4 {
        let o = bin()
            .args([
                "run",
                "--no-progress",
                "--format",
                "json",
                "--sample",
                "rotate:3",
                "--config",
            ])
            .arg(&cfg)
            .arg("--history")
            .arg(&history)
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
        assert_eq!(code(&o), 1, "night {night}:\n{}", describe(&report));
        let read: Vec<&str> = report["backups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["subject"].as_str().unwrap())
            .collect();
        if night > 1 {
            assert!(read.len() < 7, "night {night}: no sampling: {read:?}");
        }
        assert!(
            read.contains(&newest.as_str()),
            "night {night}: newest not read: {read:?}"
        );
        let restores: Vec<&Value> = findings(&report)
            .iter()
            .filter(|f| f["check"] == "restore" && f["subject"] != "restored-daily")
            .collect();
        // The newest backup is restored (and fails), whatever the sample
        // read; the only other restore is the newest of the other series
        // (the .dump files), never an older dump the rotation picked.
        let of_newest: Vec<&&Value> = restores.iter().filter(|f| f["subject"] == newest).collect();
        assert_eq!(of_newest.len(), 1, "night {night}: {restores:#?}");
        assert_eq!(of_newest[0]["status"], "fail", "night {night}");
        for r in &restores {
            let s = r["subject"].as_str().unwrap();
            assert!(
                s == newest || s.ends_with("appdb-2026-11-25T0300.dump"),
                "night {night}: restored a sampled older dump {s}"
            );
        }
        let promise = findings(&report)
            .iter()
            .find(|f| f["subject"] == "restored-daily")
            .unwrap();
        assert_eq!(promise["status"], "fail", "night {night}: {promise:#}");
        assert!(
            promise["summary"]
                .as_str()
                .unwrap()
                .contains("appdb-2026-11-26T0300.sql"),
            "night {night}: {promise:#}"
        );
    }
}
