//! The corpus made by the real tools (fixtures/make.sh): the clean half must
//! pass, and every corrupted twin must be reported with the right status,
//! check and subject.

mod common;

use std::collections::BTreeMap;
use std::fs;

use common::*;

#[test]
fn clean_corpus_passes_with_one_finding_per_check_per_backup() {
    let clean = corpus().join("clean");
    let (code, report) = verify_json(&[&clean]);
    let bad: Vec<_> = findings(&report)
        .iter()
        .filter(|f| f["status"] != "pass")
        .collect();
    assert_eq!(code, 0, "clean corpus must exit 0; not passing:\n{bad:#?}");
    assert!(bad.is_empty(), "{bad:#?}");
    assert_eq!(report["schema_version"], 1);

    let backups = report["backups"].as_array().unwrap();
    // 6 PostgreSQL, 3 MySQL, 5 disk backups, 2 full-server dumps
    // (pg_dumpall, mariadb-dump --all-databases) and one mariadb-backup
    // directory (one backup, not hundreds) in the clean corpus.
    assert_eq!(backups.len(), 17, "{backups:#?}");
    let mut per: BTreeMap<(String, String), usize> = BTreeMap::new();
    for f in findings(&report) {
        *per.entry((
            f["subject"].as_str().unwrap().into(),
            f["check"].as_str().unwrap().into(),
        ))
        .or_default() += 1;
    }
    assert!(per.values().all(|&n| n == 1), "duplicate findings: {per:?}");
    for b in backups {
        let s = b["subject"].as_str().unwrap().to_string();
        for check in ["structure", "integrity"] {
            assert!(
                per.contains_key(&(s.clone(), check.into())),
                "no {check} finding for {s}"
            );
        }
    }
    // Every manifest and sidecar got its own finding too.
    let manifests = findings(&report)
        .iter()
        .filter(|f| f["check"] == "manifest")
        .count();
    assert_eq!(
        manifests,
        1 + 3 + 2 + 2 + 1,
        "SHA256SUMS, three sidecars, MD5SUMS and B3SUMS, the full-server dumps' sidecars, the mariadb-backup's SHA256SUMS"
    );
}

#[test]
fn kinds_are_recognised_by_content() {
    let clean = corpus().join("clean");
    let (_, report) = verify_json(&[&clean]);
    let kinds: BTreeMap<String, String> = report["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["key"].as_str().unwrap().to_string(),
                b["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect = [
        ("postgres/appdb-2026-11-20T0300.dump", "pg_custom"),
        ("postgres/appdb-2026-11-20T0300.dir", "pg_directory"),
        ("postgres/appdb-2026-11-20T0300.tar", "pg_tar"),
        ("postgres/appdb-2026-11-20T0300.sql", "pg_plain"),
        ("postgres/appdb-2026-11-20T0300.sql.gz", "pg_plain+gzip"),
        ("postgres/appdb-2026-11-20T0300.sql.zst", "pg_plain+zstd"),
        ("mysql/shop-2026-11-20T0300.sql", "mysqldump"),
        ("mysql/shop-2026-11-20T0300.sql.gz", "mysqldump+gzip"),
        ("mysql/shop-2026-11-20T0300.sql.zst", "mysqldump+zstd"),
        ("disk/vm-2026-11-20.img", "raw_image"),
        ("disk/vm-2026-11-20.qcow2", "qcow2"),
        ("disk/files-2026-11-20.tar", "tar"),
        ("disk/files-2026-11-20.tar.gz", "tar+gzip"),
        ("disk/files-2026-11-20.tar.zst", "tar+zstd"),
        ("pg-cluster/cluster-2026-11-20T0300.sql", "pg_dumpall"),
        ("mysql-all/all-2026-11-20T0300.sql", "mysqldump"),
    ];
    for (key, kind) in expect {
        assert_eq!(
            kinds.get(key).map(String::as_str),
            Some(kind),
            "{key}: {kinds:#?}"
        );
    }
}

#[test]
fn kinds_do_not_depend_on_names() {
    // The same bytes under meaningless names are still recognised.
    let dir = tempfile::tempdir().unwrap();
    let clean = corpus().join("clean");
    for (src, kind) in [
        ("postgres/appdb-2026-11-20T0300.dump", "pg_custom"),
        ("postgres/appdb-2026-11-20T0300.sql.zst", "pg_plain+zstd"),
        ("mysql/shop-2026-11-20T0300.sql.gz", "mysqldump+gzip"),
        ("disk/vm-2026-11-20.qcow2", "qcow2"),
        ("disk/files-2026-11-20.tar", "tar"),
    ] {
        let renamed = dir.path().join(format!("blob-{kind}"));
        fs::copy(clean.join(src), &renamed).unwrap();
        let (_, report) = verify_json(&[&renamed]);
        assert_eq!(report["backups"][0]["kind"], kind, "{src}");
    }
}

/// One EXPECT line: `STATUS CHECK SUBJECT`.
type Expect = (String, String, String);

/// Every case directory under corrupt/ with its EXPECT lines.
fn cases() -> Vec<(String, Vec<Expect>)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(corpus().join("corrupt")).unwrap() {
        let dir = entry.unwrap().path();
        let expect = fs::read_to_string(dir.join("EXPECT"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let lines = expect
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| {
                let mut w = l.splitn(3, ' ');
                (
                    w.next().unwrap().into(),
                    w.next().unwrap().into(),
                    w.next().unwrap().trim().into(),
                )
            })
            .collect();
        out.push((
            dir.file_name().unwrap().to_string_lossy().into_owned(),
            lines,
        ));
    }
    out.sort();
    out
}

#[test]
fn every_corruption_is_reported_naming_its_subject() {
    let cases = cases();
    assert!(
        cases.len() >= 25,
        "expected the full set of corrupted twins, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for (name, expect) in &cases {
        let dir = corpus().join("corrupt").join(name);
        // EXPECT is a test file, not part of the backups: verify a copy without it.
        let tmp = tempfile::tempdir().unwrap();
        copy_tree(&dir, tmp.path());
        fs::remove_file(tmp.path().join("EXPECT")).unwrap();
        let (code, report) = verify_json(&[tmp.path()]);
        let wants_fail = expect.iter().any(|(s, _, _)| s == "fail");
        let expected_code = if wants_fail { 1 } else { 0 };
        if code != expected_code {
            failures.push(format!(
                "{name}: exit {code}, expected {expected_code}\n{}",
                describe(&report)
            ));
            continue;
        }
        for (status, check, subject) in expect {
            let want = tmp.path().join(subject).display().to_string();
            let found = findings(&report).iter().any(|f| {
                f["status"] == status.as_str()
                    && f["check"] == check.as_str()
                    && f["subject"] == want.as_str()
            });
            if !found {
                failures.push(format!(
                    "{name}: no `{status} {check} {subject}`; got:\n{}",
                    describe(&report)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(from).unwrap();
        let dst = to.join(rel);
        if e.file_type().is_dir() {
            fs::create_dir_all(&dst).unwrap();
        } else {
            fs::copy(e.path(), &dst).unwrap();
        }
    }
}
