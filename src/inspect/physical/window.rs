//! Base backups and WAL archives paired by system identifier; from each
//! base backup, the WAL it needs to become consistent, then the archive
//! followed segment by segment along the timelines its `.history` files
//! name, up to the newest segment. What that reaches is the recoverable
//! window: per timeline, the first and last commit a `recovery_target_time`
//! can stop at, and every gap that cuts it.
//!
//! Instants are commit record timestamps (`xl_xact_commit.xact_time`, what
//! recovery compares `recovery_target_time` with). Each segment keeps its
//! first and last commit; where a segment straddles a boundary (the
//! backup's consistency point, a switchpoint) and its first or last commit
//! lies on the other side, the neighbouring commit is used, so the window
//! reported is never wider than the real one.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::BaseBackupInfo;
use super::archive::ArchiveFacts;
use super::names::{Lsn, segment_name};
use super::wal::Commit;
use crate::finding::{Check, Finding, Status};

/// The recoverable stretch of one timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalWindow {
    pub timeline: u32,
    /// Where recovery enters it (the backup's start, or the switchpoint).
    pub begin: Lsn,
    /// How far gap-free WAL on it reaches.
    pub end: Lsn,
    /// First and last commit recovery can stop at on this timeline.
    pub earliest: Option<DateTime<Utc>>,
    pub latest: Option<DateTime<Utc>>,
    pub segments: usize,
}

/// Segments missing from the archive, in a row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub timeline: u32,
    pub first_missing: String,
    pub last_missing: String,
    /// The last instant recoverable before it.
    pub after: Option<DateTime<Utc>>,
}

/// What one base backup reaches through the archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupWindow {
    pub backup: BaseBackupInfo,
    /// Segments needed for consistency found neither in the archive nor in
    /// the backup itself.
    pub required_missing: Vec<String>,
    pub timelines: Vec<WalWindow>,
    pub gaps: Vec<Gap>,
    pub earliest: Option<DateTime<Utc>>,
    pub latest: Option<DateTime<Utc>>,
}

/// One cluster (system identifier): its base backups, its archive and the
/// window they give.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterWindow {
    #[serde(serialize_with = "as_text", deserialize_with = "from_text")]
    pub system_id: u64,
    pub archive: Option<String>,
    pub backups: Vec<BackupWindow>,
    /// The timeline recovery with `recovery_target_timeline = latest` follows.
    pub target_timeline: u32,
    /// The union of the backups' windows: earliest and latest reachable
    /// instant, and whether they are joined without a gap.
    pub earliest: Option<DateTime<Utc>>,
    pub latest: Option<DateTime<Utc>>,
    /// Every gap on the path to the newest segment.
    pub gaps: Vec<Gap>,
    pub newest_segment: Option<String>,
    /// Timeline history problems (missing `.history`, a backup off the path).
    pub timeline_problems: Vec<String>,
}

impl ClusterWindow {
    /// Whether every instant from `since` to the latest is reachable from
    /// some base backup without a gap.
    pub fn covers_since(&self, since: DateTime<Utc>) -> bool {
        let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = self
            .backups
            .iter()
            .filter(|b| b.required_missing.is_empty() && b.backup.sound)
            .filter_map(|b| Some((b.earliest?, b.latest?)))
            .collect();
        spans.sort();
        let Some(latest) = spans.iter().map(|s| s.1).max() else {
            return false;
        };
        // Walk back from the latest instant through overlapping spans.
        let mut reached = latest;
        loop {
            let next = spans
                .iter()
                .filter(|s| s.1 >= reached && s.0 < reached)
                .map(|s| s.0)
                .min();
            match next {
                Some(start) if start <= since => return true,
                Some(start) => reached = start,
                None => return false,
            }
        }
    }
}

fn as_text<S: serde::Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

fn from_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// Everything physical the run learnt, for promises.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhysicalFacts {
    pub clusters: Vec<ClusterWindow>,
}

/// A stretch of a recovery path: timeline `tli` from `begin` to `end`.
#[derive(Clone, Copy, Debug)]
struct Leg {
    tli: u32,
    begin: Lsn,
    end: Option<Lsn>,
}

/// The timelines from `tli` to `target`, as `target`'s history says.
fn path(
    a: &ArchiveFacts,
    tli: u32,
    begin: Lsn,
    target: u32,
) -> Result<Vec<Leg>, super::control::Unusable> {
    if tli == target {
        return Ok(vec![Leg {
            tli,
            begin,
            end: None,
        }]);
    }
    let Some(h) = a.histories.get(&target) else {
        return Err(super::control::Unusable(format!(
            "{target:08X}.history missing: recovery cannot follow timeline {target}"
        )));
    };
    let Some(j) = h.iter().position(|b| b.parent == tli) else {
        return Err(super::control::Unusable(format!(
            "timeline {tli} is not an ancestor of timeline {target} ({target:08X}.history)"
        )));
    };
    let mut legs = Vec::new();
    let mut from = begin;
    for (k, b) in h.iter().enumerate().skip(j) {
        legs.push(Leg {
            tli: b.parent,
            begin: from,
            end: Some(b.switchpoint),
        });
        from = b.switchpoint;
        if k + 1 == h.len() {
            legs.push(Leg {
                tli: target,
                begin: from,
                end: None,
            });
        }
    }
    Ok(legs)
}

/// The timeline whose file recovery reads for `segno` (the newest one on
/// the path that has begun by then).
fn leg_for(legs: &[Leg], segno: u64, seg: u64) -> &Leg {
    legs.iter()
        .rev()
        .find(|l| l.begin.segment(seg) <= segno)
        .unwrap_or(&legs[0])
}

struct Walk {
    timelines: Vec<WalWindow>,
    gaps: Vec<Gap>,
    earliest: Option<DateTime<Utc>>,
    latest: Option<DateTime<Utc>>,
}

/// Follows `legs` from segment `start` to the newest segment of the path,
/// counting commits at or after `from` as reachable instants.
fn walk(a: &ArchiveFacts, legs: &[Leg], start: u64, from: Lsn, carried: &BTreeSet<String>) -> Walk {
    let seg = a.seg_size.max(1);
    let on_path = |tli: u32| legs.iter().any(|l| l.tli == tli);
    let newest = a
        .segments
        .iter()
        .filter(|s| {
            !s.facts.partial
                && on_path(s.facts.tli)
                && s.facts.segno >= leg_for(legs, s.facts.segno, seg).begin.segment(seg)
        })
        .map(|s| s.facts.segno)
        .max()
        .unwrap_or(start)
        .max(start);
    let mut windows: BTreeMap<u32, WalWindow> = BTreeMap::new();
    let mut gaps: Vec<Gap> = Vec::new();
    let mut commits: Vec<(u32, Commit)> = Vec::new();
    let mut cut = false;
    let mut last_reached: Option<DateTime<Utc>> = None;
    for segno in start..=newest {
        let leg = leg_for(legs, segno, seg);
        let name = segment_name(leg.tli, segno, seg);
        let file = a.segment(leg.tli, segno);
        if file.is_none() && !carried.contains(&name) {
            match gaps.last_mut() {
                Some(g)
                    if !g.last_missing.is_empty()
                        && next_name(&g.last_missing, seg) == Some(name.clone()) =>
                {
                    g.last_missing = name
                }
                _ => gaps.push(Gap {
                    timeline: leg.tli,
                    first_missing: name.clone(),
                    last_missing: name,
                    after: last_reached,
                }),
            }
            cut = true;
            continue;
        }
        if cut {
            continue;
        }
        let w = windows.entry(leg.tli).or_insert(WalWindow {
            timeline: leg.tli,
            begin: leg.begin.max(from),
            end: leg.begin,
            earliest: None,
            latest: None,
            segments: 0,
        });
        w.segments += 1;
        w.end = match file {
            Some(f) => f.facts.end.max(w.end),
            None => Lsn((segno + 1) * seg),
        };
        if let Some(f) = file {
            for c in [f.facts.first_commit, f.facts.last_commit]
                .into_iter()
                .flatten()
            {
                // The commit's own timeline: the leg whose span holds it.
                if let Some(l) = legs
                    .iter()
                    .find(|l| c.lsn >= l.begin && l.end.is_none_or(|e| c.lsn < e))
                    && c.lsn >= from
                {
                    commits.push((l.tli, c));
                    last_reached = Some(last_reached.map_or(c.at, |t: DateTime<Utc>| t.max(c.at)));
                }
            }
        }
    }
    for (tli, c) in &commits {
        if let Some(w) = windows.get_mut(tli) {
            w.earliest = Some(w.earliest.map_or(c.at, |t| t.min(c.at)));
            w.latest = Some(w.latest.map_or(c.at, |t| t.max(c.at)));
        }
    }
    let timelines: Vec<WalWindow> = windows.into_values().collect();
    Walk {
        earliest: timelines.iter().filter_map(|w| w.earliest).min(),
        latest: timelines.iter().filter_map(|w| w.latest).max(),
        timelines,
        gaps,
    }
}

fn next_name(name: &str, seg: u64) -> Option<String> {
    match super::names::WalName::parse(name)? {
        super::names::WalName::Segment {
            tli, log, seg: s, ..
        } => Some(segment_name(tli, super::names::segno(log, s, seg) + 1, seg)),
        _ => None,
    }
}

/// One base backup as the pairing sees it: its subject and facts.
pub type Base<'a> = (&'a str, &'a BaseBackupInfo);
/// One archive: its subject and facts.
pub type Archive<'a> = (&'a str, &'a ArchiveFacts);

fn fmt_t(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

/// Pairs base backups with archives and judges continuity: findings (one
/// per base backup, one per archive) and the facts for promises.
pub fn pair(bases: &[Base<'_>], archives: &[Archive<'_>]) -> (Vec<Finding>, PhysicalFacts) {
    let mut findings = Vec::new();
    let mut facts = PhysicalFacts::default();
    let mut paired: BTreeSet<usize> = BTreeSet::new();
    for (asubj, a) in archives {
        let Some(sysid) = a.system_id else { continue };
        let seg = a.seg_size.max(1);
        let mine: Vec<(usize, &Base<'_>)> = bases
            .iter()
            .enumerate()
            .filter(|(_, (_, b))| b.system_id == Some(sysid))
            .collect();
        paired.extend(mine.iter().map(|(i, _)| *i));
        let mut timeline_problems = Vec::new();
        let seen: BTreeSet<u32> = a.segments.iter().map(|s| s.facts.tli).collect();
        for t in &seen {
            if *t > 1 && !a.histories.contains_key(t) {
                timeline_problems.push(format!(
                    "timeline {t} has segments but {t:08X}.history is missing: recovery cannot follow it"
                ));
            }
        }
        let target = seen
            .iter()
            .chain(a.histories.keys())
            .copied()
            .max()
            .unwrap_or(1);
        let mut cluster = ClusterWindow {
            system_id: sysid,
            archive: Some(asubj.to_string()),
            backups: Vec::new(),
            target_timeline: target,
            earliest: None,
            latest: None,
            gaps: Vec::new(),
            newest_segment: a
                .segments
                .iter()
                .filter(|s| !s.facts.partial)
                .max_by_key(|s| (s.facts.segno, s.facts.tli))
                .map(|s| s.name.clone()),
            timeline_problems: Vec::new(),
        };
        for (_, (bsubj, b)) in &mine {
            let mut info = (*b).clone();
            // The server's own record of the backup: its stop time.
            if let Some(l) = a
                .backups
                .iter()
                .find(|l| l.start_lsn == info.start_lsn && l.start_lsn.is_some())
            {
                info.end_time = info.end_time.or(l.stop_time);
                info.stop_lsn = info.stop_lsn.or(l.stop_lsn);
            }
            let carried: BTreeSet<String> = info.wal_included.iter().cloned().collect();
            let start = info.start_lsn.unwrap_or_default();
            let stop = info.stop_lsn.unwrap_or(start);
            let legs = match path(a, info.timeline, start, target) {
                Ok(l) => l,
                Err(e) => {
                    let e = e.to_string();
                    if !timeline_problems.contains(&e) {
                        timeline_problems.push(e);
                    }
                    vec![Leg {
                        tli: info.timeline,
                        begin: start,
                        end: None,
                    }]
                }
            };
            let mut required_missing = Vec::new();
            let ranges: Vec<(u32, Lsn, Lsn)> = if info.wal_ranges.is_empty() {
                vec![(info.timeline, start, stop)]
            } else {
                info.wal_ranges
                    .iter()
                    .map(|r| (r.timeline, r.start, r.end))
                    .collect()
            };
            for (tli, s, e) in ranges {
                for segno in s.segment(seg)..=e.segment(seg) {
                    let name = segment_name(tli, segno, seg);
                    let newer = legs
                        .iter()
                        .any(|l| l.tli > tli && a.segment(l.tli, segno).is_some());
                    if a.segment(tli, segno).is_none() && !carried.contains(&name) && !newer {
                        required_missing.push(name);
                    }
                }
            }
            let w = walk(a, &legs, start.segment(seg), stop, &carried);
            let bw = BackupWindow {
                backup: info,
                required_missing: required_missing.clone(),
                timelines: w.timelines,
                gaps: w.gaps.clone(),
                earliest: w.earliest,
                latest: w.latest,
            };
            findings.push(backup_finding(bsubj, asubj, &bw));
            for g in w.gaps {
                if !cluster.gaps.contains(&g) {
                    cluster.gaps.push(g);
                }
            }
            cluster.backups.push(bw);
        }
        if mine.is_empty() {
            // No base backup: the archive's own continuity from its oldest segment.
            let root = a
                .histories
                .get(&target)
                .and_then(|h| h.first())
                .map(|b| b.parent)
                .unwrap_or(target);
            let oldest = a
                .segments
                .iter()
                .filter(|s| s.facts.tli == root)
                .map(|s| s.facts.segno)
                .min();
            if let Some(oldest) = oldest {
                let begin = Lsn(oldest * seg);
                let legs = path(a, root, begin, target).unwrap_or_else(|e| {
                    let e = e.to_string();
                    if !timeline_problems.contains(&e) {
                        timeline_problems.push(e);
                    }
                    vec![Leg {
                        tli: root,
                        begin,
                        end: None,
                    }]
                });
                cluster.gaps = walk(a, &legs, oldest, begin, &BTreeSet::new()).gaps;
            }
        }
        cluster.timeline_problems = timeline_problems;
        let usable = cluster
            .backups
            .iter()
            .filter(|b| b.required_missing.is_empty() && b.backup.sound);
        cluster.earliest = usable.clone().filter_map(|b| b.earliest).min();
        cluster.latest = usable.filter_map(|b| b.latest).max();
        findings.push(archive_finding(asubj, &cluster));
        facts.clusters.push(cluster);
    }
    for (i, (bsubj, b)) in bases.iter().enumerate() {
        if paired.contains(&i) {
            continue;
        }
        findings.push(unpaired_finding(bsubj, b, archives));
        facts.clusters.push(ClusterWindow {
            system_id: b.system_id.unwrap_or_default(),
            archive: None,
            backups: Vec::new(),
            target_timeline: b.timeline,
            earliest: None,
            latest: None,
            gaps: Vec::new(),
            newest_segment: None,
            timeline_problems: Vec::new(),
        });
    }
    (findings, facts)
}

fn backup_finding(subject: &str, archive: &str, w: &BackupWindow) -> Finding {
    let ev = serde_json::to_value(w)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    if !w.required_missing.is_empty() {
        return Finding::new(
            subject,
            Check::Continuity,
            Status::Fail,
            format!(
                "WAL needed to make the base backup consistent is missing from {archive}: {}",
                w.required_missing.join(", ")
            ),
        )
        .with_evidence(ev)
        .with("archive", archive)
        .remedy("Without these segments the backup cannot be restored at all: find them (archive_command failures, an over-eager cleanup), or take a fresh base backup now.");
    }
    let base = |status, summary: String| {
        Finding::new(subject, Check::Continuity, status, summary)
            .with_evidence(ev.clone())
            .with("archive", archive)
    };
    match w.gaps.first() {
        Some(g) => base(
            Status::Fail,
            format!(
                "recoverable from {} only to {}: {} missing from {archive}{}",
                fmt_t(w.earliest),
                fmt_t(w.latest),
                if g.first_missing == g.last_missing { g.first_missing.clone() } else { format!("{}..{}", g.first_missing, g.last_missing) },
                if w.gaps.len() > 1 { format!(" (and {} more gap(s))", w.gaps.len() - 1) } else { String::new() }
            ),
        )
        .remedy("WAL after the gap cannot be replayed from this backup: restore the missing segments from a copy, and take a fresh base backup so a new window starts after the gap."),
        None => base(
            Status::Pass,
            format!(
                "consistent with the archive's WAL; recoverable from {} to {} without a gap (timeline(s) {})",
                fmt_t(w.earliest),
                fmt_t(w.latest),
                w.timelines.iter().map(|t| t.timeline.to_string()).collect::<Vec<_>>().join(" → ")
            ),
        ),
    }
}

fn archive_finding(subject: &str, c: &ClusterWindow) -> Finding {
    let ev = serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    let mut problems: Vec<String> = c.timeline_problems.clone();
    for g in &c.gaps {
        problems.push(if g.first_missing == g.last_missing {
            format!("{} missing", g.first_missing)
        } else {
            format!("{}..{} missing", g.first_missing, g.last_missing)
        });
    }
    if !problems.is_empty() {
        return Finding::new(subject, Check::Continuity, Status::Fail, format!("WAL archive: {}", problems.join("; ")))
            .with("problems", problems)
            .with_evidence(ev)
            .remedy("Recovery stops at the first gap or unfollowable timeline: restore the missing files from a copy, fix archive_command, and take a fresh base backup.");
    }
    if c.backups.is_empty() {
        return Finding::new(
            subject,
            Check::Continuity,
            Status::Warn,
            format!("WAL archive of system identifier {} is gap-free, but no base backup of that cluster was found: nothing to recover from", c.system_id),
        )
        .with_evidence(ev)
        .remedy("Point backproof at the base backups too (same directory tree, or `--wal-archive` from the backups' side).");
    }
    Finding::new(
        subject,
        Check::Continuity,
        Status::Pass,
        format!(
            "recoverable window {} to {}, gap-free up to {}",
            fmt_t(c.earliest),
            fmt_t(c.latest),
            c.newest_segment.as_deref().unwrap_or("-")
        ),
    )
    .with(
        "window",
        json!({"earliest": c.earliest, "latest": c.latest}),
    )
    .with_evidence(ev)
}

fn unpaired_finding(subject: &str, b: &BaseBackupInfo, archives: &[Archive<'_>]) -> Finding {
    let others: Vec<String> = archives
        .iter()
        .filter_map(|(s, a)| Some(format!("{s} (system identifier {})", a.system_id?)))
        .collect();
    let ev = serde_json::to_value(b)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    let needed: Vec<String> = match (b.start_lsn, b.stop_lsn) {
        (Some(s), Some(e)) => (s.segment(16 << 20)..=e.segment(16 << 20))
            .map(|n| segment_name(b.timeline, n, 16 << 20))
            .collect(),
        _ => Vec::new(),
    };
    let carried = !needed.is_empty() && needed.iter().all(|n| b.wal_included.contains(n));
    let id = b
        .system_id
        .map(|i| i.to_string())
        .unwrap_or_else(|| "unknown".into());
    if carried {
        return Finding::new(
            subject,
            Check::Continuity,
            Status::Pass,
            "carries the WAL it needs to become consistent; no WAL archive of its cluster found, so no point-in-time window",
        )
        .with_evidence(ev);
    }
    let summary = if others.is_empty() {
        format!(
            "the WAL needed to make it consistent is not in the backup, and no WAL archive of system identifier {id} was found (use --wal-archive)"
        )
    } else {
        format!(
            "no WAL archive of system identifier {id}: the archive(s) found belong to other clusters: {}",
            others.join(", ")
        )
    };
    Finding::new(subject, Check::Continuity, Status::Fail, summary)
        .with_evidence(ev)
        .remedy("A base backup without its WAL cannot be restored: point backproof at the archive (--wal-archive, or wal_archive in the source), or take backups with -X stream.")
}
