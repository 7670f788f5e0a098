//! DR promises as checks: written in TOML (in the config or in policy packs
//! under checks/), evaluated on what the run found: the backups of each
//! source, their timestamps and sizes, and their verification results.
//!
//! ```toml
//! [[checks]]
//! type = "freshness"          # data loss at most 24 h (RPO)
//! source = "postgres"
//! pattern = "appdb-*.dump"    # optional: one series within the source
//! warn_after = "25h"
//! fail_after = "26h"
//! ```
//!
//! Without a `pattern`, the series promises (freshness, retention,
//! size_anomaly, verified) hold for each series of the source: backups
//! whose names differ only in their timestamp ("appdb-*.dump"). One finding
//! per promise reports the worst series and lists every series' verdict in
//! its evidence: the promise stays one stable row in reports, history and
//! pass rates, and its summary names the series that breaks it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::catalog::TimestampPattern;
use crate::finding::{Check, Finding, Status};

pub mod changes;
pub mod cloud;
mod pitr;
mod restore;
mod series;
mod stores;

/// One promise. Thresholds are durations ("26h", "3d") or plain numbers.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CheckDef {
    /// The newest backup is younger than the RPO.
    Freshness {
        name: Option<String>,
        source: String,
        pattern: Option<String>,
        #[serde(default, with = "humantime_serde")]
        warn_after: Option<Duration>,
        #[serde(with = "humantime_serde")]
        fail_after: Duration,
    },
    /// Enough history is kept, without holes, and (optionally) nothing is
    /// kept longer than allowed.
    Retention {
        name: Option<String>,
        source: String,
        pattern: Option<String>,
        /// The oldest backup is at least this old ("retention 3 days").
        #[serde(default, with = "humantime_serde")]
        min_age: Option<Duration>,
        #[serde(default)]
        min_count: Option<usize>,
        /// Longest allowed gap between consecutive backups.
        #[serde(default, with = "humantime_serde")]
        max_gap: Option<Duration>,
        /// Nothing older than this may exist (deletion rules).
        #[serde(default, with = "humantime_serde")]
        max_age: Option<Duration>,
        /// rds:// sources: the provider keeps automated backups at least
        /// this long (`BackupRetentionPeriod`, in whole days).
        #[serde(default, with = "humantime_serde")]
        min_retention_period: Option<Duration>,
    },
    /// The newest backup is not far smaller or larger than the median of its
    /// recent predecessors: a 1 KB nightly dump is the classic silent failure.
    SizeAnomaly {
        name: Option<String>,
        source: String,
        pattern: Option<String>,
        #[serde(default = "default_window")]
        window: usize,
        #[serde(default = "default_fail_below")]
        fail_below: f64,
        #[serde(default = "default_warn_below")]
        warn_below: f64,
        #[serde(default = "default_fail_above")]
        fail_above: f64,
        #[serde(default)]
        min_bytes: u64,
    },
    /// Backups in scope passed integrity and structure checks this run.
    Verified {
        name: Option<String>,
        source: String,
        pattern: Option<String>,
        #[serde(default)]
        scope: Scope,
    },
    /// The source's bucket keeps old versions: versioning enabled,
    /// noncurrent versions kept at least `keep_noncurrent`, Object Lock on
    /// when `object_lock` is required.
    Versioning {
        name: Option<String>,
        source: String,
        #[serde(default, with = "humantime_serde")]
        keep_noncurrent: Option<Duration>,
        #[serde(default)]
        object_lock: bool,
    },
    /// The source's secondary copy (its `copy` setting) is complete and
    /// identical, and no object reached it later than `max_lag`.
    Copy {
        name: Option<String>,
        source: String,
        #[serde(default, with = "humantime_serde")]
        max_lag: Option<Duration>,
    },
    /// The named sources live apart: in different buckets or filesystems,
    /// and, when asked, in different regions or accounts.
    Separation {
        name: Option<String>,
        sources: Vec<String>,
        #[serde(default = "default_apart")]
        by: Vec<Apart>,
    },
    /// Backups are encrypted at rest by the store (SSE-S3 or SSE-KMS), and
    /// the bucket encrypts new objects by default when required.
    Encryption {
        name: Option<String>,
        source: String,
        #[serde(default)]
        scope: Scope,
        #[serde(default)]
        require_kms: bool,
        #[serde(default)]
        bucket_default: bool,
    },
    /// A backup of the source was restored within the last `within`
    /// (this run or an earlier one), passed its checks, and took no longer
    /// than `rto` (load plus sanity checks).
    Restore {
        name: Option<String>,
        source: String,
        #[serde(with = "humantime_serde")]
        within: Duration,
        #[serde(default, with = "humantime_serde")]
        rto: Option<Duration>,
    },
    /// Every change in a change log (a deploy log, a Consul or Vault audit
    /// log) has a snapshot of the source that passed verification, taken at
    /// most `within` before it and not after it.
    SnapshotBeforeChange {
        name: Option<String>,
        source: String,
        /// Only these backups are the snapshots (a glob on key or name).
        pattern: Option<String>,
        /// The change log, relative to the file that names it; without it,
        /// the source's own `changes`.
        #[serde(default)]
        changes: Option<PathBuf>,
        #[serde(with = "humantime_serde")]
        within: Duration,
        /// Only changes in this last period are judged.
        #[serde(default, with = "humantime_serde")]
        since: Option<Duration>,
    },
    /// Point-in-time recovery: the recoverable window (the source's base
    /// backups and their WAL archive) covers at least the last
    /// `min_window` without a gap, and the newest recoverable instant is at
    /// most `max_archive_age` old (the archive's RPO); a point-in-time
    /// test restore passed recently enough and within the RTO.
    Pitr {
        name: Option<String>,
        source: String,
        #[serde(default, with = "humantime_serde")]
        min_window: Option<Duration>,
        #[serde(default, with = "humantime_serde")]
        max_archive_age: Option<Duration>,
        /// A point-in-time restore (one that replayed the archive to its
        /// target) of the newest base backup passed within this period ...
        #[serde(default, with = "humantime_serde")]
        restore_within: Option<Duration>,
        /// ... and took at most this long.
        #[serde(default, with = "humantime_serde")]
        rto: Option<Duration>,
    },
    /// ebs:// and rds:// sources: each snapshot in scope (the newest of
    /// each volume or database, or all) has a completed copy in `region`,
    /// made at most `max_lag` after it.
    RegionCopy {
        name: Option<String>,
        source: String,
        region: String,
        #[serde(default)]
        scope: Scope,
        #[serde(default, with = "humantime_serde")]
        max_lag: Option<Duration>,
    },
    /// rds:// sources: every database runs in several availability zones.
    Redundancy {
        name: Option<String>,
        source: String,
        #[serde(default)]
        multi_az: bool,
    },
    /// rds:// sources: each database can be restored to a point in time at
    /// most `fail_after` ago (`LatestRestorableTime`): the RPO of
    /// point-in-time recovery, beside the snapshots' freshness.
    PointInTime {
        name: Option<String>,
        source: String,
        #[serde(default, with = "humantime_serde")]
        warn_after: Option<Duration>,
        #[serde(with = "humantime_serde")]
        fail_after: Duration,
    },
    /// Every name in the inventory has a recent backup in some source.
    Coverage {
        name: Option<String>,
        inventory: Vec<String>,
        #[serde(with = "humantime_serde")]
        max_age: Duration,
    },
}

fn default_window() -> usize {
    7
}
fn default_fail_below() -> f64 {
    0.5
}
fn default_warn_below() -> f64 {
    0.8
}
fn default_fail_above() -> f64 {
    3.0
}

/// What must differ between separated sources.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Apart {
    /// The storage itself: the bucket (and endpoint) or the filesystem.
    Storage,
    Region,
    Account,
}

impl Apart {
    fn as_str(self) -> &'static str {
        match self {
            Apart::Storage => "storage",
            Apart::Region => "region",
            Apart::Account => "account",
        }
    }
}

fn default_apart() -> Vec<Apart> {
    vec![Apart::Storage]
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    #[default]
    Newest,
    All,
}

/// A policy pack file: only `[[checks]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pack {
    #[serde(default)]
    checks: Vec<CheckDef>,
}

/// Loads a pack file; errors name the file, line and key.
/// The pack's checks, and its text (which the run's record hashes).
pub fn load_pack(path: &Path) -> Result<(Vec<CheckDef>, String), PackError> {
    let text = std::fs::read_to_string(path).map_err(|source| PackError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let pack: Pack = toml::from_str(&text).map_err(|e| PackError::Syntax {
        path: path.to_path_buf(),
        at: Box::new(crate::tomlerr::Located::new(&text, &e)),
        source: Box::new(e),
    })?;
    Ok((pack.checks, text))
}

/// A policy pack that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("{}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {at}", path.display())]
    Syntax {
        path: std::path::PathBuf,
        at: Box<crate::tomlerr::Located>,
        #[source]
        source: Box<toml::de::Error>,
    },
}

/// A promise whose values cannot be judged.
#[derive(Debug, thiserror::Error)]
pub enum InvalidCheck {
    #[error("pattern {pattern:?}: {source}")]
    Pattern {
        pattern: String,
        #[source]
        source: glob::PatternError,
    },
    #[error("warn_after must not exceed fail_after")]
    WarnAfterFail,
    #[error("window must be at least 1")]
    EmptyWindow,
    #[error("need 0 <= fail_below <= warn_below and fail_above >= 1")]
    Bounds,
    #[error("a retention check needs min_age, min_count, max_gap, max_age or min_retention_period")]
    NoRetentionRule,
    #[error("inventory is empty")]
    EmptyInventory,
    #[error("a separation check names at least two sources")]
    OneSource,
    #[error("by must name storage, region or account")]
    NoSeparation,
    #[error("within must be longer than 0")]
    EmptyWithin,
    #[error("a pitr check needs min_window, max_archive_age or restore_within")]
    NoPitrRule,
    #[error("a pitr check's rto needs restore_within (how recent the timed restore must be)")]
    PitrRtoAlone,
}

impl CheckDef {
    pub fn sources(&self) -> Vec<&str> {
        match self {
            CheckDef::Freshness { source, .. }
            | CheckDef::Retention { source, .. }
            | CheckDef::SizeAnomaly { source, .. }
            | CheckDef::Verified { source, .. }
            | CheckDef::Versioning { source, .. }
            | CheckDef::Copy { source, .. }
            | CheckDef::Encryption { source, .. }
            | CheckDef::Restore { source, .. }
            | CheckDef::Pitr { source, .. }
            | CheckDef::RegionCopy { source, .. }
            | CheckDef::Redundancy { source, .. }
            | CheckDef::PointInTime { source, .. }
            | CheckDef::SnapshotBeforeChange { source, .. } => vec![source.as_str()],
            CheckDef::Separation { sources, .. } => sources.iter().map(String::as_str).collect(),
            CheckDef::Coverage { .. } => vec![],
        }
    }

    /// Checks the values serde cannot: patterns, ranges.
    pub fn validate(&self) -> Result<(), InvalidCheck> {
        let pattern = match self {
            CheckDef::Freshness { pattern, .. }
            | CheckDef::Retention { pattern, .. }
            | CheckDef::SizeAnomaly { pattern, .. }
            | CheckDef::Verified { pattern, .. }
            | CheckDef::SnapshotBeforeChange { pattern, .. } => pattern.as_deref(),
            _ => None,
        };
        if let Some(p) = pattern {
            glob::Pattern::new(p).map_err(|source| InvalidCheck::Pattern {
                pattern: p.to_string(),
                source,
            })?;
        }
        match self {
            CheckDef::Freshness {
                warn_after: Some(w),
                fail_after,
                ..
            }
            | CheckDef::PointInTime {
                warn_after: Some(w),
                fail_after,
                ..
            } if w > fail_after => Err(InvalidCheck::WarnAfterFail),
            CheckDef::SnapshotBeforeChange { within, .. } if within.is_zero() => {
                Err(InvalidCheck::EmptyWithin)
            }
            CheckDef::SizeAnomaly {
                window,
                fail_below,
                warn_below,
                fail_above,
                ..
            } => {
                if *window == 0 {
                    Err(InvalidCheck::EmptyWindow)
                } else if !(0.0..=1.0).contains(fail_below)
                    || fail_below > warn_below
                    || *fail_above < 1.0
                {
                    Err(InvalidCheck::Bounds)
                } else {
                    Ok(())
                }
            }
            CheckDef::Retention {
                min_age: None,
                min_count: None,
                max_gap: None,
                max_age: None,
                min_retention_period: None,
                ..
            } => Err(InvalidCheck::NoRetentionRule),
            CheckDef::Pitr {
                min_window: None,
                max_archive_age: None,
                restore_within: None,
                ..
            } => Err(InvalidCheck::NoPitrRule),
            CheckDef::Pitr {
                restore_within: None,
                rto: Some(_),
                ..
            } => Err(InvalidCheck::PitrRtoAlone),
            CheckDef::Coverage { inventory, .. } if inventory.is_empty() => {
                Err(InvalidCheck::EmptyInventory)
            }
            CheckDef::Separation { sources, by, .. } => {
                if sources.len() < 2 {
                    Err(InvalidCheck::OneSource)
                } else if by.is_empty() {
                    Err(InvalidCheck::NoSeparation)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// The check's name in reports: its `name`, or `type:source`.
    pub fn name(&self) -> String {
        let (name, kind, source) = match self {
            CheckDef::Freshness { name, source, .. } => (name, "freshness", source.as_str()),
            CheckDef::Retention { name, source, .. } => (name, "retention", source.as_str()),
            CheckDef::SizeAnomaly { name, source, .. } => (name, "size_anomaly", source.as_str()),
            CheckDef::Verified { name, source, .. } => (name, "verified", source.as_str()),
            CheckDef::Versioning { name, source, .. } => (name, "versioning", source.as_str()),
            CheckDef::Copy { name, source, .. } => (name, "copy", source.as_str()),
            CheckDef::Encryption { name, source, .. } => (name, "encryption", source.as_str()),
            CheckDef::Restore { name, source, .. } => (name, "restore", source.as_str()),
            CheckDef::Pitr { name, source, .. } => (name, "pitr", source.as_str()),
            CheckDef::RegionCopy { name, source, .. } => (name, "region_copy", source.as_str()),
            CheckDef::Redundancy { name, source, .. } => (name, "redundancy", source.as_str()),
            CheckDef::PointInTime { name, source, .. } => (name, "point_in_time", source.as_str()),
            CheckDef::SnapshotBeforeChange { name, source, .. } => {
                (name, "snapshot_before_change", source.as_str())
            }
            CheckDef::Separation { name, sources, .. } => {
                return name
                    .clone()
                    .unwrap_or_else(|| format!("separation:{}", sources.join("+")));
            }
            CheckDef::Coverage { name, .. } => (name, "coverage", "inventory"),
        };
        name.clone().unwrap_or_else(|| format!("{kind}:{source}"))
    }
}

impl CheckDef {
    /// A relative change log means relative to `base`, the directory of the
    /// file that names it (the config or a pack).
    pub fn resolve_paths(&mut self, base: &Path) {
        if let CheckDef::SnapshotBeforeChange {
            changes: Some(p), ..
        } = self
            && p.is_relative()
        {
            *p = base.join(&*p);
        }
    }

    /// A snapshot_before_change check that names no change log takes the
    /// source's; `false` when neither names one.
    pub fn default_changes(&mut self, source_changes: Option<&Path>) -> bool {
        match self {
            CheckDef::SnapshotBeforeChange { changes, .. } => {
                if changes.is_none() {
                    *changes = source_changes.map(Path::to_path_buf);
                }
                changes.is_some()
            }
            _ => true,
        }
    }
}

/// What policies see of one backup.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Observed {
    pub subject: String,
    /// Key within its source, for patterns.
    pub key: String,
    pub timestamp: DateTime<Utc>,
    pub size: u64,
    /// Worst integrity/structure status this run; `None` if not verified.
    pub verdict: Option<Status>,
    /// Server-side encryption the store reported when the bytes were read
    /// tonight; `None` if not read or the store has no such notion.
    pub encryption: Option<String>,
}

/// What policies see of one configured source.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SourceView {
    pub location: String,
    /// The storage holding it, for separation: "s3://bucket at ENDPOINT" or
    /// "filesystem DEV"; `None` when it could not be told.
    pub storage: Option<String>,
    pub region: Option<String>,
    pub account: Option<String>,
    pub is_s3: bool,
    pub backups: Vec<Observed>,
    /// The bucket's settings, where the source is one and the run could
    /// ask (a whole-source audit).
    pub bucket: Option<crate::source::BucketFacts>,
    /// How the copy compared, where one is configured: `Err` when either
    /// side could not be listed.
    pub parity: Option<Result<crate::compare::ParityFacts, crate::source::SourceError>>,
    /// The copy the config names, if any.
    pub copy: Option<String>,
    /// Test restores of this source, this run's and earlier ones.
    pub restores: Vec<RestoreSeen>,
    /// How the source's names carry their time: what tells its series apart.
    /// From the config, never from a stored part.
    #[serde(skip)]
    pub timestamp_pattern: TimestampPattern,
    /// Base backups paired with WAL archives, where the source was audited.
    pub physical: Option<crate::inspect::physical::PhysicalFacts>,
    /// ebs:// and rds:// sources: the volumes or databases and their
    /// snapshot series, as the provider listed them.
    pub cloud: Option<Result<crate::source::CloudFacts, crate::source::facts::Unread>>,
    /// The snapshots listed in each region a region_copy promise names.
    pub copies: BTreeMap<
        String,
        Result<Vec<crate::source::facts::CloudSnapshot>, crate::source::SourceError>,
    >,
}

/// One test restore of a source's backup.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RestoreSeen {
    pub at: DateTime<Utc>,
    pub subject: String,
    pub status: Status,
    pub summary: String,
    /// Load plus sanity checks, in seconds.
    pub seconds: Option<f64>,
    /// A base backup recovered by replaying its WAL archive to the target
    /// (not to its consistency point only).
    pub point_in_time: bool,
}

impl RestoreSeen {
    /// A restore as the promises see it, from its finding and typed facts.
    pub fn of(
        at: DateTime<Utc>,
        subject: &str,
        status: Status,
        summary: &str,
        facts: &crate::restore::RestoreFacts,
    ) -> RestoreSeen {
        RestoreSeen {
            at,
            subject: subject.to_string(),
            status,
            summary: summary.to_string(),
            seconds: facts.total_seconds(),
            point_in_time: facts
                .pitr
                .as_ref()
                .is_some_and(|p| !p.consistency_only && p.reached == Some(true)),
        }
    }
}

pub(super) fn human(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0) as u64;
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

fn select<'a>(backups: &'a [Observed], pattern: &Option<String>) -> Vec<&'a Observed> {
    let pat = pattern.as_deref().and_then(|p| glob::Pattern::new(p).ok());
    let mut v: Vec<&Observed> = backups
        .iter()
        .filter(|b| {
            pat.as_ref().is_none_or(|p| {
                p.matches(&b.key) || p.matches(b.key.rsplit('/').next().unwrap_or(&b.key))
            })
        })
        .collect();
    v.sort_by_key(|b| b.timestamp);
    v
}

/// A series promise judged on `pattern`'s backups, or, without one, on
/// each series of the source, reported as its worst series.
fn per_series(
    view: &SourceView,
    pattern: &Option<String>,
    judge: impl Fn(Vec<&Observed>) -> Finding,
) -> Finding {
    if pattern.is_some() {
        return judge(select(&view.backups, pattern));
    }
    let mut groups: BTreeMap<String, Vec<&Observed>> = BTreeMap::new();
    for b in select(&view.backups, &None) {
        groups
            .entry(view.timestamp_pattern.series(&b.key))
            .or_default()
            .push(b);
    }
    if groups.len() <= 1 {
        return judge(groups.into_values().next().unwrap_or_default());
    }
    let mut judged: Vec<(String, Finding)> =
        groups.into_iter().map(|(s, b)| (s, judge(b))).collect();
    let all: Vec<_> = judged
        .iter()
        .map(|(s, f)| json!({"series": s, "status": f.status, "summary": f.summary}))
        .collect();
    let failing = judged
        .iter()
        .filter(|(_, f)| f.status != Status::Pass)
        .count();
    // The first of the worst, in series order: stable from run to run.
    let worst = judged
        .iter()
        .enumerate()
        .max_by(|(i, a), (j, b)| a.1.status.cmp(&b.1.status).then(j.cmp(i)))
        .map(|(i, _)| i)
        .unwrap_or(0);
    let (series, mut f) = judged.swap_remove(worst);
    f.summary = format!(
        "series {series}: {} ({} series, {failing} not passing)",
        f.summary,
        all.len()
    );
    f.with("series", all)
}

/// Evaluates every check at `now` against the backups observed per source.
pub fn evaluate(
    checks: &[CheckDef],
    by_source: &BTreeMap<String, SourceView>,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    checks
        .iter()
        .map(|c| evaluate_one(c, by_source, now))
        .collect()
}

/// One promise judged: what [`evaluate`] does for each.
pub fn evaluate_one(
    def: &CheckDef,
    by_source: &BTreeMap<String, SourceView>,
    now: DateTime<Utc>,
) -> Finding {
    let name = def.name();
    let unknown = |source: &str, check: Check| {
        Finding::new(
            &name,
            check,
            Status::Error,
            format!("no source named {source:?} in the config"),
        )
        .remedy("Name a [[sources]] entry of the config, or fix the policy.")
    };
    match def {
        CheckDef::Freshness {
            source,
            pattern,
            warn_after,
            fail_after,
            ..
        } => match by_source.get(source) {
            None => unknown(source, Check::Freshness),
            Some(view) => per_series(view, pattern, |b| {
                series::freshness(&name, source, b, warn_after, fail_after, now)
            }),
        },
        CheckDef::Retention {
            source,
            pattern,
            min_age,
            min_count,
            max_gap,
            max_age,
            min_retention_period,
            ..
        } => match by_source.get(source) {
            None => unknown(source, Check::Retention),
            Some(view) => {
                let observed =
                    [min_age, max_gap, max_age].iter().any(|d| d.is_some()) || min_count.is_some();
                let series = observed.then(|| {
                    per_series(view, pattern, |b| {
                        series::retention(
                            &name, source, b, min_age, min_count, max_gap, max_age, now,
                        )
                    })
                });
                let period = min_retention_period.map(|p| cloud::retention_period(&name, view, p));
                match (series, period) {
                    (Some(a), Some(b)) => cloud::merge(a, b),
                    (Some(a), None) | (None, Some(a)) => a,
                    (None, None) => unreachable!("validate() demands one rule"),
                }
            }
        },
        CheckDef::SizeAnomaly {
            source,
            pattern,
            window,
            fail_below,
            warn_below,
            fail_above,
            min_bytes,
            ..
        } => match by_source.get(source) {
            None => unknown(source, Check::SizeAnomaly),
            Some(view) => per_series(view, pattern, |b| {
                series::size_anomaly(
                    &name, source, b, window, fail_below, warn_below, fail_above, min_bytes,
                )
            }),
        },
        CheckDef::Verified {
            source,
            pattern,
            scope,
            ..
        } => match by_source.get(source) {
            None => unknown(source, Check::Verified),
            Some(view) => per_series(view, pattern, |b| series::verified(&name, source, b, scope)),
        },
        CheckDef::Coverage {
            inventory, max_age, ..
        } => series::coverage(&name, inventory, max_age, by_source, now),
        CheckDef::Versioning {
            source,
            keep_noncurrent,
            object_lock,
            ..
        } => match by_source.get(source) {
            None => unknown(source, Check::Versioning),
            Some(view) => stores::versioning(&name, view, *keep_noncurrent, *object_lock),
        },
        CheckDef::Copy {
            source, max_lag, ..
        } => match by_source.get(source) {
            None => unknown(source, Check::Parity),
            Some(view) => stores::copy(&name, view, *max_lag),
        },
        CheckDef::Encryption {
            source,
            scope,
            require_kms,
            bucket_default,
            ..
        } => match by_source.get(source) {
            None => unknown(source, Check::Encryption),
            // Snapshots: the provider's flags; EBS and RDS encrypt with KMS.
            Some(view) if view.cloud.is_some() => {
                cloud::encryption(&name, view, *scope, *bucket_default)
            }
            Some(view) => stores::encryption(&name, view, *scope, *require_kms, *bucket_default),
        },
        CheckDef::RegionCopy {
            source,
            region,
            scope,
            max_lag,
            ..
        } => match by_source.get(source) {
            None => unknown(source, Check::Parity),
            Some(view) => cloud::region_copy(&name, view, region, *scope, *max_lag, now),
        },
        CheckDef::Redundancy {
            source, multi_az, ..
        } => match by_source.get(source) {
            None => unknown(source, Check::Separation),
            Some(view) => cloud::redundancy(&name, view, *multi_az),
        },
        CheckDef::PointInTime {
            source,
            warn_after,
            fail_after,
            ..
        } => match by_source.get(source) {
            None => unknown(source, Check::Freshness),
            Some(view) => cloud::point_in_time(&name, view, *warn_after, *fail_after, now),
        },
        CheckDef::Restore {
            source,
            within,
            rto,
            ..
        } => match by_source.get(source) {
            None => unknown(source, Check::Restore),
            Some(view) => restore::restored(&name, view, *within, *rto, now),
        },
        CheckDef::Pitr {
            source,
            min_window,
            max_archive_age,
            restore_within,
            rto,
            ..
        } => match by_source.get(source) {
            None => unknown(source, Check::Pitr),
            Some(view) => pitr::pitr(
                &name,
                view,
                pitr::Rules {
                    min_window: *min_window,
                    max_age: *max_archive_age,
                    restore_within: *restore_within,
                    rto: *rto,
                },
                now,
            ),
        },
        CheckDef::SnapshotBeforeChange {
            source,
            pattern,
            changes,
            within,
            since,
            ..
        } => match by_source.get(source) {
            None => unknown(source, Check::SnapshotBeforeChange),
            Some(view) => changes::snapshot_before_change(
                &name,
                source,
                view,
                pattern,
                changes.as_deref(),
                *within,
                *since,
                now,
            ),
        },
        CheckDef::Separation { sources, by, .. } => {
            let mut views = Vec::new();
            for s in sources {
                match by_source.get(s) {
                    Some(v) => views.push((s.as_str(), v)),
                    None => return unknown(s, Check::Separation),
                }
            }
            stores::separation(&name, &views, by)
        }
    }
}

pub(super) trait RemedyIf {
    fn remedy_if(self, status: Status, text: &str) -> Self;
}

impl RemedyIf for Finding {
    fn remedy_if(self, status: Status, text: &str) -> Self {
        if status == Status::Pass {
            self
        } else {
            self.remedy(text)
        }
    }
}
