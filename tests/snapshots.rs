//! Snapshot tests pinning every report format on a real verification of the
//! committed corpus (times and durations fixed). Regenerate after an
//! intended change with `INSTA_UPDATE=always cargo test --test snapshots` (or
//! `cargo insta review`), and review the diff like code.

use std::path::PathBuf;

use backproof::commands::verify::{VerifyRequest, verify};
use backproof::report::{Format, Report};
use backproof::verify::VerifyOptions;
use chrono::{TimeZone, Utc};

fn pinned_report() -> Report {
    // Relative paths given; reports show them absolute, and `check` pins
    // them relative to the checkout.
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).unwrap();
    let paths = [
        PathBuf::from("fixtures/corpus/clean/mysql"),
        // A file, not its case directory: EXPECT has only a checkout mtime.
        PathBuf::from("fixtures/corpus/corrupt/pg-gz-truncated/appdb-2026-11-20T0300.sql.gz"),
    ];
    let opts = VerifyOptions {
        jobs: 1,
        ..Default::default()
    };
    let mut r = verify(&VerifyRequest {
        paths: paths.to_vec(),
        timestamp_pattern: None,
        options: opts.clone(),
        s3: Default::default(),
        show_progress: false,
        restore: None,
        history: None,
        shard: backproof::shard::Shard::WHOLE,
    })
    .unwrap()
    .report;
    r.started_at = Utc.with_ymd_and_hms(2026, 11, 21, 3, 30, 0).unwrap();
    r.finished_at = Utc.with_ymd_and_hms(2026, 11, 21, 3, 30, 2).unwrap();
    for b in &mut r.backups {
        b.duration_ms = 0;
    }
    r
}

/// Compares `actual` with `tests/snapshots/{name}.snap`. insta ignores
/// trailing whitespace and CRLF-vs-LF, so those are asserted here: every
/// document ends in exactly one newline and has no carriage returns.
fn check(name: &str, actual: &str) {
    // Local sources are named by absolute paths: pin them relative to the
    // checkout, wherever it lives.
    let actual = &actual.replace(concat!(env!("CARGO_MANIFEST_DIR"), "/"), "");
    assert!(
        actual.ends_with('\n')
            && !actual.trim_end().contains('\r')
            && actual.trim_end().len() + 1 == actual.len(),
        "{name} must end in exactly one newline, without carriage returns"
    );
    insta::with_settings!({
        snapshot_path => "snapshots",
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(name, actual);
    });
}

#[test]
fn every_report_format_is_pinned() {
    let r = pinned_report();
    for (format, file) in [
        (Format::Json, "report.json"),
        (Format::Text, "report.txt"),
        (Format::Csv, "findings.csv"),
        (Format::Md, "report.md"),
        (Format::Junit, "junit.xml"),
        (Format::Prometheus, "backproof.prom"),
    ] {
        check(file, &format.run_report(&r, false).unwrap());
    }
}

/// A pinned compliance export: three nights of the pinned run plus the
/// promise, restore and retention findings the export summarises, and user
/// data with HTML, Markdown and template syntax in it.
fn pinned_compliance() -> backproof::compliance::Compliance {
    use backproof::finding::{Check, Finding, Status};
    use backproof::history::{ChainCheck, StoredBackup, StoredRun};
    let r = pinned_report();
    let backups: Vec<StoredBackup> = r
        .backups
        .iter()
        .map(|b| StoredBackup {
            subject: b.subject.clone(),
            kind: b.kind.to_string(),
            timestamp: b.timestamp.to_rfc3339(),
            size: b.size,
        })
        .collect();
    let odd = "db/<b>&\"it's\" | {failures}.sql.gz";
    let runs: Vec<StoredRun> = (0..3i64)
        .map(|night| {
            let at = r.started_at - chrono::Duration::days(2 - night);
            let mut findings = r.findings.clone();
            findings.push(
                Finding::new("rpo <daily>", Check::Freshness, Status::Pass, "fresh")
                    .with("source", "pg")
                    .with("age_seconds", 3600 * (night + 1))
                    .with("fail_after_seconds", 86_400u64)
                    .with("policy", "rpo <daily>"),
            );
            findings.push(
                Finding::new("keep", Check::Retention, Status::Warn, "short | history")
                    .with("source", "pg")
                    .with("min_age_seconds", Some(7 * 86_400u64))
                    .with("policy", "keep"),
            );
            findings.push(
                Finding::new(odd, Check::Restore, Status::Pass, "restored <ok>")
                    .with("source", "pg")
                    .with("rto_seconds", 600.0)
                    .with("restore_seconds", 12.25 + night as f64)
                    .with("sanity_seconds", 0.5),
            );
            findings.push(
                Finding::new(
                    "weekly restore",
                    Check::Restore,
                    Status::Fail,
                    "took too long",
                )
                .with("source", "pg")
                .with("rto_seconds", Some(600.0))
                .with("policy", "weekly restore")
                .with("restore_seconds", Some(700.5 - night as f64)),
            );
            let mut backups = backups.clone();
            backups.push(StoredBackup {
                subject: odd.to_string(),
                kind: "pg_plain+gzip".into(),
                timestamp: "2026-11-20T03:00:00+00:00".into(),
                size: 42,
            });
            StoredRun {
                id: night + 1,
                started_at: at,
                command: "run".into(),
                exit_code: if night == 1 { 1 } else { 0 },
                hash: format!("hash{night}"),
                findings,
                backups,
                interrupted: None,
                sources: vec![],
                source_names: Default::default(),
            }
        })
        .collect();
    let chain = ChainCheck {
        location: "/var/lib/<history>.sqlite".into(),
        runs: runs.len(),
        pruned: 0,
        head: "hash2".into(),
        problems: vec!["run 2 was edited".into()],
    };
    let since = r.started_at - chrono::Duration::days(30);
    let mut c = backproof::compliance::build(&runs, &chain, since);
    c.generated_at = r.finished_at;
    c
}

#[test]
fn compliance_export_in_every_format_is_pinned() {
    let c = pinned_compliance();
    for (format, file) in [
        (Format::Json, "compliance.json"),
        (Format::Csv, "compliance.csv"),
        (Format::Md, "compliance.md"),
        (Format::Junit, "compliance.junit.xml"),
        (Format::Prometheus, "compliance.prom"),
        (Format::Html, "compliance.html"),
    ] {
        check(file, &format.export(&c).unwrap());
    }
}

#[test]
fn compliance_export_of_an_empty_period_is_pinned() {
    let chain = backproof::history::ChainCheck {
        location: "history.sqlite".into(),
        runs: 0,
        pruned: 0,
        head: String::new(),
        problems: vec![],
    };
    let at = Utc.with_ymd_and_hms(2026, 11, 21, 3, 30, 0).unwrap();
    let mut c = backproof::compliance::build(&[], &chain, at - chrono::Duration::days(90));
    c.generated_at = at;
    for (format, file) in [
        (Format::Json, "compliance-empty.json"),
        (Format::Csv, "compliance-empty.csv"),
        (Format::Md, "compliance-empty.md"),
        (Format::Junit, "compliance-empty.junit.xml"),
        (Format::Prometheus, "compliance-empty.prom"),
        (Format::Html, "compliance-empty.html"),
    ] {
        check(file, &format.export(&c).unwrap());
    }
}

/// The writer seam: each format renders exactly the documents it is listed
/// for, and says so with a typed error otherwise.
#[test]
fn every_format_renders_the_documents_it_is_listed_for() {
    let r = pinned_report();
    let c = pinned_compliance();
    for f in Format::ALL {
        assert_eq!(
            f.run_report(&r, false).is_ok(),
            Format::RUN_REPORT.contains(f),
            "{f}"
        );
        assert_eq!(f.export(&c).is_ok(), Format::EXPORT.contains(f), "{f}");
    }
    // `report --format text` is the Markdown export (issue 14, item 7).
    assert_eq!(
        Format::Text.export(&c).unwrap(),
        Format::Md.export(&c).unwrap()
    );
    let e = Format::Html.run_report(&r, false).unwrap_err();
    assert_eq!(e.to_string(), "the run report has no html format");
}
