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

/// What a `pitr` check promises; any of them may be absent.
#[derive(Clone, Copy)]
pub(super) struct Rules {
    pub min_window: Option<Duration>,
    pub max_age: Option<Duration>,
    pub restore_within: Option<Duration>,
    pub rto: Option<Duration>,
}

pub(super) fn pitr(name: &str, view: &SourceView, rules: Rules, now: DateTime<Utc>) -> Finding {
    let window = (rules.min_window.is_some() || rules.max_age.is_some())
        .then(|| judge_window(name, view, rules.min_window, rules.max_age, now));
    let restore = rules.restore_within.map(|within| {
        super::restore::restored_where(name, view, within, rules.rto, now, |r| r.point_in_time)
    });
    match (window, restore) {
        (Some(w), None) => w,
        (None, Some(r)) => as_pitr(r),
        (Some(w), Some(r)) => {
            // One verdict, the worse of the two, with both parts' evidence.
            let r = as_pitr(r);
            let (worse, other) = if r.status > w.status { (r, w) } else { (w, r) };
            let summary = format!("{}; {}", worse.summary, other.summary);
            Finding {
                summary,
                ..worse.with("other_part", other.evidence.clone())
            }
        }
        // Refused when the config is loaded; never a pass if it got here.
        (None, None) => Finding::new(
            name,
            Check::Pitr,
            Status::Error,
            "a pitr check needs min_window, max_archive_age or restore_within",
        ),
    }
}

/// The restore promise's finding, as the pitr promise's restore part.
fn as_pitr(f: Finding) -> Finding {
    let summary = format!("point-in-time restore: {}", f.summary);
    Finding {
        check: Check::Pitr,
        summary,
        ..f
    }
}

fn judge_window(
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
    use crate::policy::RestoreSeen;

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

    fn rules(min_window: Option<Duration>, max_age: Option<Duration>) -> Rules {
        Rules {
            min_window,
            max_age,
            restore_within: None,
            rto: None,
        }
    }

    fn restored(at: DateTime<Utc>, subject: &str, point_in_time: bool, secs: f64) -> RestoreSeen {
        RestoreSeen {
            at,
            subject: subject.into(),
            status: if point_in_time {
                Status::Pass
            } else {
                Status::Warn
            },
            summary: "restored".into(),
            seconds: Some(secs),
            point_in_time,
        }
    }

    /// The restore part counts restores that replayed WAL to a target; a
    /// recovery to the consistency point only (a warn restore) never
    /// passes it, and a replay over the RTO fails it.
    #[test]
    fn restore_part_needs_a_point_in_time_restore_within_the_rto() {
        let now = t(0);
        let mut v = view(vec![window(-48, -1)]);
        v.backups = vec![crate::policy::Observed {
            subject: "src/base-1".into(),
            key: "base-1".into(),
            timestamp: t(-48),
            size: 1,
            verdict: Some(Status::Pass),
            encryption: None,
        }];
        let day = Duration::from_secs(86400);
        let hour = Duration::from_secs(3600);
        let part = Rules {
            min_window: None,
            max_age: None,
            restore_within: Some(day),
            rto: Some(hour),
        };
        v.restores = vec![restored(t(-2), "src/base-1", false, 60.0)];
        let f = pitr("p", &v, part, now);
        assert_eq!(
            (f.check, f.status),
            (Check::Pitr, Status::Fail),
            "{}",
            f.summary
        );
        v.restores.push(restored(t(-3), "src/base-1", true, 4000.0));
        let f = pitr("p", &v, part, now);
        assert_eq!(f.status, Status::Fail, "{}", f.summary);
        assert!(f.summary.contains("over the 1h RTO"), "{}", f.summary);
        v.restores.push(restored(t(-1), "src/base-1", true, 90.0));
        let f = pitr("p", &v, part, now);
        assert_eq!(f.status, Status::Pass, "{}", f.summary);
        // With a window rule as well: the worse part decides, both are told.
        let both = Rules {
            max_age: Some(Duration::from_secs(60)),
            ..part
        };
        let f = pitr("p", &v, both, now);
        assert_eq!(f.status, Status::Fail, "{}", f.summary);
        assert!(
            f.summary.contains("point-in-time restore:"),
            "{}",
            f.summary
        );
    }

    #[test]
    fn window_and_archive_age() {
        let week = Duration::from_secs(7 * 86400);
        let hour = Duration::from_secs(3600);
        // Two backups whose windows overlap cover 8 days up to 10 min ago.
        let v = view(vec![window(-8 * 24, -3 * 24), window(-4 * 24, 0)]);
        let now = t(0) + chrono::Duration::minutes(10);
        let f = pitr("p", &v, rules(Some(week), Some(hour)), now);
        assert_eq!(f.status, Status::Pass, "{}", f.summary);
        // A hole between the windows (a gap no newer backup bridges) fails.
        let v = view(vec![window(-8 * 24, -5 * 24), window(-4 * 24, 0)]);
        let f = pitr("p", &v, rules(Some(week), None), now);
        assert_eq!(f.status, Status::Fail, "{}", f.summary);
        // The newest recoverable instant too old: the archive's RPO broken.
        let v = view(vec![window(-8 * 24, -2)]);
        let f = pitr("p", &v, rules(None, Some(hour)), now);
        assert_eq!(f.status, Status::Fail);
        assert!(f.summary.contains("old"), "{}", f.summary);
        // Nothing physical: fail, never pass.
        let f = pitr("p", &SourceView::default(), rules(Some(week), None), now);
        assert_eq!(f.status, Status::Fail);
    }
}
