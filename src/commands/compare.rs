//! `backproof compare SRC DST`: is the copy complete and current?

use std::path::PathBuf;

use chrono::Utc;

use super::CommandError;
use super::verify::Verified;
use crate::compare::compare_stores;
use crate::report::Report;
use crate::source::{self, S3Options};
use crate::verify::VerifyOptions;

pub struct CompareRequest {
    /// The original.
    pub src: PathBuf,
    /// The copy.
    pub dst: PathBuf,
    pub options: VerifyOptions,
    pub s3: S3Options,
    /// Record the comparison here; `None` for `--no-history`.
    pub history: Option<PathBuf>,
    /// The keys this process compares.
    pub shard: crate::shard::Shard,
}

pub fn compare(req: &CompareRequest) -> Verified {
    let report = compare_report(req);
    let recorded: Result<(), CommandError> = match &req.history {
        Some(h) => super::record(&report, h),
        None => Ok(()),
    };
    Verified { report, recorded }
}

/// The comparison as a report: the parity findings, or why a side could not
/// be listed.
fn compare_report(req: &CompareRequest) -> Report {
    let started = Utc::now();
    let sources = vec![req.src.display().to_string(), req.dst.display().to_string()];
    let (findings, bytes_read) = match (
        source::open_location(&req.src, &req.s3),
        source::open_location(&req.dst, &req.s3),
    ) {
        (Ok(src), Ok(dst)) => {
            match compare_stores(src.as_ref(), dst.as_ref(), &req.options, req.shard) {
                Ok(p) => (p.findings, p.bytes_read),
                Err(e) => (vec![e.finding()], 0),
            }
        }
        (Err(e), _) | (_, Err(e)) => (vec![e.finding()], 0),
    };
    let mut report = Report::new("compare", started, sources, Vec::new(), findings);
    // A comparison reads objects, not backups: its bytes count all the same.
    report.summary.bytes_read = bytes_read;
    report
}
