//! The store's facts judged: bucket versioning and retention as one
//! retention finding, each deleted object as a recovery finding, each
//! noncurrent version read back as an integrity finding. The only place
//! that turns [`StoreFacts`] into findings and advice; the promises about
//! stores reuse its wording.

use crate::finding::{Check, Finding, Status};
use crate::source::Storage;
use crate::source::facts::{
    BucketFacts, BucketSettings, DeletedObject, NoncurrentExpiry, ObjectLock, ReadBack,
    ReadBackError, StoreFacts, Unread, VersionRead, Versioning,
};

/// Every finding the facts call for, in the order the store gave them.
pub fn findings(source: &dyn Storage, facts: &StoreFacts) -> Vec<Finding> {
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
            out.extend(v.deleted.iter().map(|d| recovery(source, d)));
            out.extend(v.noncurrent.iter().map(|r| noncurrent(source, r)));
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

fn read_failure(e: &ReadBackError) -> String {
    match e {
        ReadBackError::Open(io) => format!("cannot be read: {io}"),
        ReadBackError::Read(io) => format!("reading failed: {io}"),
    }
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

/// A deleted object: the newest earlier version must exist and read back
/// with the checksums S3 records for it.
fn recovery(source: &dyn Storage, d: &DeletedObject) -> Finding {
    let subject = source.subject(&d.key);
    let Some(rb) = &d.previous else {
        return Finding::new(
            subject,
            Check::Recovery,
            Status::Fail,
            "deleted, and no earlier version exists: it cannot be restored",
        )
        .with("deleted_at", d.deleted_at.to_rfc3339())
        .remedy("Restore it from another copy; keep versioning enabled and noncurrent versions long enough.");
    };
    let a = &rb.version;
    let version = a.version_id.clone().unwrap_or_default();
    let base = |status, summary: String| {
        Finding::new(&subject, Check::Recovery, status, summary)
            .with("deleted_at", d.deleted_at.to_rfc3339())
            .with("version_id", version.clone())
            .with("size", a.size)
    };
    let r = match &rb.outcome {
        Ok(r) => r,
        Err(e) => {
            return base(
                Status::Error,
                format!("deleted; previous version {version} {}", read_failure(e)),
            );
        }
    };
    let (names, bad) = judged(r);
    if r.bytes != a.size {
        base(
            Status::Fail,
            format!(
                "deleted; previous version {version} read {} of {} bytes",
                r.bytes, a.size
            ),
        )
        .remedy(
            "The version that should restore this object is damaged: restore from another copy.",
        )
    } else if !bad.is_empty() {
        base(
            Status::Fail,
            format!(
                "deleted; previous version {version} does not match its checksum: {}",
                bad.join("; ")
            ),
        )
        .with("mismatches", bad)
        .remedy(
            "The version that should restore this object is damaged: restore from another copy.",
        )
    } else if names.is_empty() {
        base(
            Status::Warn,
            format!("deleted; previous version {version} reads back, but S3 records no checksum to check it against"),
        )
        .remedy("Upload with a checksum (x-amz-checksum-*) so the copy can be proven intact.")
    } else {
        base(
            Status::Pass,
            format!(
                "deleted; previous version {version} reads back and matches {} stored checksum(s)",
                names.len()
            ),
        )
        .with("checks", names)
    }
}

/// A noncurrent version read back and checked against the checksums S3
/// stored for it.
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
            return base(Status::Error, format!("noncurrent version {version}: {}", read_failure(e)))
                .remedy("Check permissions (s3:GetObjectVersion) and the storage; this version is unproven.");
        }
    };
    let (names, bad) = judged(r);
    if r.bytes != a.size {
        base(
            Status::Fail,
            format!(
                "noncurrent version {version} read {} of {} bytes",
                r.bytes, a.size
            ),
        )
        .remedy("This old version is damaged: it will not restore the object as it was.")
    } else if !bad.is_empty() {
        base(
            Status::Fail,
            format!(
                "noncurrent version {version} does not match its checksum: {}",
                bad.join("; ")
            ),
        )
        .with("mismatches", bad)
        .remedy("This old version is damaged: it will not restore the object as it was.")
    } else if names.is_empty() {
        base(
            Status::Warn,
            format!("noncurrent version {version} reads back, but S3 records no checksum to check it against"),
        )
        .remedy("Upload with a checksum (x-amz-checksum-*) so every version can be proven intact.")
    } else {
        base(
            Status::Pass,
            format!(
                "noncurrent version {version} matches {} stored checksum(s)",
                names.len()
            ),
        )
        .with("checks", names)
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
