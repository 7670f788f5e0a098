//! Snapshot tests pinning every report format on a real verification of the
//! committed corpus (times and durations fixed). Regenerate after an
//! intended change with `UPDATE_SNAPSHOTS=1 cargo test --test snapshots`, and
//! review the diff like code.

use std::path::{Path, PathBuf};

use backproof::commands::verify::{VerifyRequest, verify};
use backproof::report::{self, Report};
use backproof::verify::VerifyOptions;
use chrono::{TimeZone, Utc};

fn pinned_report() -> Report {
    // Relative paths: subjects do not depend on where the repository lives.
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

fn check(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_SNAPSHOTS=1 to create it)",
            path.display()
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from its snapshot at line {}:\n  snapshot: {:?}\n  now:      {:?}",
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

#[test]
fn every_report_format_is_pinned() {
    let r = pinned_report();
    for (format, file) in [
        ("json", "report.json"),
        ("text", "report.txt"),
        ("csv", "findings.csv"),
        ("md", "report.md"),
        ("junit", "junit.xml"),
        ("prometheus", "backproof.prom"),
    ] {
        check(file, &report::render(&r, format, false).unwrap());
    }
}
