//! Judging a fleet run: the shards of one night each recorded their share
//! in one history; the promises are judged once, over the union, when every
//! shard has reported (by the last shard to report, decided under the
//! history's lock, or by `run --finalize ID`). No promise is ever judged on
//! a shard's subset. A shard that never reports makes the fleet run
//! `error`, naming it; when it is rerun and reports, the fleet run
//! completes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::finding::{Check, Finding, Status};
use crate::fleet::{FleetMark, FleetSummary, ShardPart, ShardRun};
use crate::history::{PastRestore, StoredShard};
use crate::policy::{self, SourceView};
use crate::report::Report;

fn part(s: &StoredShard) -> Option<&ShardPart> {
    match &s.report.fleet {
        Some(FleetMark::Shard(p)) => Some(p),
        _ => None,
    }
}

/// When a fleet run may be judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// Only once every shard has reported (a shard that has just reported).
    Complete,
    /// Now: shards that have not reported make the run `error`
    /// (`--finalize` after its wait).
    Now,
}

/// The fleet run's record from its shards' runs, or `None` while shards
/// are missing and `when` is `Complete`. `past` is the history's earlier
/// restores; those from this fleet run's own shards are left out.
pub fn judge(
    group: &str,
    shards: Vec<StoredShard>,
    config: &Config,
    past: &[PastRestore],
    when: When,
) -> Option<Report> {
    // The newest record of each shard: a rerun supersedes a killed one.
    let mut newest: BTreeMap<u32, StoredShard> = BTreeMap::new();
    for s in shards {
        let Some(index) = part(&s).map(|p| p.shard) else {
            continue;
        };
        if newest.get(&index).is_none_or(|old| old.run_id < s.run_id) {
            newest.insert(index, s);
        }
    }
    let counts: std::collections::BTreeSet<u32> = newest
        .values()
        .filter_map(|s| part(s).map(|p| p.of))
        .collect();
    let of = counts.iter().copied().max().unwrap_or(0);
    let missing: Vec<u32> = (0..of).filter(|i| !newest.contains_key(i)).collect();
    let reported = missing.is_empty() && of > 0 && counts.len() == 1;
    if !reported && when == When::Complete {
        return None;
    }
    // Shards that read under another config saw other sources and
    // promises: their union is no run of this config.
    let ours = config_digests(&config.files);
    let drifted: Vec<u32> = newest
        .iter()
        .filter(|(_, s)| config_digests(&s.report.config) != ours)
        .map(|(i, _)| *i)
        .collect();
    let complete = reported && drifted.is_empty();
    let started = newest
        .values()
        .map(|s| s.report.started_at)
        .min()
        .unwrap_or_else(Utc::now);
    let mut findings = Vec::new();
    let mut backups = Vec::new();
    let mut bytes_read = 0;
    let mut views: BTreeMap<String, SourceView> = BTreeMap::new();
    for s in newest.values() {
        findings.extend(s.report.findings.iter().cloned());
        backups.extend(s.report.backups.iter().cloned());
        bytes_read += s.report.summary.bytes_read;
        for (name, v) in part(s).map(|p| &p.views).into_iter().flatten() {
            match views.get_mut(name) {
                Some(into) => merge(into, v),
                None => {
                    views.insert(name.clone(), v.clone());
                }
            }
        }
    }
    if complete {
        add_context(&mut views, config, past, started);
        let unread: BTreeMap<&str, u32> = newest
            .iter()
            .flat_map(|(i, s)| {
                part(s)
                    .into_iter()
                    .flat_map(move |p| p.unread.iter().map(move |n| (n.as_str(), *i)))
            })
            .collect();
        findings.extend(config.checks.iter().map(|check| {
            let f = policy::evaluate_one(check, &views, started);
            unjudged(check, f, &unread)
        }));
    } else if !reported {
        findings.extend(incomplete(group, of, &missing, counts.len() > 1));
    } else {
        findings.extend(drift(group, of, &drifted));
    }
    let mut report = super::run_report(config, started, backups, findings);
    report.summary.bytes_read = bytes_read;
    report.fleet = Some(FleetMark::Final(FleetSummary {
        group: group.to_string(),
        shards: of,
        shard_runs: newest
            .iter()
            .map(|(i, s)| ShardRun {
                shard: *i,
                run: s.run_id,
            })
            .collect(),
        missing,
        drifted,
    }));
    Some(report)
}

/// One shard's view of a source folded into the others': backups and
/// restores add up; the source-wide facts come from the shard that owns
/// the source (the others have none).
fn merge(into: &mut SourceView, v: &SourceView) {
    into.backups.extend(v.backups.iter().cloned());
    into.restores.extend(v.restores.iter().cloned());
    into.bucket = into.bucket.take().or_else(|| v.bucket.clone());
    into.parity = into.parity.take().or_else(|| v.parity.clone());
    into.physical = into.physical.take().or_else(|| v.physical.clone());
    into.cloud = into.cloud.take().or_else(|| v.cloud.clone());
    if into.copies.is_empty() {
        into.copies = v.copies.clone();
    }
}

/// What the shards do not record: the timestamp pattern (from the config),
/// a listing order, and the restores of earlier runs.
fn add_context(
    views: &mut BTreeMap<String, SourceView>,
    config: &Config,
    past: &[PastRestore],
    started: DateTime<Utc>,
) {
    for s in &config.sources {
        let Some(view) = views.get_mut(&s.name) else {
            continue;
        };
        view.timestamp_pattern = config.pattern_for(s);
        view.backups.sort_by(|a, b| a.key.cmp(&b.key));
        let location = view.location.clone();
        view.restores.extend(
            past.iter()
                .filter(|p| {
                    p.at < started
                        && p.facts.source.as_deref() == Some(s.name.as_str())
                        && p.facts.location.as_deref() == Some(location.as_str())
                })
                .map(PastRestore::seen),
        );
    }
}

/// A promise about a source some shard could not read is judged on part of
/// its backups: `error`, never that part's verdict. Coverage spans every
/// source, so any unread source leaves it unjudged too.
fn unjudged(check: &policy::CheckDef, f: Finding, unread: &BTreeMap<&str, u32>) -> Finding {
    let sources = check.sources();
    let hit = match sources.is_empty() {
        true => unread.iter().next(),
        false => unread.iter().find(|(n, _)| sources.contains(n)),
    };
    let Some((source, shard)) = hit else {
        return f;
    };
    let mut out = Finding::new(
        &f.subject,
        f.check,
        Status::Error,
        format!("not judged: shard {shard} could not read source {source:?}, so its part of the backups is missing"),
    )
    .remedy("See that shard's source finding; rerun it once the source can be read.");
    if let Some(p) = f.evidence.get("policy") {
        out = out.with("policy", p.clone());
    }
    out.with("source", *source).with("shard", *shard)
}

fn config_digests(files: &[crate::report::ConfigFile]) -> std::collections::BTreeSet<&str> {
    files.iter().map(|f| f.sha256.as_str()).collect()
}

fn drift(group: &str, of: u32, drifted: &[u32]) -> Vec<Finding> {
    drifted
        .iter()
        .map(|i| {
            Finding::new(
                format!("fleet {group}"),
                Check::Source,
                Status::Error,
                format!(
                    "shard {i} of {of} read under another config than this judgement's: the promises were not judged"
                ),
            )
            .with("group", group)
            .with("shard", *i)
            .remedy(format!(
                "Run every shard and the finalizer with the same config files; rerun shard {i} with them (--shard {i}/{of} --run-group {group})."
            ))
        })
        .collect()
}

fn incomplete(group: &str, of: u32, missing: &[u32], disagree: bool) -> Vec<Finding> {
    let subject = format!("fleet {group}");
    if of == 0 {
        return vec![
            Finding::new(
                &subject,
                Check::Source,
                Status::Error,
                format!("no shard of fleet run {group:?} reported: nothing was judged"),
            )
            .with("group", group)
            .remedy("Check that the shards ran with this --run-group and the same --history."),
        ];
    }
    if disagree {
        return vec![
            Finding::new(
                &subject,
                Check::Source,
                Status::Error,
                format!(
                    "the shards of fleet run {group:?} disagree on how many shards there are: the promises were not judged"
                ),
            )
            .with("group", group)
            .remedy("Run every shard of one night with the same --shard .../N."),
        ];
    }
    missing
        .iter()
        .map(|i| {
            Finding::new(
                &subject,
                Check::Source,
                Status::Error,
                format!(
                    "shard {i} of {of} never reported: the backups it owns were not verified and the promises were not judged"
                ),
            )
            .with("group", group)
            .with("shard", *i)
            .with("shards", of)
            .remedy(format!(
                "Rerun shard {i} (--shard {i}/{of} --run-group {group}): the fleet run is judged when it reports."
            ))
        })
        .collect()
}
