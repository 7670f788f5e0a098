//! Promises about a series of backups: freshness (RPO), retention and gaps,
//! size anomalies, verification results, and coverage of an inventory.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Observed, RemedyIf, Scope, SourceView, human};
use crate::finding::{Check, Finding, Status};

pub(super) fn freshness(
    name: &str,
    source: &str,
    b: Vec<&Observed>,
    warn_after: &Option<Duration>,
    fail_after: &Duration,
    now: DateTime<Utc>,
) -> Finding {
    let Some(newest) = b.last() else {
        return Finding::new(name, Check::Freshness, Status::Fail, "no backup at all")
            .with("source", source)
            .remedy("The backup job is not producing backups here: check it now.");
    };
    let age = now - newest.timestamp;
    let fail = chrono::Duration::from_std(*fail_after).unwrap_or(chrono::Duration::MAX);
    let warn = warn_after.and_then(|w| chrono::Duration::from_std(w).ok());
    let status = if age > fail {
        Status::Fail
    } else if warn.is_some_and(|w| age > w) {
        Status::Warn
    } else {
        Status::Pass
    };
    Finding::new(
        name,
        Check::Freshness,
        status,
        format!(
            "newest backup is {} old (promise: at most {})",
            human(age),
            humantime::format_duration(*fail_after)
        ),
    )
    .with("source", source)
    .with("newest", newest.subject.as_str())
    .with("newest_timestamp", newest.timestamp.to_rfc3339())
    .with("age_seconds", age.num_seconds())
    .with("fail_after_seconds", fail_after.as_secs())
    .with("policy", name)
    .remedy_if(
        status,
        "Backups are older than the promised RPO: check the backup job and take one now.",
    )
}

#[allow(clippy::too_many_arguments)]
pub(super) fn retention(
    name: &str,
    source: &str,
    b: Vec<&Observed>,
    min_age: &Option<Duration>,
    min_count: &Option<usize>,
    max_gap: &Option<Duration>,
    max_age: &Option<Duration>,
    now: DateTime<Utc>,
) -> Finding {
    let mut problems = Vec::new();
    let oldest = b.first().map(|o| now - o.timestamp);
    if let Some(n) = min_count
        && b.len() < *n
    {
        problems.push(format!(
            "{} backup(s) kept, promise is at least {n}",
            b.len()
        ));
    }
    if let Some(min) = min_age {
        let min_c = chrono::Duration::from_std(*min).unwrap_or(chrono::Duration::MAX);
        if oldest.is_none_or(|o| o < min_c) {
            problems.push(format!(
                "oldest backup is {} old, promise is {} of history",
                oldest.map(human).unwrap_or_else(|| "not even".into()),
                humantime::format_duration(*min)
            ));
        }
    }
    let mut largest_gap = None;
    for w in b.windows(2) {
        let gap = w[1].timestamp - w[0].timestamp;
        if largest_gap.as_ref().is_none_or(|(g, _, _)| gap > *g) {
            largest_gap = Some((gap, w[0].subject.clone(), w[1].subject.clone()));
        }
    }
    if let (Some(max), Some((gap, from, to))) = (max_gap, &largest_gap)
        && *gap > chrono::Duration::from_std(*max).unwrap_or(chrono::Duration::MAX)
    {
        problems.push(format!(
            "gap of {} between {from} and {to} (promise: at most {})",
            human(*gap),
            humantime::format_duration(*max)
        ));
    }
    if let Some(max) = max_age {
        let max_c = chrono::Duration::from_std(*max).unwrap_or(chrono::Duration::MAX);
        let too_old: Vec<&str> = b
            .iter()
            .filter(|o| now - o.timestamp > max_c)
            .map(|o| o.subject.as_str())
            .collect();
        if !too_old.is_empty() {
            problems.push(format!(
                "{} backup(s) older than the {} allowed, e.g. {}",
                too_old.len(),
                humantime::format_duration(*max),
                too_old[0]
            ));
        }
    }
    let status = if problems.is_empty() {
        Status::Pass
    } else {
        Status::Fail
    };
    let summary = if problems.is_empty() {
        format!(
            "{} backup(s) spanning {}",
            b.len(),
            oldest.map(human).unwrap_or_else(|| "nothing".into())
        )
    } else {
        problems.join("; ")
    };
    Finding::new(name, Check::Retention, status, summary)
        .with("source", source)
        .with("count", b.len())
        .with("min_age_seconds", min_age.map(|d| d.as_secs()))
        .with("oldest", b.first().map(|o| o.timestamp.to_rfc3339()))
        .with("newest", b.last().map(|o| o.timestamp.to_rfc3339()))
        .with(
            "largest_gap_seconds",
            largest_gap.as_ref().map(|(g, _, _)| g.num_seconds()),
        )
        .with("problems", problems)
        .with("policy", name)
        .remedy_if(status, "Retention is not what was promised: check the rotation/lifecycle rules and the backup schedule.")
}

#[allow(clippy::too_many_arguments)]
pub(super) fn size_anomaly(
    name: &str,
    source: &str,
    b: Vec<&Observed>,
    window: &usize,
    fail_below: &f64,
    warn_below: &f64,
    fail_above: &f64,
    min_bytes: &u64,
) -> Finding {
    let Some(newest) = b.last() else {
        return Finding::new(
            name,
            Check::SizeAnomaly,
            Status::Fail,
            "no backup to measure",
        );
    };
    let mut previous: Vec<u64> = b[..b.len() - 1]
        .iter()
        .rev()
        .take(*window)
        .map(|o| o.size)
        .collect();
    previous.sort_unstable();
    let median = previous.get(previous.len() / 2).copied();
    let ratio = median
        .filter(|m| *m > 0)
        .map(|m| newest.size as f64 / m as f64);
    let (status, summary) = if newest.size < *min_bytes {
        (
            Status::Fail,
            format!(
                "newest backup is {} bytes, below the {min_bytes}-byte floor",
                newest.size
            ),
        )
    } else {
        match ratio {
            None => (
                Status::Pass,
                format!(
                    "newest backup is {} bytes; no predecessors to compare with yet",
                    newest.size
                ),
            ),
            Some(r) if r < *fail_below || r > *fail_above => (
                Status::Fail,
                format!(
                    "newest backup is {:.0}% of the median of the {} before it",
                    r * 100.0,
                    previous.len()
                ),
            ),
            Some(r) if r < *warn_below => (
                Status::Warn,
                format!(
                    "newest backup is {:.0}% of the median of the {} before it",
                    r * 100.0,
                    previous.len()
                ),
            ),
            Some(r) => (
                Status::Pass,
                format!("newest backup is {:.0}% of the recent median", r * 100.0),
            ),
        }
    };
    Finding::new(name, Check::SizeAnomaly, status, summary)
        .with("source", source)
        .with("newest", newest.subject.as_str())
        .with("newest_bytes", newest.size)
        .with("median_bytes", median)
        .with("compared_with", previous.len())
        .with("policy", name)
        .remedy_if(status, "A backup far smaller or larger than usual: open it, and check the job's log for errors or runaway data.")
}

pub(super) fn verified(name: &str, source: &str, b: Vec<&Observed>, scope: &Scope) -> Finding {
    let in_scope: Vec<&&Observed> = match scope {
        Scope::All => b.iter().collect(),
        Scope::Newest => b.last().into_iter().collect(),
    };
    if in_scope.is_empty() {
        return Finding::new(name, Check::Verified, Status::Fail, "no backup to verify");
    }
    let worst = in_scope
        .iter()
        .map(|o| o.verdict.unwrap_or(Status::Error))
        .max()
        .unwrap_or(Status::Error);
    let bad: Vec<&str> = in_scope
        .iter()
        .filter(|o| o.verdict.unwrap_or(Status::Error) >= Status::Fail)
        .map(|o| o.subject.as_str())
        .collect();
    let status = if worst == Status::Warn {
        Status::Pass
    } else {
        worst
    };
    let summary = if bad.is_empty() {
        format!("{} backup(s) in scope verified", in_scope.len())
    } else {
        format!(
            "{} of {} backup(s) in scope failed or could not be verified",
            bad.len(),
            in_scope.len()
        )
    };
    Finding::new(name, Check::Verified, status, summary)
        .with("source", source)
        .with(
            "scope",
            if *scope == Scope::All {
                "all"
            } else {
                "newest"
            },
        )
        .with("not_verified", bad)
        .with("policy", name)
        .remedy_if(
            status,
            "See the integrity and structure findings of these backups.",
        )
}

pub(super) fn coverage(
    name: &str,
    inventory: &[String],
    max_age: &Duration,
    by_source: &BTreeMap<String, SourceView>,
    now: DateTime<Utc>,
) -> Finding {
    let limit = chrono::Duration::from_std(*max_age).unwrap_or(chrono::Duration::MAX);
    let mut missing = Vec::new();
    let mut covered = serde_json::Map::new();
    for item in inventory {
        let newest = by_source
            .iter()
            .filter(|(s, _)| s.contains(item.as_str()))
            .flat_map(|(_, v)| v.backups.iter())
            .chain(
                by_source
                    .values()
                    .flat_map(|v| v.backups.iter())
                    .filter(|o| o.key.contains(item.as_str())),
            )
            .map(|o| o.timestamp)
            .max();
        match newest {
            Some(t) if now - t <= limit => {
                covered.insert(item.clone(), json!(t.to_rfc3339()));
            }
            Some(t) => missing.push(format!("{item} (newest backup {} old)", human(now - t))),
            None => missing.push(format!("{item} (no backup found)")),
        }
    }
    let status = if missing.is_empty() {
        Status::Pass
    } else {
        Status::Fail
    };
    let summary = if missing.is_empty() {
        format!(
            "all {} inventory item(s) have a recent backup",
            inventory.len()
        )
    } else {
        format!("unprotected: {}", missing.join(", "))
    };
    Finding::new(name, Check::Coverage, status, summary)
        .with("covered", covered)
        .with("missing", missing)
        .with("policy", name)
        .remedy_if(status, "Something in the inventory has no recent backup: add a backup job and a source for it.")
}
