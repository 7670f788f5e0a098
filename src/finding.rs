//! Findings: the typed results every stage produces and every report consumes.
//!
//! A finding is data, not a log line: it names its subject (a file, a backup, a
//! manifest entry), the check that produced it, a status, the evidence behind
//! the status and, when something is wrong, how to fix it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Outcome of one check on one subject, ordered from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// Something deserves attention but the backup is usable (e.g. not covered
    /// by any manifest).
    Warn,
    /// The backup is damaged or a promise is broken.
    Fail,
    /// The check could not run (unreadable file, missing tool). Never a pass.
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Error => "error",
        }
    }

    /// The inverse of [`Status::as_str`].
    pub fn parse(s: &str) -> Option<Status> {
        [Status::Pass, Status::Warn, Status::Fail, Status::Error]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// The checks this version knows; serialized as lowercase names in reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// The source itself could be listed and read.
    Source,
    /// The bytes match every checksum a manifest or sidecar records for them.
    Integrity,
    /// The format is complete and self-consistent (compression trailers,
    /// dump table of contents, tar walk, image header).
    Structure,
    /// A manifest parses and everything it lists exists.
    Manifest,
    /// Policy: the newest backup is within the RPO.
    Freshness,
    /// Policy: enough history, no gaps, nothing kept too long; and for
    /// object stores: versioning, Object Lock, noncurrent-version lifetime.
    Retention,
    /// Policy: the newest backup's size is in line with its predecessors.
    SizeAnomaly,
    /// Policy: the backups in scope passed verification.
    Verified,
    /// Policy: everything in the inventory has a recent backup.
    Coverage,
    /// A deleted object can be restored: a previous version exists and
    /// reads back with a valid checksum.
    Recovery,
    /// A copy holds every object of its source, with the same bytes, and
    /// nothing else.
    Parity,
    /// Policy: bucket versioning on, old versions kept, Object Lock.
    Versioning,
    /// Policy: sources live apart (bucket, region, account).
    Separation,
    /// Policy: backups are encrypted at rest.
    Encryption,
    /// The dump restored into a scratch database, the result passed its
    /// sanity checks, and within the RTO.
    Restore,
    /// Policy: a verified snapshot was taken shortly before each change.
    SnapshotBeforeChange,
    /// A physical base backup's WAL is in the archive, and the archive is
    /// gap-free along its timelines (the recoverable window).
    Continuity,
    /// Policy: the recoverable window covers the promised span, and the
    /// archive's newest WAL is recent enough.
    Pitr,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Source => "source",
            Check::Integrity => "integrity",
            Check::Structure => "structure",
            Check::Manifest => "manifest",
            Check::Freshness => "freshness",
            Check::Retention => "retention",
            Check::SizeAnomaly => "size_anomaly",
            Check::Verified => "verified",
            Check::Coverage => "coverage",
            Check::Recovery => "recovery",
            Check::Parity => "parity",
            Check::Versioning => "versioning",
            Check::Separation => "separation",
            Check::Encryption => "encryption",
            Check::Restore => "restore",
            Check::SnapshotBeforeChange => "snapshot_before_change",
            Check::Continuity => "continuity",
            Check::Pitr => "pitr",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Finding {
    /// What was checked, as the user would name it: a path relative to the
    /// source root, prefixed with the source location.
    pub subject: String,
    pub check: Check,
    pub status: Status,
    /// One line a human reads first.
    pub summary: String,
    /// Machine-readable facts behind the status (digests, sizes, tool output).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub evidence: Map<String, Value>,
    /// What to do about it, when the status is not `pass`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
}

impl Finding {
    pub fn new(
        subject: impl Into<String>,
        check: Check,
        status: Status,
        summary: impl Into<String>,
    ) -> Self {
        Finding {
            subject: subject.into(),
            check,
            status,
            summary: summary.into(),
            evidence: Map::new(),
            remediation: None,
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.evidence.insert(key.to_string(), value.into());
        self
    }

    pub fn with_evidence(mut self, evidence: Map<String, Value>) -> Self {
        self.evidence.extend(evidence);
        self
    }

    pub fn remedy(mut self, text: impl Into<String>) -> Self {
        self.remediation = Some(text.into());
        self
    }
}

/// Exit code contract: 0 no check failed (warnings allowed), 1 a check failed,
/// 2 the audit could not run. A definite failure outranks an audit error,
/// because it is certain news about a backup; errors alone still exit 2 so a
/// silent non-run is never mistaken for success.
pub fn exit_code(findings: &[Finding]) -> i32 {
    let worst_fail = findings.iter().any(|f| f.status == Status::Fail);
    let any_error = findings.iter().any(|f| f.status == Status::Error);
    if worst_fail {
        1
    } else if any_error {
        2
    } else {
        0
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Tally {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub error: usize,
}

impl Tally {
    pub fn of(findings: &[Finding]) -> Self {
        let mut t = Tally::default();
        for f in findings {
            match f.status {
                Status::Pass => t.pass += 1,
                Status::Warn => t.warn += 1,
                Status::Fail => t.fail += 1,
                Status::Error => t.error += 1,
            }
        }
        t
    }
}
