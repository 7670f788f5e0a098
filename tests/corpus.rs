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
    // (pg_dumpall, mariadb-dump --all-databases), one mariadb-backup
    // directory (one backup, not hundreds) and three configuration-store
    // snapshots (etcd, OpenBao, Consul-shaped) in the clean corpus.
    assert_eq!(backups.len(), 20, "{backups:#?}");
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
        1 + 3 + 2 + 2 + 1 + 3,
        "SHA256SUMS, three sidecars, MD5SUMS and B3SUMS, the full-server dumps' sidecars, the mariadb-backup's SHA256SUMS, the snapshots' SHA256SUMS"
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
        ("etcd/etcd-2026-11-20T0300.db", "etcd_snapshot"),
        (
            "openbao/openbao-2026-11-20T0300.snap",
            "vault_raft_snapshot+gzip",
        ),
        ("consul/consul-2026-11-20T0300.snap", "consul_snapshot+gzip"),
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
        ("etcd/etcd-2026-11-20T0300.db", "etcd_snapshot"),
        (
            "openbao/openbao-2026-11-20T0300.snap",
            "vault_raft_snapshot+gzip",
        ),
        ("consul/consul-2026-11-20T0300.snap", "consul_snapshot+gzip"),
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

/// The structure finding of the only backup in a report.
fn structure_of(report: &serde_json::Value) -> &serde_json::Value {
    findings(report)
        .iter()
        .find(|f| f["check"] == "structure")
        .unwrap_or_else(|| panic!("no structure finding:\n{}", describe(report)))
}

#[test]
fn configuration_store_snapshots_pass_with_their_decoded_counts() {
    let clean = corpus().join("clean");

    let (code, report) = verify_json(&[&clean.join("etcd/etcd-2026-11-20T0300.db")]);
    assert_eq!(code, 0, "{}", describe(&report));
    let ev = &structure_of(&report)["evidence"];
    // Six puts and one delete (fixtures/make.sh): revision 8, seven
    // revisions in the `key` bucket; `etcdctl snapshot status` says the same.
    assert_eq!(ev["revision"], 8, "{ev:#}");
    assert_eq!(ev["key_revisions"], 7, "{ev:#}");
    assert_eq!(ev["sha256_trailer"], "matches the database");
    assert_eq!(
        ev["total_keys"], 11,
        "etcdctl snapshot status's totalKey: {ev:#}"
    );
    assert!(
        ev["bucket_entries"]["members"].as_u64().unwrap() >= 1,
        "{ev:#}"
    );

    let (code, report) = verify_json(&[&clean.join("consul/consul-2026-11-20T0300.snap")]);
    assert_eq!(code, 0, "{}", describe(&report));
    let ev = &structure_of(&report)["evidence"];
    assert_eq!(ev["raft_index"], 42, "{ev:#}");
    assert_eq!(ev["state_last_index"], 42, "{ev:#}");
    assert_eq!(ev["records_by_type"]["KVS"], 8, "{ev:#}");
    assert_eq!(ev["records_by_type"]["Register"], 5, "{ev:#}");
    assert_eq!(ev["records_by_type"]["Session"], 1, "{ev:#}");
    assert_eq!(ev["records_by_type"]["Tombstone"], 1, "{ev:#}");
    assert_eq!(ev["records_by_type"]["Index"], 4, "{ev:#}");
    assert_eq!(ev["kv_prefixes"]["app/"], 4, "{ev:#}");
    assert_eq!(ev["kv_prefixes"]["deploy/"], 2, "{ev:#}");
    assert_eq!(ev["kv_entries"], 8, "{ev:#}");

    let (code, report) = verify_json(&[&clean.join("openbao/openbao-2026-11-20T0300.snap")]);
    assert_eq!(code, 0, "{}", describe(&report));
    let ev = &structure_of(&report)["evidence"];
    assert!(ev["raft_index"].as_u64().unwrap() > 0, "{ev:#}");
    assert!(ev["state_entries"].as_u64().unwrap() > 10, "{ev:#}");
    assert!(
        ev["entries_by_prefix"]["core/"].as_u64().unwrap() > 0,
        "{ev:#}"
    );
    assert!(
        ev["entries_by_prefix"]["logical/"].as_u64().unwrap() > 0,
        "{ev:#}"
    );
    assert!(
        ev["sealed_sums"].as_str().unwrap().contains("not checked"),
        "{ev:#}"
    );
}

#[test]
fn configuration_store_damage_names_the_member_or_page() {
    // case → words the structure finding's summary must hold.
    let cases = [
        ("etcd-bitflip", &["SHA-256 trailer", "does not match"][..]),
        ("etcd-trailer-cut", &["no SHA-256 trailer"]),
        (
            "openbao-state-bitflip",
            &["member state.bin: SHA-256", "SHA256SUMS"],
        ),
        (
            "openbao-bad-sum",
            &["member meta.json: SHA-256", "does not match SHA256SUMS"],
        ),
        ("openbao-missing-member", &["member SHA256SUMS missing"]),
        ("openbao-extra-member", &["unexpected member notes.txt"]),
        ("openbao-truncated", &["member state.bin", "truncated"]),
        ("consul-state-bitflip", &["member state.bin: SHA-256"]),
        (
            "consul-bad-sum",
            &["member state.bin: SHA-256", "does not match SHA256SUMS"],
        ),
        ("consul-missing-member", &["member meta.json missing"]),
        ("consul-extra-member", &["unexpected member notes.txt"]),
        ("consul-truncated", &["member state.bin", "truncated"]),
    ];
    let mut failures = Vec::new();
    for (case, words) in cases {
        let dir = corpus().join("corrupt").join(case);
        let file = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap() != "EXPECT")
            .unwrap();
        let (code, report) = verify_json(&[&file]);
        let f = structure_of(&report);
        let summary = f["summary"].as_str().unwrap();
        if code != 1 || f["status"] != "fail" || f["subject"] != file.display().to_string() {
            failures.push(format!("{case}: exit {code}\n{}", describe(&report)));
        } else if let Some(w) = words.iter().find(|w| !summary.contains(*w)) {
            failures.push(format!("{case}: no {w:?} in {summary:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
