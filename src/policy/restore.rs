//! The restore promise: a passing test restore of the source within a
//! period, and within the RTO.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{RemedyIf, SourceView, human};
use crate::finding::{Check, Finding, Status};

/// The newest backup of the source decides: its newest restore inside the
/// window must have passed within the RTO. A restore of an older backup
/// never stands in for it (a newest dump that fails or was skipped would
/// otherwise hide behind last week's good one).
pub(super) fn restored(
    name: &str,
    view: &SourceView,
    within: Duration,
    rto: Option<Duration>,
    now: DateTime<Utc>,
) -> Finding {
    restored_where(name, view, within, rto, now, |_| true)
}

/// [`restored`], counting only the restores `counts` keeps (the `pitr`
/// promise: those that replayed WAL to their target).
pub(super) fn restored_where(
    name: &str,
    view: &SourceView,
    within: Duration,
    rto: Option<Duration>,
    now: DateTime<Utc>,
    counts: impl Fn(&super::RestoreSeen) -> bool,
) -> Finding {
    let restores: Vec<&super::RestoreSeen> = view.restores.iter().filter(|r| counts(r)).collect();
    let window = chrono::Duration::from_std(within).unwrap_or(chrono::Duration::MAX);
    // Only series that are restored at all count: a disk image or a tar
    // kept beside the dumps is no dump the promise is about (judging on it
    // would fail a source whose newest dump restored fine). With no restore
    // anywhere, every backup counts, and the promise fails.
    let restored_series: std::collections::BTreeSet<String> = view
        .backups
        .iter()
        .filter(|b| restores.iter().any(|r| r.subject == b.subject))
        .map(|b| view.timestamp_pattern.series(&b.key))
        .collect();
    // Same order as the restore job's choice: newest, then by key.
    let newest_backup = view
        .backups
        .iter()
        .filter(|b| {
            restored_series.is_empty()
                || restored_series.contains(&view.timestamp_pattern.series(&b.key))
        })
        .max_by(|a, b| a.timestamp.cmp(&b.timestamp).then(b.key.cmp(&a.key)));
    let of_newest = |r: &&&super::RestoreSeen| newest_backup.is_none_or(|b| b.subject == r.subject);
    let newest = restores
        .iter()
        .filter(of_newest)
        .max_by_key(|r| r.at)
        .copied();
    let older = restores.iter().max_by_key(|r| r.at).copied();
    let base = |status, summary: String| {
        Finding::new(name, Check::Restore, status, summary)
            .with("source", view.location.as_str())
            .with("within_seconds", within.as_secs())
            .with("rto_seconds", rto.map(|r| r.as_secs_f64()))
            .with("policy", name)
    };
    let Some(last) = newest.filter(|r| now - r.at <= window) else {
        let summary = match (newest, older, newest_backup) {
            (Some(r), _, _) => format!(
                "last restore was {} ago, promise is every {}",
                human(now - r.at),
                humantime::format_duration(within)
            ),
            (None, Some(o), Some(b)) => format!(
                "newest backup {} was not restored (the last restore was of {}, which does not vouch for it)",
                b.subject, o.subject
            ),
            (None, _, _) => "never restored".to_string(),
        };
        return base(Status::Fail, summary)
            .with("newest_backup", newest_backup.map(|b| b.subject.as_str()))
            .with("last_restore", newest.map(|r| r.at.to_rfc3339()))
            .remedy("Add [sources.restore] to this source so backproof restores it, and run it at least as often as promised.");
    };
    let over_rto = matches!((last.seconds, rto), (Some(s), Some(r)) if s > r.as_secs_f64());
    let status = if last.status >= Status::Fail || over_rto {
        Status::Fail
    } else {
        Status::Pass
    };
    let summary = if last.status >= Status::Fail {
        format!("last restore of {} failed: {}", last.subject, last.summary)
    } else if over_rto {
        format!(
            "last restore of {} took {:.1} s, over the {} RTO",
            last.subject,
            last.seconds.unwrap_or_default(),
            humantime::format_duration(rto.unwrap_or_default())
        )
    } else {
        format!(
            "{} restored {} ago in {:.1} s",
            last.subject,
            human(now - last.at),
            last.seconds.unwrap_or_default()
        )
    };
    base(status, summary)
        .with("restored", last.subject.as_str())
        .with("restored_at", last.at.to_rfc3339())
        // A failed restore achieved no RTO: its load time is no recovery time.
        .with(
            "restore_seconds",
            last.seconds.filter(|_| last.status < Status::Fail),
        )
        .remedy_if(
            status,
            "See the restore finding: fix the dump or the job, and make restores fast enough for the RTO.",
        )
}
