//! The `pitr` promise: the recoverable window of a source's base backups
//! and WAL archive ([`crate::inspect::physical::PhysicalFacts`], typed, as the run
//! paired them) covers the last `min_window` without a gap, and its newest
//! recoverable instant (the last commit in gap-free WAL) is at most
//! `max_archive_age` old: the data a recovery now would lose.
//!
//! A point-in-time test restore within the RTO is the `restore` promise's
//! (its facts come from the restore engine); this one does not parse it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{RemedyIf, SourceView, human};
use crate::finding::{Check, Finding, Status};
use crate::inspect::physical::ClusterWindow;

fn fmt(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

/// One cluster's verdict: status and summary.
fn judge(
    c: &ClusterWindow,
    min_window: Option<Duration>,
    max_age: Option<Duration>,
    now: DateTime<Utc>,
) -> (Status, String) {
    let Some(latest) = c.latest else {
        let why = if c.backups.is_empty() {
            "no base backup of this cluster is paired with its WAL archive".to_string()
        } else {
            "no base backup reaches a recoverable instant (WAL missing, or no commit after it)"
                .to_string()
        };
        return (Status::Fail, why);
    };
    if let Some(m) = max_age {
        let age = now - latest;
        if age > chrono::Duration::from_std(m).unwrap_or(chrono::Duration::MAX) {
            let cut = c
                .gaps
                .first()
                .map(|g| {
                    format!(
                        " (WAL stops being recoverable at {}, missing)",
                        g.first_missing
                    )
                })
                .unwrap_or_default();
            return (
                Status::Fail,
                format!(
                    "newest recoverable instant {} is {} old, promise is at most {}{cut}",
                    fmt(Some(latest)),
                    human(age),
                    humantime::format_duration(m)
                ),
            );
        }
    }
    if let Some(w) = min_window {
        let since = now - chrono::Duration::from_std(w).unwrap_or(chrono::Duration::MAX);
        // A gap after an instant of the window leaves newer WAL unreplayable:
        // the window does not reach the archive's end.
        let recent_gap = c.gaps.iter().any(|g| g.after.is_none_or(|a| a >= since));
        if recent_gap || latest < since || !c.covers_since(since) {
            let gap = c
                .gaps
                .iter()
                .map(|g| {
                    if g.first_missing == g.last_missing {
                        g.first_missing.clone()
                    } else {
                        format!("{}..{}", g.first_missing, g.last_missing)
                    }
                })
                .collect::<Vec<_>>();
            let detail = if gap.is_empty() {
                String::new()
            } else {
                format!("; gap(s): {}", gap.join(", "))
            };
            return (
                Status::Fail,
                format!(
                    "recoverable {} to {}: not the promised last {} without a gap{detail}",
                    fmt(c.earliest),
                    fmt(Some(latest)),
                    humantime::format_duration(w)
                ),
            );
        }
    }
    (
        Status::Pass,
        format!(
            "recoverable without a gap from {} to {}",
            fmt(c.earliest),
            fmt(Some(latest))
        ),
    )
}

pub(super) fn pitr(
    name: &str,
    view: &SourceView,
    min_window: Option<Duration>,
    max_age: Option<Duration>,
    now: DateTime<Utc>,
) -> Finding {
    let clusters: Vec<&ClusterWindow> = view.physical.iter().flat_map(|p| &p.clusters).collect();
    let base = |status, summary: String| {
        Finding::new(name, Check::Pitr, status, summary)
            .with("source", view.location.as_str())
            .with("policy", name)
            .with("min_window_seconds", min_window.map(|d| d.as_secs()))
            .with("max_archive_age_seconds", max_age.map(|d| d.as_secs()))
    };
    if clusters.is_empty() {
        return base(
            Status::Fail,
            "no base backup with a WAL archive found in this source: nothing to recover to a point in time from".into(),
        )
        .remedy("Point the source at the pg_basebackup directories and their WAL archive (or set wal_archive on the source).");
    }
    let judged: Vec<(Status, String, &ClusterWindow)> = clusters
        .iter()
        .map(|c| {
            let (s, m) = judge(c, min_window, max_age, now);
            (s, m, *c)
        })
        .collect();
    let worst = judged
        .iter()
        .max_by_key(|(s, _, _)| *s)
        .expect("at least one cluster");
    let summary = if judged.len() > 1 {
        format!("system identifier {}: {}", worst.2.system_id, worst.1)
    } else {
        worst.1.clone()
    };
    let windows: Vec<_> = judged
        .iter()
        .map(|(s, m, c)| {
            json!({
                "system_identifier": c.system_id.to_string(),
                "status": s,
                "summary": m,
                "earliest": c.earliest,
                "latest": c.latest,
                "gaps": c.gaps,
                "archive": c.archive,
            })
        })
        .collect();
    base(worst.0, summary)
        .with("clusters", windows)
        .remedy_if(
            worst.0,
            "Keep base backups often enough that one always starts inside the promised window, fix archive_command (see the continuity findings for the missing WAL), and keep the archive for as long as the window promises.",
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::physical::PhysicalFacts;
    use crate::inspect::physical::window::{BackupWindow, ClusterWindow};

    fn t(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + h * 3600, 0).unwrap()
    }

    fn window(earliest: i64, latest: i64) -> BackupWindow {
        BackupWindow {
            backup: crate::inspect::physical::BaseBackupInfo {
                key: format!("base-{earliest}"),
                format: crate::inspect::physical::BaseFormat::Plain,
                system_id: Some(1),
                timeline: 1,
                start_lsn: None,
                stop_lsn: None,
                wal_ranges: Vec::new(),
                start_time: None,
                end_time: None,
                wal_included: Vec::new(),
                sound: true,
            },
            required_missing: Vec::new(),
            timelines: Vec::new(),
            gaps: Vec::new(),
            earliest: Some(t(earliest)),
            latest: Some(t(latest)),
        }
    }

    fn view(backups: Vec<BackupWindow>) -> SourceView {
        let c = ClusterWindow {
            system_id: 1,
            archive: Some("wal".into()),
            earliest: backups.iter().filter_map(|b| b.earliest).min(),
            latest: backups.iter().filter_map(|b| b.latest).max(),
            backups,
            target_timeline: 1,
            gaps: Vec::new(),
            newest_segment: None,
            timeline_problems: Vec::new(),
        };
        SourceView {
            physical: Some(PhysicalFacts { clusters: vec![c] }),
            ..SourceView::default()
        }
    }

    #[test]
    fn window_and_archive_age() {
        let week = Duration::from_secs(7 * 86400);
        let hour = Duration::from_secs(3600);
        // Two backups whose windows overlap cover 8 days up to 10 min ago.
        let v = view(vec![window(-8 * 24, -3 * 24), window(-4 * 24, 0)]);
        let now = t(0) + chrono::Duration::minutes(10);
        let f = pitr("p", &v, Some(week), Some(hour), now);
        assert_eq!(f.status, Status::Pass, "{}", f.summary);
        // A hole between the windows (a gap no newer backup bridges) fails.
        let v = view(vec![window(-8 * 24, -5 * 24), window(-4 * 24, 0)]);
        let f = pitr("p", &v, Some(week), None, now);
        assert_eq!(f.status, Status::Fail, "{}", f.summary);
        // The newest recoverable instant too old: the archive's RPO broken.
        let v = view(vec![window(-8 * 24, -2)]);
        let f = pitr("p", &v, None, Some(hour), now);
        assert_eq!(f.status, Status::Fail);
        assert!(f.summary.contains("old"), "{}", f.summary);
        // Nothing physical: fail, never pass.
        let f = pitr("p", &SourceView::default(), Some(week), None, now);
        assert_eq!(f.status, Status::Fail);
    }
}
