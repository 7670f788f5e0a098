//! The store's facts judged: bucket versioning and retention as one
//! retention finding, each deleted object as a recovery finding, each
//! noncurrent version read back as an integrity finding. The only place
//! that turns [`StoreFacts`] into findings and advice; the promises about
//! stores reuse its wording.

use crate::expectation::Expectation;
use crate::finding::{Check, Finding, Status};
use crate::inspect::Kind;
use crate::source::facts::{
    BucketFacts, BucketSettings, DeletedObject, NoncurrentExpiry, ObjectLock, StoreFacts, Unread,
    Versioning,
};
use crate::source::{Artifact, Storage, Unchecked};

/// One object version read to its end through the same checks as a
/// current object: the store's checksums and the structure inspection.
#[derive(Debug)]
pub struct ReadBack {
    /// Key, size, modification time and version id.
    pub version: Artifact,
    pub outcome: Result<VersionRead, ReadFailure>,
}

#[derive(Debug)]
pub struct VersionRead {
    pub bytes: u64,
    /// Each stored checksum with the value the bytes gave.
    pub checks: Vec<(Expectation, String)>,
    /// Stored checksums that could not be rebuilt, with why.
    pub unchecked: Vec<Unchecked>,
    pub structure: Structure,
}

/// What the structure inspection made of a version's bytes.
#[derive(Debug)]
pub enum Structure {
    Sound(Kind),
    /// Not a format backproof knows: only checksums vouch for it.
    Unrecognised {
        kind: Kind,
        why: String,
    },
    Damaged {
        kind: Kind,
        damage: String,
    },
}

/// A version that could not be read to its end.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct ReadFailure {
    pub reason: String,
}

/// Every finding the facts call for, in the order the store gave them;
/// `reads` holds each version the facts name, read back.
pub fn findings(source: &dyn Storage, facts: &StoreFacts, reads: &[ReadBack]) -> Vec<Finding> {
    let read = |a: &Artifact| {
        reads
            .iter()
            .find(|r| r.version.key == a.key && r.version.version_id == a.version_id)
    };
    let mut out = Vec::new();
    if let Some(bucket) = &facts.bucket {
        out.push(retention(bucket));
    }
    match &facts.versions {
        None => {}
        Some(Err(e)) => out.push(
            Finding::new(
                source.location(),
                Check::Recovery,
                Status::Error,
                format!("cannot list object versions: {e}"),
            )
            .remedy("Grant s3:ListBucketVersions to backproof's credentials."),
        ),
        Some(Ok(v)) => {
            out.extend(
                v.deleted
                    .iter()
                    .map(|d| recovery(source, d, d.previous.as_ref().and_then(read))),
            );
            out.extend(
                v.noncurrent
                    .iter()
                    .filter_map(read)
                    .map(|r| noncurrent(source, r)),
            );
        }
    }
    out
}

fn unknown(e: &Unread) -> String {
    format!("unknown ({e})")
}

/// Object Lock as reports word it.
pub fn object_lock_text(lock: &Result<ObjectLock, Unread>) -> String {
    match lock {
        Ok(ObjectLock::NotEnabled) => "not enabled".into(),
        Ok(ObjectLock::Enabled {
            default_retention: None,
        }) => "enabled, no default retention".into(),
        Ok(ObjectLock::Enabled {
            default_retention: Some(d),
        }) => format!(
            "enabled, default {} retention of {}",
            d.mode.as_deref().unwrap_or("?"),
            match (d.days, d.years) {
                (Some(n), _) => format!("{n} day(s)"),
                (_, Some(n)) => format!("{n} year(s)"),
                _ => "unspecified length".into(),
            }
        ),
        Err(e) => unknown(e),
    }
}

/// What happens to noncurrent versions, as reports word it.
pub fn noncurrent_text(noncurrent: &Result<NoncurrentExpiry, Unread>) -> String {
    match noncurrent {
        Ok(NoncurrentExpiry::AfterDays(d)) => format!("expire after {d} day(s)"),
        Ok(NoncurrentExpiry::NoExpiringRule) => {
            "kept until deleted by hand (no expiring rule)".into()
        }
        Ok(NoncurrentExpiry::NoLifecycleRules) => {
            "kept until deleted by hand (no lifecycle rules)".into()
        }
        Err(e) => unknown(e),
    }
}

/// The bucket's default encryption, as reports word it ("none" without).
pub fn default_encryption_text(default: &Result<Option<String>, Unread>) -> String {
    match default {
        Ok(Some(a)) => a.clone(),
        Ok(None) => "none".into(),
        Err(e) => unknown(e),
    }
}

/// The retention finding's summary for settings it passes.
pub fn retention_summary(settings: &BucketSettings) -> String {
    format!(
        "versioning enabled; noncurrent versions {}",
        noncurrent_text(&settings.noncurrent)
    )
}

/// Bucket versioning, Object Lock and noncurrent-version lifecycle, as
/// one retention finding; settings the store would not give are noted in
/// the evidence rather than failing the run.
fn retention(bucket: &BucketFacts) -> Finding {
    let subject = format!("s3://{}", bucket.bucket);
    let s = match &bucket.settings {
        Ok(s) => s,
        Err(e) => {
            return Finding::new(
                subject,
                Check::Retention,
                Status::Error,
                format!("cannot read the bucket's versioning: {e}"),
            )
            .remedy("Grant s3:GetBucketVersioning to backproof's credentials.");
        }
    };
    let (st, summary, remedy) = match &s.versioning {
        Versioning::Enabled => (Status::Pass, retention_summary(s), None),
        Versioning::Suspended => (
            Status::Warn,
            "versioning suspended: objects overwritten or deleted from now on cannot be recovered"
                .to_string(),
            Some(
                "Re-enable versioning on the bucket (aws s3api put-bucket-versioning --versioning-configuration Status=Enabled).",
            ),
        ),
        Versioning::NeverEnabled | Versioning::Other(_) => (
            Status::Warn,
            "versioning never enabled: an overwritten or deleted object cannot be recovered"
                .to_string(),
            Some(
                "Enable versioning on the bucket, with a lifecycle rule that expires noncurrent versions after your retention period.",
            ),
        ),
    };
    let lock_enabled = s
        .object_lock
        .as_ref()
        .ok()
        .map(|l| *l != ObjectLock::NotEnabled);
    let mut f = Finding::new(subject, Check::Retention, st, summary)
        .with("versioning", s.versioning.as_str())
        .with("object_lock", object_lock_text(&s.object_lock))
        .with("object_lock_enabled", lock_enabled)
        .with("noncurrent_versions", noncurrent_text(&s.noncurrent))
        .with("noncurrent_known", s.noncurrent.is_ok())
        .with(
            "noncurrent_days",
            s.noncurrent.as_ref().ok().and_then(|n| n.days()),
        )
        .with(
            "default_encryption",
            default_encryption_text(&s.default_encryption),
        );
    if let Some(r) = remedy {
        f = f.remedy(r);
    }
    f
}

/// The stored checksums a read-back was checked against, and those it
/// failed ("ORIGIN: expected X got Y").
fn judged(r: &VersionRead) -> (Vec<String>, Vec<String>) {
    let names = r.checks.iter().map(|(e, _)| e.manifest.clone()).collect();
    let bad = r
        .checks
        .iter()
        .filter(|(e, actual)| &e.digest != actual)
        .map(|(e, actual)| format!("{}: expected {} got {actual}", e.manifest, e.digest))
        .collect();
    (names, bad)
}

/// How one version read back fares: the status, what to say after "version
/// X ", and the evidence lists. Checksums first (a mismatch is corruption),
/// then the structure (a damaged stream is corruption too, whatever the
/// checksums stored for the damaged bytes say), then what could not be
/// checked.
struct Judgement {
    status: Status,
    says: String,
    checks: Vec<String>,
    mismatches: Vec<String>,
    unchecked: Vec<String>,
    kind: Kind,
}

impl Judgement {
    /// What was read and checked, on the version's finding.
    fn evidence(self, f: Finding, r: &VersionRead) -> Finding {
        let mut f = f
            .with("bytes_read", r.bytes)
            .with("kind", self.kind.to_string())
            .with("checks", self.checks);
        if !self.mismatches.is_empty() {
            f = f.with("mismatches", self.mismatches);
        }
        if !self.unchecked.is_empty() {
            f = f.with("unchecked", self.unchecked);
        }
        f
    }
}

fn judge(r: &VersionRead) -> Judgement {
    let (checks, mismatches) = judged(r);
    let unchecked: Vec<String> = r
        .unchecked
        .iter()
        .map(|u| format!("{}: {}", u.expectation.manifest, u.reason))
        .collect();
    let kind = match &r.structure {
        Structure::Sound(k)
        | Structure::Unrecognised { kind: k, .. }
        | Structure::Damaged { kind: k, .. } => *k,
    };
    let (status, says) = if !mismatches.is_empty() {
        (
            Status::Fail,
            format!("does not match its checksum: {}", mismatches.join("; ")),
        )
    } else if let Structure::Damaged { kind, damage } = &r.structure {
        (
            Status::Fail,
            format!(
                "is damaged ({kind}: {damage}) although it matches {} stored checksum(s): they were recorded for the damaged bytes",
                checks.len()
            ),
        )
    } else if checks.is_empty() {
        let why = if unchecked.is_empty() {
            "S3 records no checksum to check it against".to_string()
        } else {
            format!(
                "its checksums could not be checked ({})",
                unchecked.join("; ")
            )
        };
        (Status::Warn, format!("reads back, but {why}"))
    } else {
        let structure = match &r.structure {
            Structure::Sound(kind) => format!("; {kind} complete"),
            Structure::Unrecognised { why, .. } => format!("; structure not checked: {why}"),
            Structure::Damaged { .. } => unreachable!("judged above"),
        };
        let also = if unchecked.is_empty() {
            String::new()
        } else {
            format!("; not checked: {}", unchecked.join("; "))
        };
        (
            Status::Pass,
            format!(
                "reads back and matches {} stored checksum(s){structure}{also}",
                checks.len()
            ),
        )
    };
    Judgement {
        status,
        says,
        checks,
        mismatches,
        unchecked,
        kind,
    }
}

/// A deleted object: the newest earlier version must exist, read back with
/// the checksums S3 records for it, and pass the structure inspection.
/// A delete marker on a key the listing shows no version of is a delete
/// of something that (as far as the store shows) never existed, or whose
/// versions expired as the lifecycle allows: nothing to recover, a warning.
fn recovery(source: &dyn Storage, d: &DeletedObject, rb: Option<&ReadBack>) -> Finding {
    let subject = source.subject(&d.key);
    let Some(a) = &d.previous else {
        return Finding::new(
            subject,
            Check::Recovery,
            Status::Warn,
            "delete marker, and no earlier version is listed: nothing to restore (a delete of a key that never held an object, or one whose versions expired)",
        )
        .with("deleted_at", d.deleted_at.to_rfc3339())
        .remedy("If an object of this name should exist, restore it from another copy and keep noncurrent versions long enough; otherwise nothing is lost.");
    };
    let version = a.version_id.clone().unwrap_or_default();
    let base = |status, summary: String| {
        Finding::new(&subject, Check::Recovery, status, summary)
            .with("deleted_at", d.deleted_at.to_rfc3339())
            .with("version_id", version.clone())
            .with("size", a.size)
    };
    let r = match rb.map(|rb| &rb.outcome) {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            return base(
                Status::Error,
                format!("deleted; previous version {version} cannot be read: {e}"),
            );
        }
        None => {
            return base(
                Status::Error,
                format!("deleted; previous version {version} was not read"),
            );
        }
    };
    let j = judge(r);
    let status = j.status;
    let summary = format!("deleted; previous version {version} {}", j.says);
    let f = j.evidence(base(status, summary), r);
    match status {
        Status::Fail => f.remedy(
            "The version that should restore this object is damaged: restore from another copy.",
        ),
        Status::Warn => {
            f.remedy("Upload with a checksum (x-amz-checksum-*) so the copy can be proven intact.")
        }
        _ => f,
    }
}

/// A noncurrent version read back through the checksums S3 stored for it
/// and the structure inspection.
fn noncurrent(source: &dyn Storage, rb: &ReadBack) -> Finding {
    let a = &rb.version;
    let version = a.version_id.clone().unwrap_or_default();
    let base = |status, summary: String| {
        Finding::new(source.subject(&a.key), Check::Integrity, status, summary)
            .with("version_id", version.clone())
            .with("modified", a.modified.to_rfc3339())
            .with("size", a.size)
    };
    let r = match &rb.outcome {
        Ok(r) => r,
        Err(e) => {
            return base(Status::Error, format!("noncurrent version {version} cannot be read: {e}"))
                .remedy("Check permissions (s3:GetObjectVersion) and the storage; this version is unproven.");
        }
    };
    let j = judge(r);
    let status = j.status;
    let summary = format!("noncurrent version {version} {}", j.says);
    let f = j.evidence(base(status, summary), r);
    match status {
        Status::Fail => {
            f.remedy("This old version is damaged: it will not restore the object as it was.")
        }
        Status::Warn => f.remedy(
            "Upload with a checksum (x-amz-checksum-*) so every version can be proven intact.",
        ),
        _ => f,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::facts::Retention;
    use serde_json::json;

    fn unread(why: &str) -> Unread {
        Unread { reason: why.into() }
    }

    #[test]
    fn unread_settings_are_evidence_not_failures() {
        let bucket = BucketFacts {
            bucket: "b".into(),
            region: None,
            settings: Ok(BucketSettings {
                versioning: Versioning::Enabled,
                object_lock: Err(unread("NotImplemented (HTTP 501)")),
                noncurrent: Err(unread("AccessDenied (HTTP 403)")),
                default_encryption: Ok(Some("AES256".into())),
            }),
        };
        let f = retention(&bucket);
        assert_eq!((f.subject.as_str(), f.status), ("s3://b", Status::Pass));
        assert_eq!(
            f.summary,
            "versioning enabled; noncurrent versions unknown (AccessDenied (HTTP 403))"
        );
        let ev = serde_json::Value::Object(f.evidence);
        assert_eq!(
            ev,
            json!({
                "versioning": "Enabled",
                "object_lock": "unknown (NotImplemented (HTTP 501))",
                "object_lock_enabled": null,
                "noncurrent_versions": "unknown (AccessDenied (HTTP 403))",
                "noncurrent_known": false,
                "noncurrent_days": null,
                "default_encryption": "AES256",
            })
        );
        assert!(f.remediation.is_none());
    }

    #[test]
    fn settings_worded_as_before() {
        let lock = Ok(ObjectLock::Enabled {
            default_retention: Some(Retention {
                mode: Some("COMPLIANCE".into()),
                days: None,
                years: Some(7),
            }),
        });
        assert_eq!(
            object_lock_text(&lock),
            "enabled, default COMPLIANCE retention of 7 year(s)"
        );
        assert_eq!(
            noncurrent_text(&Ok(NoncurrentExpiry::AfterDays(30))),
            "expire after 30 day(s)"
        );
        assert_eq!(default_encryption_text(&Ok(None)), "none");
        let unreadable = BucketFacts {
            bucket: "b".into(),
            region: None,
            settings: Err(unread("AccessDenied (HTTP 403)")),
        };
        let f = retention(&unreadable);
        assert_eq!(f.status, Status::Error);
        assert_eq!(
            f.summary,
            "cannot read the bucket's versioning: AccessDenied (HTTP 403)"
        );
        assert!(f.evidence.is_empty());
    }
}
