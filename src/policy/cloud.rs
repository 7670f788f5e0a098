//! Promises about cloud snapshot sources (EBS, RDS), judged on the typed
//! facts the run gathered: the provider's retention period, the point-in-
//! time window, copies in another region, multi-AZ, encryption of the
//! snapshot series; and the snapshot states themselves (stuck in pending,
//! failed), which are findings whatever the promises say.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{RemedyIf, Scope, SourceView, human};
use crate::finding::{Check, Finding, Status};
use crate::source::facts::{CloudFacts, CloudResource, CloudSnapshot};

/// A snapshot pending longer than this is stuck, not slow.
const STUCK_AFTER: Duration = Duration::from_secs(24 * 3600);

fn age(now: DateTime<Utc>, t: DateTime<Utc>) -> chrono::Duration {
    now - t
}

fn longer(d: chrono::Duration, limit: Duration) -> bool {
    d > chrono::Duration::from_std(limit).unwrap_or(chrono::Duration::MAX)
}

/// The facts of a cloud source, or the finding that says why there are
/// none to judge.
fn facts<'a>(name: &str, check: Check, view: &'a SourceView) -> Result<&'a CloudFacts, Finding> {
    match &view.cloud {
        Some(Ok(f)) => Ok(f),
        Some(Err(e)) => Err(Finding::new(
            name,
            check,
            Status::Error,
            format!("could not list {}: {}", view.location, e.reason),
        )
        .with("source", view.location.as_str())
        .with("policy", name)
        .remedy("Check the region, the credentials and the read permissions in the README's IAM policy.")),
        None => Err(Finding::new(
            name,
            check,
            Status::Error,
            format!("{} is no ebs:// or rds:// source", view.location),
        )
        .with("source", view.location.as_str())
        .with("policy", name)
        .remedy("Point this promise at an ebs:// or rds:// source.")),
    }
}

/// The databases of an rds:// source, or the finding that says why not.
fn databases<'a>(
    name: &str,
    check: Check,
    view: &'a SourceView,
) -> Result<Vec<&'a CloudResource>, Finding> {
    let f = facts(name, check, view)?;
    let dbs: Vec<&CloudResource> = f.resources.iter().filter(|r| r.db.is_some()).collect();
    if f.service != "rds" || dbs.is_empty() {
        return Err(Finding::new(
            name,
            check,
            Status::Fail,
            format!("{} holds no DB instance or cluster", view.location),
        )
        .with("source", view.location.as_str())
        .with("policy", name)
        .remedy("Point this promise at an rds:// source that names a live database."));
    }
    Ok(dbs)
}

/// One finding from per-resource problems: fail when any, pass otherwise.
fn verdict(
    name: &str,
    check: Check,
    view: &SourceView,
    checked: usize,
    problems: Vec<String>,
    pass: String,
    remedy: &str,
) -> Finding {
    let status = if problems.is_empty() {
        Status::Pass
    } else {
        Status::Fail
    };
    let summary = if problems.is_empty() {
        pass
    } else {
        format!(
            "{} of {checked} not kept: {}",
            problems.len(),
            problems
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    Finding::new(name, check, status, summary)
        .with("source", view.location.as_str())
        .with("checked", checked)
        .with("problems", problems)
        .with("policy", name)
        .remedy_if(status, remedy)
}

/// What the provider says of one volume or database, as a finding whose
/// evidence holds the facts (its snapshot series, and for a database its
/// backup settings): the record of what was seen, whatever the promises.
fn resource_finding(facts: &CloudFacts, r: &CloudResource, now: DateTime<Utc>) -> Finding {
    let done: Vec<&CloudSnapshot> = r.snapshots.iter().filter(|s| s.is_complete()).collect();
    let newest = done.last().map(|s| human(age(now, s.created)));
    let mut summary = format!(
        "{} {}: {} snapshot(s), {} completed{}",
        r.kind,
        r.id,
        r.snapshots.len(),
        done.len(),
        newest
            .map(|n| format!(", newest {n} old"))
            .unwrap_or_default()
    );
    let series: Vec<_> = r
        .snapshots
        .iter()
        .map(|s| {
            json!({
                "snapshot": s.id,
                "created": s.created.to_rfc3339(),
                "state": s.state,
                "encrypted": s.encrypted,
                "kms_key": s.kms_key,
                "size_gib": s.size_gib,
                "type": s.kind,
            })
        })
        .collect();
    let mut f = Finding::new(
        format!("{}://{}/{}", facts.service, facts.region, r.id),
        Check::Source,
        Status::Pass,
        String::new(),
    )
    .with("resource", r.id.as_str())
    .with("kind", r.kind.as_str())
    .with("snapshots", series);
    if let Some(db) = &r.db {
        summary += &format!(
            "; retention {} day(s), {}, restorable to {}",
            db.retention_days,
            if db.multi_az { "multi-AZ" } else { "single-AZ" },
            db.latest_restorable
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "unknown".into())
        );
        f = f
            .with("backup_retention_days", db.retention_days)
            .with(
                "latest_restorable_time",
                db.latest_restorable.map(|t| t.to_rfc3339()),
            )
            .with("multi_az", db.multi_az)
            .with("storage_encrypted", db.storage_encrypted)
            .with("kms_key", db.kms_key.clone())
            .with("deletion_protection", db.deletion_protection)
            .with("status", db.status.as_str());
    }
    f.summary = summary;
    f
}

/// One finding per volume or database (what the provider says of it), and
/// one per snapshot that is not usable: in error (a failed backup), or
/// pending for longer than a day (stuck; a warning before that).
pub fn states(
    facts: &CloudFacts,
    subject: &dyn Fn(&str) -> String,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    let mut out: Vec<Finding> = facts
        .resources
        .iter()
        .map(|r| resource_finding(facts, r, now))
        .collect();
    for s in facts.snapshots() {
        let stuck = !s.is_complete() && longer(age(now, s.created), STUCK_AFTER);
        let status = if s.is_failed() || stuck {
            Status::Fail
        } else if !s.is_complete() {
            Status::Warn
        } else {
            continue;
        };
        let summary = if s.is_failed() {
            format!(
                "snapshot {} of {} is in state {:?}: it cannot be restored",
                s.id, s.resource, s.state
            )
        } else {
            format!(
                "snapshot {} of {} is still {:?} after {}",
                s.id,
                s.resource,
                s.state,
                human(age(now, s.created))
            )
        };
        out.push(
            Finding::new(subject(&s.key), Check::Source, status, summary)
                .with("snapshot", s.id.as_str())
                .with("resource", s.resource.as_str())
                .with("state", s.state.as_str())
                .with("created", s.created.to_rfc3339())
                .remedy("A snapshot that failed or never completes is no backup: find out why (the provider's events), take a new one, and delete the broken one."),
        );
    }
    out
}

/// `retention` with `min_retention_period`: each database keeps automated
/// backups at least that long (RDS `BackupRetentionPeriod`).
pub fn retention_period(name: &str, view: &SourceView, period: Duration) -> Finding {
    let dbs = match databases(name, Check::Retention, view) {
        Ok(d) => d,
        Err(f) => return f,
    };
    let days = period.as_secs().div_ceil(86_400) as i64;
    let problems: Vec<String> = dbs
        .iter()
        .filter_map(|r| {
            let kept = r.db.as_ref()?.retention_days;
            (kept < days).then(|| format!("{} keeps automated backups {kept} day(s)", r.id))
        })
        .collect();
    let kept: Vec<_> = dbs
        .iter()
        .map(|r| json!({"db": r.id, "retention_days": r.db.as_ref().map(|d| d.retention_days)}))
        .collect();
    verdict(
        name,
        Check::Retention,
        view,
        dbs.len(),
        problems,
        format!(
            "{} database(s) keep automated backups at least {days} day(s)",
            dbs.len()
        ),
        "Raise the backup retention period (modify-db-instance --backup-retention-period) to the promise.",
    )
    .with("min_retention_days", days)
    .with("databases", kept)
}

/// `point_in_time`: each database can be restored to a moment at most
/// `fail_after` ago (RDS `LatestRestorableTime`).
pub fn point_in_time(
    name: &str,
    view: &SourceView,
    warn_after: Option<Duration>,
    fail_after: Duration,
    now: DateTime<Utc>,
) -> Finding {
    let dbs = match databases(name, Check::Freshness, view) {
        Ok(d) => d,
        Err(f) => return f,
    };
    let mut problems = Vec::new();
    let mut late = Vec::new();
    let mut seen = Vec::new();
    for r in &dbs {
        let Some(db) = &r.db else { continue };
        match db.latest_restorable {
            _ if db.retention_days == 0 => {
                problems.push(format!("{}: automated backups are off", r.id))
            }
            None => problems.push(format!("{}: no restorable time reported", r.id)),
            Some(t) => {
                let a = age(now, t);
                seen.push(json!({"db": r.id, "latest_restorable": t.to_rfc3339(), "age_seconds": a.num_seconds()}));
                if longer(a, fail_after) {
                    problems.push(format!(
                        "{}: latest restorable time is {} old",
                        r.id,
                        human(a)
                    ));
                } else if warn_after.is_some_and(|w| longer(a, w)) {
                    late.push(format!(
                        "{}: latest restorable time is {} old",
                        r.id,
                        human(a)
                    ));
                }
            }
        }
    }
    let mut f = verdict(
        name,
        Check::Freshness,
        view,
        dbs.len(),
        problems.clone(),
        format!(
            "{} database(s) restorable to at most {} ago",
            dbs.len(),
            humantime::format_duration(fail_after)
        ),
        "Point-in-time recovery has fallen behind: check the instance's backup status and events.",
    )
    .with("databases", seen)
    .with("fail_after_seconds", fail_after.as_secs());
    if problems.is_empty() && !late.is_empty() {
        f.status = Status::Warn;
        f.summary = late.join("; ");
    }
    f
}

/// `redundancy`: every database runs in more than one availability zone.
pub fn redundancy(name: &str, view: &SourceView, multi_az: bool) -> Finding {
    let dbs = match databases(name, Check::Separation, view) {
        Ok(d) => d,
        Err(f) => return f,
    };
    let problems: Vec<String> = dbs
        .iter()
        .filter(|r| multi_az && !r.db.as_ref().is_some_and(|d| d.multi_az))
        .map(|r| format!("{} is single-AZ", r.id))
        .collect();
    verdict(
        name,
        Check::Separation,
        view,
        dbs.len(),
        problems,
        format!("{} database(s) multi-AZ", dbs.len()),
        "Turn on Multi-AZ (modify-db-instance --multi-az), or accept the single zone in the plan.",
    )
}

/// Whether `copy` is a copy of `original`: it names it (RDS's source ARN,
/// or the description EC2 writes, "[Copied snap-… from …]"), or it is of
/// the same database with the same original creation time.
fn is_copy_of(copy: &CloudSnapshot, original: &CloudSnapshot) -> bool {
    let names = |text: &str| {
        text.contains(&original.id)
            && original
                .arn
                .as_deref()
                .is_none_or(|a| !text.starts_with("arn:") || text == a)
    };
    if copy.copied_from.as_deref().is_some_and(names)
        || copy
            .description
            .as_deref()
            .is_some_and(|d| d.contains(&original.id))
    {
        return true;
    }
    copy.resource == original.resource
        && copy
            .original_created
            .is_some_and(|t| (t - original.created).num_seconds().abs() <= 1)
}

/// `region_copy`: each snapshot in scope (the newest of each resource, or
/// all) has a completed copy in `region`, made within `max_lag`.
pub fn region_copy(
    name: &str,
    view: &SourceView,
    region: &str,
    scope: Scope,
    max_lag: Option<Duration>,
    now: DateTime<Utc>,
) -> Finding {
    let f = match facts(name, Check::Parity, view) {
        Ok(f) => f,
        Err(f) => return f,
    };
    let copies = match view.copies.get(region) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            return Finding::new(
                name,
                Check::Parity,
                Status::Error,
                format!("could not list snapshots in {region}: {}", e.reason),
            )
            .with("source", view.location.as_str())
            .with("policy", name)
            .remedy("Check the credentials' read permissions in that region too.");
        }
        None => {
            return Finding::new(
                name,
                Check::Parity,
                Status::Error,
                format!("snapshots in {region} were not listed this run"),
            )
            .with("policy", name);
        }
    };
    let mut in_scope: Vec<&CloudSnapshot> = Vec::new();
    for r in &f.resources {
        let done: Vec<&CloudSnapshot> = r.snapshots.iter().filter(|s| s.is_complete()).collect();
        match scope {
            Scope::All => in_scope.extend(done),
            Scope::Newest => in_scope.extend(done.last()),
        }
    }
    let mut problems = Vec::new();
    let mut pending = Vec::new();
    let mut matched = Vec::new();
    for s in &in_scope {
        let copy = copies
            .iter()
            .filter(|c| c.is_complete() && is_copy_of(c, s))
            .min_by_key(|c| c.created);
        match copy {
            Some(c) => {
                let lag = c.created - s.created;
                matched.push(
                    json!({"snapshot": s.id, "copy": c.id, "lag_seconds": lag.num_seconds()}),
                );
                if max_lag.is_some_and(|m| longer(lag, m)) {
                    problems.push(format!(
                        "{} reached {region} {} after it was taken",
                        s.id,
                        human(lag)
                    ));
                }
            }
            None if max_lag.is_some_and(|m| !longer(age(now, s.created), m)) => {
                pending.push(format!(
                    "{} ({} old) not yet in {region}",
                    s.id,
                    human(age(now, s.created))
                ))
            }
            None => problems.push(format!(
                "{} of {} has no copy in {region}",
                s.id, s.resource
            )),
        }
    }
    if in_scope.is_empty() {
        problems.push("no completed snapshot to check".into());
    }
    let status = if !problems.is_empty() {
        Status::Fail
    } else if !pending.is_empty() {
        Status::Warn
    } else {
        Status::Pass
    };
    let summary = match status {
        Status::Pass => format!("{} snapshot(s) in scope copied to {region}", in_scope.len()),
        Status::Warn => pending.join("; "),
        _ => format!(
            "{} of {} snapshot(s) not copied to {region} in time: {}",
            problems.len(),
            in_scope.len(),
            problems
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    Finding::new(name, Check::Parity, status, summary)
        .with("source", view.location.as_str())
        .with("region", region)
        .with("checked", in_scope.len())
        .with("copies", matched)
        .with("problems", problems)
        .with("policy", name)
        .remedy_if(status, "Copy the snapshots to the other region (a DLM or AWS Backup copy rule, or copy-db-snapshot / copy-snapshot), and find out why the copy job missed these.")
}

/// `encryption` on a snapshot series: each snapshot in scope encrypted (on
/// EBS and RDS that is always with KMS); `bucket_default` means the
/// database's storage is encrypted too.
pub fn encryption(name: &str, view: &SourceView, scope: Scope, storage: bool) -> Finding {
    let f = match facts(name, Check::Encryption, view) {
        Ok(f) => f,
        Err(f) => return f,
    };
    let mut in_scope: Vec<&CloudSnapshot> = Vec::new();
    for r in &f.resources {
        let done: Vec<&CloudSnapshot> = r.snapshots.iter().filter(|s| s.is_complete()).collect();
        match scope {
            Scope::All => in_scope.extend(done),
            Scope::Newest => in_scope.extend(done.last()),
        }
    }
    let mut problems: Vec<String> = in_scope
        .iter()
        .filter(|s| !s.encrypted)
        .map(|s| format!("{} of {} is not encrypted", s.id, s.resource))
        .collect();
    if storage {
        problems.extend(
            f.resources
                .iter()
                .filter(|r| r.db.as_ref().is_some_and(|d| !d.storage_encrypted))
                .map(|r| format!("{}'s storage is not encrypted", r.id)),
        );
    }
    if in_scope.is_empty() {
        problems.push("no completed snapshot to check".into());
    }
    let keys: Vec<_> = in_scope
        .iter()
        .map(|s| json!({"snapshot": s.id, "encrypted": s.encrypted, "kms_key": s.kms_key}))
        .collect();
    verdict(
        name,
        Check::Encryption,
        view,
        in_scope.len(),
        problems,
        format!("{} snapshot(s) in scope encrypted with KMS", in_scope.len()),
        "Encrypt the volume or database (a copy with --kms-key-id, then switch over); snapshots inherit it.",
    )
    .with("snapshots", keys)
}

/// Two findings of one promise as one: the worse status, both summaries.
pub fn merge(a: Finding, b: Finding) -> Finding {
    let (mut worse, other) = if b.status > a.status { (b, a) } else { (a, b) };
    worse.summary = format!("{}; {}", worse.summary, other.summary);
    for (k, v) in other.evidence {
        worse.evidence.entry(k).or_insert(v);
    }
    if worse.remediation.is_none() {
        worse.remediation = other.remediation;
    }
    worse
}
