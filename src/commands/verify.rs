//! `backproof verify PATH...`: a spot check, no config needed.

use std::path::PathBuf;

use chrono::Utc;

use super::CommandError;
use super::target::{RestoreJob, verify_target};
use crate::finding::{Check, Finding, Status};
use crate::report::Report;
use crate::restore::{RestoreOverrides, RestoreSession, RestoreSpec, Which};
use crate::source::{self, S3Options};
use crate::verify::VerifyOptions;

/// What to check and how.
pub struct VerifyRequest {
    /// Files, dump directories, directories of backups, or s3:// URLs.
    pub paths: Vec<PathBuf>,
    pub timestamp_pattern: Option<String>,
    pub options: VerifyOptions,
    pub s3: S3Options,
    pub show_progress: bool,
    /// Restore every restorable dump found (one scratch instance per engine
    /// shared by all of them).
    pub restore: Option<RestoreOverrides>,
    /// Record the spot check here; `None` for `--no-history`.
    pub history: Option<PathBuf>,
    /// The part of each path this process checks.
    pub shard: crate::shard::Shard,
}

/// The report, and whether it reached the history.
pub struct Verified {
    pub report: Report,
    pub recorded: Result<(), CommandError>,
}

pub fn verify(req: &VerifyRequest) -> Result<Verified, CommandError> {
    let pattern = super::timestamp_pattern(req.timestamp_pattern.as_deref())?;
    let started = Utc::now();
    let sources: Vec<String> = req
        .paths
        .iter()
        .map(|p| crate::source::location_name(p))
        .collect();
    if let Some(h) = &req.history {
        super::record_interruptions(h, "verify", sources.clone());
    }
    let mut backups = Vec::new();
    let mut findings = Vec::new();
    let mut store_bytes = 0;
    let mut session = req.restore.as_ref().map(|o| RestoreSession::new(o.clone()));
    let spec = RestoreSpec::default();
    let archive = match &req.options.wal_archive {
        None => None,
        Some(a) => match super::target::audit_wal_archive(a, &req.s3, &req.options) {
            Ok(v) => Some(v),
            Err(e) => {
                findings.push(e.finding());
                None
            }
        },
    };
    for path in &req.paths {
        let job = session.as_mut().map(|session| RestoreJob {
            session,
            spec: &spec,
            source_name: path.display().to_string(),
            which: Which::All,
            previous: None,
        });
        match source::resolve(path, &req.s3).and_then(|t| {
            let t = t.sharded(req.shard);
            verify_target(
                &t,
                &pattern,
                &Default::default(),
                &req.options,
                req.show_progress,
                None,
                None,
                job,
                archive.as_ref(),
            )
        }) {
            Ok(audited) => {
                let v = audited.verified;
                store_bytes += v.store_bytes_read;
                if v.catalogued.is_empty() {
                    findings.push(
                        Finding::new(
                            path.display().to_string(),
                            Check::Source,
                            Status::Warn,
                            "no backups found",
                        )
                        .remedy("Point backproof at the directory the backups are written to."),
                    );
                }
                backups.extend(v.backups);
                findings.extend(v.findings);
            }
            Err(e) => findings.push(e.finding()),
        }
    }
    if let Some(a) = archive {
        findings.extend(a.findings);
        backups.extend(a.backups);
    }
    if let Some(s) = session.as_mut() {
        s.finish();
    }
    // A signal cut the restores short: no verdict on unfinished work.
    crate::interrupt::halt_if_interrupted();
    let mut report = Report::new("verify", started, sources, backups, findings);
    report.summary.bytes_read += store_bytes;
    let recorded = match &req.history {
        Some(h) => super::record(&report, h),
        None => Ok(()),
    };
    Ok(Verified { report, recorded })
}
