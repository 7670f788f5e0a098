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

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::finding::{Check, Finding, Status};

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
pub fn load_pack(path: &Path) -> Result<Vec<CheckDef>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let pack: Pack = toml::from_str(&text)
        .map_err(|e| format!("{}: {}", path.display(), e.to_string().trim_end()))?;
    Ok(pack.checks)
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
            | CheckDef::Restore { source, .. } => vec![source.as_str()],
            CheckDef::Separation { sources, .. } => sources.iter().map(String::as_str).collect(),
            CheckDef::Coverage { .. } => vec![],
        }
    }

    /// Checks the values serde cannot: patterns, ranges.
    pub fn validate(&self) -> Result<(), String> {
        let pattern = match self {
            CheckDef::Freshness { pattern, .. }
            | CheckDef::Retention { pattern, .. }
            | CheckDef::SizeAnomaly { pattern, .. }
            | CheckDef::Verified { pattern, .. } => pattern.as_deref(),
            _ => None,
        };
        if let Some(p) = pattern {
            glob::Pattern::new(p).map_err(|e| format!("pattern {p:?}: {e}"))?;
        }
        match self {
            CheckDef::Freshness {
                warn_after: Some(w),
                fail_after,
                ..
            } if w > fail_after => Err("warn_after must not exceed fail_after".into()),
            CheckDef::SizeAnomaly {
                window,
                fail_below,
                warn_below,
                fail_above,
                ..
            } => {
                if *window == 0 {
                    Err("window must be at least 1".into())
                } else if !(0.0..=1.0).contains(fail_below)
                    || fail_below > warn_below
                    || *fail_above < 1.0
                {
                    Err("need 0 <= fail_below <= warn_below and fail_above >= 1".into())
                } else {
                    Ok(())
                }
            }
            CheckDef::Retention {
                min_age: None,
                min_count: None,
                max_gap: None,
                max_age: None,
                ..
            } => Err("a retention check needs min_age, min_count, max_gap or max_age".into()),
            CheckDef::Coverage { inventory, .. } if inventory.is_empty() => {
                Err("inventory is empty".into())
            }
            CheckDef::Separation { sources, by, .. } => {
                if sources.len() < 2 {
                    Err("a separation check names at least two sources".into())
                } else if by.is_empty() {
                    Err("by must name storage, region or account".into())
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    fn name(&self) -> String {
        let (name, kind, source) = match self {
            CheckDef::Freshness { name, source, .. } => (name, "freshness", source.as_str()),
            CheckDef::Retention { name, source, .. } => (name, "retention", source.as_str()),
            CheckDef::SizeAnomaly { name, source, .. } => (name, "size_anomaly", source.as_str()),
            CheckDef::Verified { name, source, .. } => (name, "verified", source.as_str()),
            CheckDef::Versioning { name, source, .. } => (name, "versioning", source.as_str()),
            CheckDef::Copy { name, source, .. } => (name, "copy", source.as_str()),
            CheckDef::Encryption { name, source, .. } => (name, "encryption", source.as_str()),
            CheckDef::Restore { name, source, .. } => (name, "restore", source.as_str()),
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

/// What policies see of one backup.
#[derive(Debug, Clone)]
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
#[derive(Debug, Clone, Default)]
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
}

/// One test restore of a source's backup.
#[derive(Debug, Clone)]
pub struct RestoreSeen {
    pub at: DateTime<Utc>,
    pub subject: String,
    pub status: Status,
    pub summary: String,
    /// Load plus sanity checks, in seconds.
    pub seconds: Option<f64>,
}

fn human(d: chrono::Duration) -> String {
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

fn evaluate_one(
    def: &CheckDef,
    by_source: &BTreeMap<String, SourceView>,
    now: DateTime<Utc>,
) -> Finding {
    let name = def.name();
    let source_backups = |source: &str| by_source.get(source).map(|v| &v.backups);
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
        } => {
            let Some(all) = source_backups(source) else {
                return unknown(source, Check::Freshness);
            };
            let b = select(all, pattern);
            let Some(newest) = b.last() else {
                return Finding::new(&name, Check::Freshness, Status::Fail, "no backup at all")
                    .with("source", source.as_str())
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
                &name,
                Check::Freshness,
                status,
                format!(
                    "newest backup is {} old (promise: at most {})",
                    human(age),
                    humantime::format_duration(*fail_after)
                ),
            )
            .with("source", source.as_str())
            .with("newest", newest.subject.as_str())
            .with("newest_timestamp", newest.timestamp.to_rfc3339())
            .with("age_seconds", age.num_seconds())
            .with("fail_after_seconds", fail_after.as_secs())
            .with("policy", name.as_str())
            .remedy_if(
                status,
                "Backups are older than the promised RPO: check the backup job and take one now.",
            )
        }
        CheckDef::Retention {
            source,
            pattern,
            min_age,
            min_count,
            max_gap,
            max_age,
            ..
        } => {
            let Some(all) = source_backups(source) else {
                return unknown(source, Check::Retention);
            };
            let b = select(all, pattern);
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
            Finding::new(&name, Check::Retention, status, summary)
                .with("source", source.as_str())
                .with("count", b.len())
                .with("min_age_seconds", min_age.map(|d| d.as_secs()))
                .with("oldest", b.first().map(|o| o.timestamp.to_rfc3339()))
                .with("newest", b.last().map(|o| o.timestamp.to_rfc3339()))
                .with(
                    "largest_gap_seconds",
                    largest_gap.as_ref().map(|(g, _, _)| g.num_seconds()),
                )
                .with("problems", problems)
                .with("policy", name.as_str())
                .remedy_if(status, "Retention is not what was promised: check the rotation/lifecycle rules and the backup schedule.")
        }
        CheckDef::SizeAnomaly {
            source,
            pattern,
            window,
            fail_below,
            warn_below,
            fail_above,
            min_bytes,
            ..
        } => {
            let Some(all) = source_backups(source) else {
                return unknown(source, Check::SizeAnomaly);
            };
            let b = select(all, pattern);
            let Some(newest) = b.last() else {
                return Finding::new(
                    &name,
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
            Finding::new(&name, Check::SizeAnomaly, status, summary)
                .with("source", source.as_str())
                .with("newest", newest.subject.as_str())
                .with("newest_bytes", newest.size)
                .with("median_bytes", median)
                .with("compared_with", previous.len())
                .with("policy", name.as_str())
                .remedy_if(status, "A backup far smaller or larger than usual: open it, and check the job's log for errors or runaway data.")
        }
        CheckDef::Verified {
            source,
            pattern,
            scope,
            ..
        } => {
            let Some(all) = source_backups(source) else {
                return unknown(source, Check::Verified);
            };
            let b = select(all, pattern);
            let in_scope: Vec<&&Observed> = match scope {
                Scope::All => b.iter().collect(),
                Scope::Newest => b.last().into_iter().collect(),
            };
            if in_scope.is_empty() {
                return Finding::new(&name, Check::Verified, Status::Fail, "no backup to verify");
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
            Finding::new(&name, Check::Verified, status, summary)
                .with("source", source.as_str())
                .with(
                    "scope",
                    if *scope == Scope::All {
                        "all"
                    } else {
                        "newest"
                    },
                )
                .with("not_verified", bad)
                .with("policy", name.as_str())
                .remedy_if(
                    status,
                    "See the integrity and structure findings of these backups.",
                )
        }
        CheckDef::Coverage {
            inventory, max_age, ..
        } => {
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
                    Some(t) => {
                        missing.push(format!("{item} (newest backup {} old)", human(now - t)))
                    }
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
            Finding::new(&name, Check::Coverage, status, summary)
                .with("covered", covered)
                .with("missing", missing)
                .with("policy", name.as_str())
                .remedy_if(status, "Something in the inventory has no recent backup: add a backup job and a source for it.")
        }
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
            Some(view) => stores::encryption(&name, view, *scope, *require_kms, *bucket_default),
        },
        CheckDef::Restore {
            source,
            within,
            rto,
            ..
        } => match by_source.get(source) {
            None => unknown(source, Check::Restore),
            Some(view) => restored(&name, view, *within, *rto, now),
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

/// The newest restore of the source inside the window decides.
fn restored(
    name: &str,
    view: &SourceView,
    within: Duration,
    rto: Option<Duration>,
    now: DateTime<Utc>,
) -> Finding {
    let window = chrono::Duration::from_std(within).unwrap_or(chrono::Duration::MAX);
    let newest = view.restores.iter().max_by_key(|r| r.at);
    let base = |status, summary: String| {
        Finding::new(name, Check::Restore, status, summary)
            .with("source", view.location.as_str())
            .with("within_seconds", within.as_secs())
            .with("rto_seconds", rto.map(|r| r.as_secs_f64()))
            .with("policy", name)
    };
    let Some(last) = newest.filter(|r| now - r.at <= window) else {
        let summary = match newest {
            Some(r) => format!(
                "last restore was {} ago, promise is every {}",
                human(now - r.at),
                humantime::format_duration(within)
            ),
            None => "never restored".to_string(),
        };
        return base(Status::Fail, summary)
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
        .with("restore_seconds", last.seconds)
        .remedy_if(
            status,
            "See the restore finding: fix the dump or the job, and make restores fast enough for the RTO.",
        )
}

trait RemedyIf {
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
