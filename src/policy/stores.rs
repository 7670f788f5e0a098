//! Promises about where backups are kept rather than what they hold:
//! versioning, the secondary copy, separation and encryption at rest. They
//! read the typed facts the run gathered about each store (bucket settings,
//! the copy's parity, what each GET reported) and never ask the store
//! themselves.

use std::time::Duration;

use super::{Apart, RemedyIf, Scope, SourceView};
use crate::finding::{Check, Finding, Status};
use crate::source::facts::{BucketSettings, ObjectLock, Versioning};
use crate::verify::store::{default_encryption_text, object_lock_text, retention_summary};

/// The settings of an S3 source's bucket, if the run could read them.
fn bucket_settings(view: &SourceView) -> Option<&BucketSettings> {
    view.bucket.as_ref().and_then(|b| b.settings.as_ref().ok())
}

fn not_s3(name: &str, check: Check, view: &SourceView, what: &str) -> Finding {
    Finding::new(
        name,
        check,
        Status::Error,
        format!(
            "{what} is a property of S3 buckets; {} is not one",
            view.location
        ),
    )
    .remedy(
        "Point this promise at an S3 source, or prove it another way and drop it from the policy.",
    )
}

fn facts_missing(name: &str, check: Check, view: &SourceView) -> Finding {
    Finding::new(
        name,
        check,
        Status::Error,
        format!("the facts of {} could not be read", view.location),
    )
    .with("source", view.location.as_str())
    .remedy("See the source and retention findings of this bucket: backproof needs s3:GetBucketVersioning, s3:GetLifecycleConfiguration, s3:GetBucketObjectLockConfiguration and s3:GetEncryptionConfiguration.")
}

pub(super) fn versioning(
    name: &str,
    view: &SourceView,
    keep_noncurrent: Option<Duration>,
    object_lock: bool,
) -> Finding {
    if !view.is_s3 {
        return not_s3(name, Check::Versioning, view, "versioning");
    }
    let Some(facts) = bucket_settings(view) else {
        return facts_missing(name, Check::Versioning, view);
    };
    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    let versioning = facts.versioning.as_str();
    if facts.versioning != Versioning::Enabled {
        problems.push(format!("versioning is {versioning}"));
    }
    if let Some(keep) = keep_noncurrent {
        let days = keep.as_secs().div_ceil(86_400);
        match facts.noncurrent.as_ref().map(|n| n.days()) {
            Ok(Some(have)) => {
                let have = u64::try_from(have).unwrap_or(0);
                if have < days {
                    problems.push(format!(
                        "noncurrent versions expire after {have} day(s), promise is {days}"
                    ));
                }
            }
            // No rule expires them: kept for ever, which keeps the promise.
            Ok(None) => {}
            Err(_) => unknown.push("noncurrent-version lifecycle"),
        }
    }
    if object_lock {
        match &facts.object_lock {
            Ok(ObjectLock::Enabled { .. }) => {}
            Ok(ObjectLock::NotEnabled) => problems.push("Object Lock is not enabled".into()),
            Err(_) => unknown.push("Object Lock configuration"),
        }
    }
    let status = if !problems.is_empty() {
        Status::Fail
    } else if !unknown.is_empty() {
        Status::Error
    } else {
        Status::Pass
    };
    let summary = match status {
        Status::Pass => format!("{}: {}", view.location, retention_summary(facts)),
        Status::Error => format!("could not read the bucket's {}", unknown.join(" and ")),
        _ => problems.join("; "),
    };
    Finding::new(name, Check::Versioning, status, summary)
        .with("source", view.location.as_str())
        .with("versioning", versioning)
        .with(
            "noncurrent_days",
            facts.noncurrent.as_ref().ok().and_then(|n| n.days()),
        )
        .with("object_lock", object_lock_text(&facts.object_lock))
        .with("keep_noncurrent_days", keep_noncurrent.map(|k| k.as_secs().div_ceil(86_400)))
        .with("problems", problems)
        .with("policy", name)
        .remedy_if(status, "Enable versioning, keep noncurrent versions at least as long as promised (a lifecycle NoncurrentVersionExpiration rule), and Object Lock where required.")
}

pub(super) fn copy(name: &str, view: &SourceView, max_lag: Option<Duration>) -> Finding {
    let Some(copy) = &view.copy else {
        return Finding::new(
            name,
            Check::Parity,
            Status::Fail,
            format!("{} has no secondary copy configured", view.location),
        )
        .with("source", view.location.as_str())
        .remedy("Set copy = \"s3://...\" on the source, and make sure the nightly copy job runs.");
    };
    let parity = match &view.parity {
        Some(Ok(p)) => p,
        other => {
            let why = match other {
                Some(Err(e)) if e.location.starts_with(copy.as_str()) => e.finding().summary,
                _ => "the copy was not compared".into(),
            };
            return Finding::new(name, Check::Parity, Status::Error, why)
                .with("source", view.location.as_str())
                .with("copy", copy.as_str())
                .remedy("See the source findings of the copy: it must be readable by backproof.");
        }
    };
    let lag = parity.copy_lag_seconds;
    let mut problems = Vec::new();
    if !parity.complete() {
        problems.push(parity.summary());
    }
    if let Some(max) = max_lag
        && lag > max.as_secs() as i64
    {
        problems.push(format!(
            "copy lag {} exceeds the promised {}",
            humantime::format_duration(Duration::from_secs(lag.max(0) as u64)),
            humantime::format_duration(max)
        ));
    }
    let status = if problems.is_empty() {
        Status::Pass
    } else {
        Status::Fail
    };
    let text = if problems.is_empty() {
        parity.summary()
    } else {
        problems.join("; ")
    };
    Finding::new(name, Check::Parity, status, text)
        .with("source", view.location.as_str())
        .with("copy", copy.as_str())
        .with("objects", parity.objects)
        .with("identical", parity.identical)
        .with("copy_lag_seconds", lag)
        .with("max_lag_seconds", max_lag.map(|m| m.as_secs()))
        .with("policy", name)
        .remedy_if(
            status,
            "See the parity findings: re-run the copy job, and find out why it missed objects.",
        )
}

pub(super) fn encryption(
    name: &str,
    view: &SourceView,
    scope: Scope,
    require_kms: bool,
    bucket_default: bool,
) -> Finding {
    if !view.is_s3 {
        return not_s3(name, Check::Encryption, view, "server-side encryption");
    }
    let mut backups: Vec<_> = view.backups.iter().collect();
    backups.sort_by_key(|b| b.timestamp);
    let in_scope: Vec<_> = match scope {
        Scope::All => backups,
        Scope::Newest => backups.last().into_iter().copied().collect(),
    };
    let acceptable = |e: &str| {
        if require_kms {
            e.starts_with("aws:kms")
        } else {
            e != "none" && e != "mixed"
        }
    };
    let mut weak = Vec::new();
    let mut unread = Vec::new();
    for b in &in_scope {
        match b.encryption.as_deref() {
            Some(e) if acceptable(e) => {}
            Some(e) => weak.push(format!("{} ({e})", b.subject)),
            None => unread.push(b.subject.as_str()),
        }
    }
    let mut problems = Vec::new();
    if !weak.is_empty() {
        problems.push(format!(
            "{} of {} backup(s) not encrypted {}: {}",
            weak.len(),
            in_scope.len(),
            if require_kms { "with KMS" } else { "at rest" },
            weak.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let default = bucket_settings(view).map(|s| &s.default_encryption);
    if bucket_default {
        match default {
            Some(Ok(d)) => {
                let d = d.as_deref().unwrap_or("none");
                if !acceptable(d) {
                    problems.push(format!("bucket default encryption is {d}"));
                }
            }
            Some(Err(_)) | None => unread.push("the bucket's default encryption"),
        }
    }
    let status = if !problems.is_empty() {
        Status::Fail
    } else if in_scope.is_empty() {
        problems.push("no backup to check".into());
        Status::Fail
    } else if !unread.is_empty() {
        // Not read tonight (sampling) is not proof either way.
        Status::Warn
    } else {
        Status::Pass
    };
    let summary = match status {
        Status::Pass => format!("{} backup(s) in scope encrypted at rest", in_scope.len()),
        Status::Warn => format!(
            "encryption unknown for {} (not read this run)",
            unread.join(", ")
        ),
        _ => problems.join("; "),
    };
    Finding::new(name, Check::Encryption, status, summary)
        .with("source", view.location.as_str())
        .with("checked", in_scope.len())
        .with("not_encrypted", weak)
        .with("unknown", unread)
        .with("bucket_default", default.map(default_encryption_text))
        .with("policy", name)
        .remedy_if(status, "Set default encryption on the bucket (SSE-S3 or SSE-KMS) and re-upload, or copy in place, the objects stored without it.")
}

pub(super) fn separation(name: &str, views: &[(&str, &SourceView)], by: &[Apart]) -> Finding {
    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    let mut seen = serde_json::Map::new();
    for level in by {
        let value = |v: &SourceView| match level {
            Apart::Storage => v.storage.clone(),
            Apart::Region => v.region.clone(),
            Apart::Account => v.account.clone(),
        };
        for (i, (a, va)) in views.iter().enumerate() {
            let Some(x) = value(va) else {
                unknown.push(format!("{} of {a}", level.as_str()));
                continue;
            };
            seen.insert(format!("{a}.{}", level.as_str()), x.clone().into());
            for (b, vb) in &views[i + 1..] {
                if value(vb).as_ref() == Some(&x) {
                    problems.push(format!("{a} and {b} share the {} {x}", level.as_str()));
                }
            }
        }
    }
    let status = if !problems.is_empty() {
        Status::Fail
    } else if !unknown.is_empty() {
        Status::Error
    } else {
        Status::Pass
    };
    let names: Vec<&str> = views.iter().map(|(n, _)| *n).collect();
    let summary = match status {
        Status::Pass => format!(
            "{} kept apart by {}",
            names.join(", "),
            by.iter().map(|l| l.as_str()).collect::<Vec<_>>().join(", ")
        ),
        Status::Error => format!("cannot tell the {}", unknown.join(", ")),
        _ => problems.join("; "),
    };
    let remedy = if status == Status::Error {
        "Declare region = \"...\" and account = \"...\" on the sources in the config."
    } else {
        "One incident (a deleted bucket, a compromised account, a regional outage) would take both: move one of them."
    };
    Finding::new(name, Check::Separation, status, summary)
        .with("sources", names)
        .with("placement", seen)
        .with("problems", problems)
        .with("policy", name)
        .remedy_if(status, remedy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::ParityFacts;
    use crate::source::facts::{BucketFacts, NoncurrentExpiry};

    fn s3_view(bucket: Option<BucketFacts>, parity: Option<ParityFacts>) -> SourceView {
        SourceView {
            location: "s3://content/".into(),
            is_s3: true,
            copy: Some("s3://copy/".into()),
            bucket,
            parity: parity.map(Ok),
            ..SourceView::default()
        }
    }

    fn settings(noncurrent_days: Option<i32>, lock: bool) -> BucketSettings {
        BucketSettings {
            versioning: Versioning::Enabled,
            object_lock: Ok(if lock {
                ObjectLock::Enabled {
                    default_retention: None,
                }
            } else {
                ObjectLock::NotEnabled
            }),
            noncurrent: Ok(noncurrent_days.map_or(
                NoncurrentExpiry::NoExpiringRule,
                NoncurrentExpiry::AfterDays,
            )),
            default_encryption: Ok(None),
        }
    }

    fn bucket(settings: BucketSettings) -> Option<BucketFacts> {
        Some(BucketFacts {
            bucket: "content".into(),
            region: None,
            settings: Ok(settings),
        })
    }

    const DAY: u64 = 86_400;

    #[test]
    fn noncurrent_versions_kept_at_the_threshold() {
        let keep = Some(Duration::from_secs(30 * DAY));
        let status = |days, lock, want_lock| {
            versioning(
                "p",
                &s3_view(bucket(settings(days, lock)), None),
                keep,
                want_lock,
            )
            .status
        };
        assert_eq!(status(Some(29), false, false), Status::Fail);
        assert_eq!(status(Some(30), false, false), Status::Pass);
        assert_eq!(status(None, false, false), Status::Pass, "never expired");
        assert_eq!(
            status(Some(30), false, true),
            Status::Fail,
            "no Object Lock"
        );
        assert_eq!(status(Some(30), true, true), Status::Pass);
        let suspended = BucketSettings {
            versioning: Versioning::Suspended,
            ..settings(Some(30), true)
        };
        assert_eq!(
            versioning("p", &s3_view(bucket(suspended), None), keep, false).status,
            Status::Fail
        );
        assert_eq!(
            versioning("p", &s3_view(None, None), keep, false).status,
            Status::Error,
            "facts unknown is never a pass"
        );
    }

    #[test]
    fn copy_lag_at_the_threshold() {
        let parity = |lag: i64| ParityFacts {
            objects: 1,
            identical: 1,
            problems: 0,
            copy_lag_seconds: lag,
        };
        let max = Some(Duration::from_secs(26 * 3600));
        let status = |lag| copy("p", &s3_view(None, Some(parity(lag))), max).status;
        assert_eq!(status(26 * 3600), Status::Pass);
        assert_eq!(status(26 * 3600 + 1), Status::Fail);
        let incomplete = ParityFacts {
            identical: 0,
            problems: 1,
            ..parity(0)
        };
        assert_eq!(
            copy("p", &s3_view(None, Some(incomplete)), max).status,
            Status::Fail
        );
    }
}
