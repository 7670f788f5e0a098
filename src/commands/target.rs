//! The pipeline for one resolved target, shared by `verify` and `nightly`:
//! list -> catalog -> (sample) -> verify -> store findings -> restores.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::Utc;

use crate::catalog::{self, TimestampPattern};
use crate::finding::{Check, Finding, Status};
use crate::inspect::physical::PhysicalFacts;
use crate::inspect::{self, Kind};
use crate::ledger::{self, Ledger, Sample};
use crate::policy::{self, Observed};
use crate::progress::Progress;
use crate::restore::{RestoreFacts, RestoreOutcome, RestoreSession, RestoreSpec, Which};
use crate::source::{self, SourceError, Target};
use crate::verify::{self, VerifyOptions};

/// What to restore of one target, after it is verified.
pub(super) struct RestoreJob<'a> {
    pub session: &'a mut RestoreSession,
    pub spec: &'a RestoreSpec,
    pub source_name: String,
    pub which: Which,
    /// Row counts of the previous restore of this source, from the history.
    pub previous: Option<BTreeMap<String, u64>>,
}

/// One target's verification, and the test restores it ran (their findings
/// are among the verification's, in the order they ran).
pub(super) struct Audited {
    pub verified: verify::Verified,
    pub restores: Vec<RestoreOutcome>,
    /// Cloud snapshot sources: what the provider listed.
    pub cloud: Option<Result<source::CloudFacts, source::facts::Unread>>,
    /// Backups the source held, across every shard.
    pub listed: usize,
    /// This process did the source-wide work (always, unsharded).
    pub owns_source: bool,
}

/// Verifies one resolved target; with a sample plan, only the backups the
/// ledger says are due tonight are read; with a history's ledger, stores
/// that can read incrementally against an earlier verification do. With a
/// restore job, the chosen dumps are then restored.
#[allow(clippy::too_many_arguments)] // one pipeline, its inputs named
pub(super) fn verify_target(
    target: &Target,
    pattern: &TimestampPattern,
    filter: &catalog::Filter,
    opts: &VerifyOptions,
    show_progress: bool,
    sample: Option<(&Ledger, Sample)>,
    history: Option<&Ledger>,
    restore: Option<RestoreJob<'_>>,
    wal_archive: Option<&verify::Verified>,
) -> Result<Audited, SourceError> {
    let location = target.source.location();
    let _span = tracing::info_span!("source", location = %location).entered();
    // `run` with a history: a store that can read only what changed since
    // a backup verified before (EBS snapshots) does so.
    if let Some(ledger) = history {
        target.source.use_ledger(ledger);
    }
    let scope = catalog::plan::Scope {
        pattern,
        filter,
        shard: target.shard,
        whole: restore.is_some(),
    };
    let catalog::plan::Planned {
        mut catalog,
        problems,
        listed,
        streamed,
    } = catalog::plan::plan(
        target.source.as_ref(),
        target.only.as_deref(),
        &scope,
        catalog::plan::IN_MEMORY_UP_TO,
    )?;
    tracing::debug!(listed, kept = catalog.backups.len(), streamed, "planned");
    let owns_source = target.shard.owns_source(&location);
    // A restore picks among the source's dumps: the source's owner runs it.
    let mut restore = restore.filter(|_| owns_source);
    let all = catalog.backups.clone();
    let mut carried = Vec::new();
    if let Some((ledger, sample)) = sample {
        let subjects: Vec<(String, u64)> = all
            .iter()
            .map(|b| (target.source.subject(&b.key), b.size))
            .collect();
        let chosen = ledger::plan(&subjects, ledger, sample);
        catalog.backups = all
            .iter()
            .zip(&chosen)
            .filter(|(_, c)| **c)
            .map(|(b, _)| b.clone())
            .collect();
        for ((subject, _), c) in subjects.iter().zip(&chosen) {
            if !c {
                carried.push((
                    subject.clone(),
                    ledger::carried(subject, &ledger[subject], sample),
                ));
            }
        }
    }
    if let Some(job) = &mut restore {
        warm_scratch(target, &all, job);
    }
    let total = catalog.backups.iter().map(|b| b.size).sum();
    let progress = Progress::bytes(total, show_progress);
    let mut verified = verify::verify_catalog(target.source.as_ref(), &catalog, opts, &progress);
    progress.finish();
    // Restore targets come from every backup, never from tonight's sample;
    // those the sample left out are read now, so they are verified too.
    if let Some(job) = &restore {
        read_restore_candidates(target, &all, &mut verified, opts, pattern, job);
    }
    // Policies see every backup that exists, read tonight or not.
    verified.catalogued = all
        .iter()
        .map(|b| {
            (
                target.source.subject(&b.key),
                b.key.clone(),
                b.timestamp,
                b.size,
            )
        })
        .collect();
    let read: std::collections::BTreeSet<&str> = verified
        .backups
        .iter()
        .map(|b| b.subject.as_str())
        .collect();
    let carried: Vec<Finding> = carried
        .into_iter()
        .filter(|(subject, _)| !read.contains(subject.as_str()))
        .map(|(_, f)| f)
        .collect();
    verified.findings.extend(carried);
    if owns_source {
        verified
            .findings
            .extend(problems.iter().map(SourceError::finding));
    }
    if target.only.is_none() && owns_source {
        verified.check_store(target.source.as_ref());
    }
    let extra = wal_archive
        .map(|v| v.backups.as_slice())
        .unwrap_or_default();
    let (paired, facts) = pair_physical(&verified.backups, extra);
    verified.findings.extend(paired);
    verified.physical = facts;
    let cloud = owns_source.then(|| target.source.cloud_facts()).flatten();
    if let Some(Ok(facts)) = &cloud {
        catalogue_snapshots(target, facts, &mut verified);
    }
    let restores = match restore {
        Some(job) => restore_catalog(target, &all, pattern, &verified, job),
        None => Vec::new(),
    };
    verified
        .findings
        .extend(restores.iter().map(|r| r.finding.clone()));
    tracing::info!(
        backups = verified.backups.len(),
        bytes_read = verified.backups.iter().map(|b| b.bytes_read).sum::<u64>(),
        findings = verified.findings.len(),
        restores = restores.len(),
        "source audited"
    );
    Ok(Audited {
        verified,
        restores,
        cloud,
        listed,
        owns_source,
    })
}

/// A cloud source's snapshots as backups the promises see: those with no
/// bytes to read (RDS) are catalogued from the listing, unread; each one
/// failed or stuck is a finding.
fn catalogue_snapshots(
    target: &Target,
    facts: &source::CloudFacts,
    verified: &mut verify::Verified,
) {
    let known: std::collections::BTreeSet<String> =
        verified.catalogued.iter().map(|c| c.1.clone()).collect();
    for s in facts.snapshots().filter(|s| s.is_complete()) {
        if !known.contains(&s.key) {
            verified.catalogued.push((
                target.source.subject(&s.key),
                s.key.clone(),
                s.created,
                s.size_gib << 30,
            ));
        }
    }
    let subject = |key: &str| target.source.subject(key);
    verified
        .findings
        .extend(policy::cloud::states(facts, &subject, Utc::now()));
}

/// Starts the scratch servers the restores will need while the backups
/// are read: the kind of each of the newest candidates is guessed from its
/// layout or its first 64 KiB (read again, and judged, by the verification).
fn warm_scratch(target: &Target, all: &[catalog::Backup], job: &mut RestoreJob<'_>) {
    /// Enough to meet each engine of a mixed directory; few enough that
    /// the guess costs nothing next to the verification.
    const GUESSED: usize = 8;
    const HEAD: usize = 64 * 1024;
    let wanted =
        catalog::Filter::new(job.spec.pattern.as_deref(), &job.spec.exclude).unwrap_or_default();
    let mut newest: Vec<&catalog::Backup> = all.iter().filter(|b| wanted.keeps(&b.key)).collect();
    newest.sort_by(|a, b| b.timestamp.cmp(&a.timestamp).then(a.key.cmp(&b.key)));
    let mut head = vec![0u8; HEAD];
    for b in newest.into_iter().take(GUESSED) {
        let kind = match (b.layout.kind(), b.members.first()) {
            (Some(kind), _) => kind,
            (None, Some(m)) => {
                let want = usize::try_from(m.size).map_or(HEAD, |s| s.min(HEAD));
                match target.source.read_at(m, 0, &mut head[..want]) {
                    Ok(n) => inspect::sniff(&head[..n], m.file_name()),
                    Err(_) => continue,
                }
            }
            (None, None) => continue,
        };
        job.session.warm(kind, b, job.spec);
    }
}

/// Reads (verifies) the backups a restore job may choose that the sample
/// left unread: newest first until the newest restorable one of each series
/// is known (`which = "newest"`), or all of them. A backup the deadline kept from
/// being read stops the walk: an older dump must not be restored in place
/// of a newest one nobody looked at.
fn read_restore_candidates(
    target: &Target,
    all: &[catalog::Backup],
    verified: &mut verify::Verified,
    opts: &VerifyOptions,
    pattern: &TimestampPattern,
    job: &RestoreJob<'_>,
) {
    let wanted =
        catalog::Filter::new(job.spec.pattern.as_deref(), &job.spec.exclude).unwrap_or_default();
    let mut order: Vec<&catalog::Backup> = all.iter().filter(|b| wanted.keeps(&b.key)).collect();
    order.sort_by(|a, b| b.timestamp.cmp(&a.timestamp).then(a.key.cmp(&b.key)));
    let mut open: std::collections::BTreeSet<String> =
        order.iter().map(|b| pattern.series(&b.key)).collect();
    for b in order {
        let series = pattern.series(&b.key);
        if job.which == Which::Newest && !open.contains(&series) {
            continue;
        }
        let known =
            |v: &verify::Verified| v.backups.iter().find(|r| r.key == b.key).map(|r| r.kind);
        let kind = match known(verified) {
            Some(kind) => kind,
            None => {
                let one = catalog::Catalog {
                    backups: vec![b.clone()],
                    manifests: Vec::new(),
                    missing: Vec::new(),
                };
                let v = verify::verify_catalog(
                    target.source.as_ref(),
                    &one,
                    opts,
                    &crate::progress::Progress::hidden(),
                );
                verified.findings.extend(v.findings);
                verified.backups.extend(v.backups);
                match known(verified) {
                    Some(kind) => kind,
                    None => return,
                }
            }
        };
        if job.which == Which::Newest && crate::restore::is_restorable(kind, b, job.spec.engine) {
            open.remove(&series);
            if open.is_empty() {
                return;
            }
        }
    }
}

/// Restores the verified dumps a job asks for (those its spec's pattern
/// and exclude keep): every one, or the newest of each series.
///
/// A dump that failed its structure check is still restored: the real
/// tool's own verdict ("could not uncompress data", "end of file") is the
/// evidence an auditor trusts more than our parser's, and the restore
/// timeout bounds the cost. The one exception is a damaged pg_dump tar
/// archive: pg_restore loops forever on some of them (see fixtures/README),
/// so restoring one would only burn the whole timeout.
fn restore_catalog(
    target: &Target,
    backups: &[catalog::Backup],
    pattern: &TimestampPattern,
    verified: &verify::Verified,
    job: RestoreJob<'_>,
) -> Vec<RestoreOutcome> {
    let kinds: BTreeMap<&str, Kind> = verified
        .backups
        .iter()
        .map(|r| (r.key.as_str(), r.kind))
        .collect();
    let decoded: BTreeMap<&str, &inspect::Decoded> = verified
        .backups
        .iter()
        .filter_map(|r| Some((r.key.as_str(), r.decoded.as_ref()?)))
        .collect();
    let mut structure: BTreeMap<&str, Status> = BTreeMap::new();
    for f in &verified.findings {
        if f.check == Check::Structure {
            let e = structure.entry(f.subject.as_str()).or_insert(Status::Pass);
            *e = (*e).max(f.status);
        }
    }
    let wanted =
        catalog::Filter::new(job.spec.pattern.as_deref(), &job.spec.exclude).unwrap_or_default();
    let mut chosen: Vec<(&catalog::Backup, Kind)> = backups
        .iter()
        .filter(|b| wanted.keeps(&b.key))
        .filter_map(|b| {
            let kind = kinds.get(b.key.as_str()).copied()?;
            crate::restore::is_restorable(kind, b, job.spec.engine).then_some((b, kind))
        })
        .collect();
    let starts = |key: &str| match decoded.get(key) {
        Some(inspect::Decoded::BaseBackup(b)) => b.start_time,
        _ => None,
    };
    if let Some(t) = job.session.named_target(job.spec) {
        // A point in time is recovered from the newest base backup that
        // started before it: a newer one cannot go back, an older one
        // replays more WAL than it needs to.
        let before = |b: &catalog::Backup| starts(&b.key).is_some_and(|s| s <= t);
        if chosen.iter().any(|(b, _)| before(b)) {
            chosen.retain(|(b, _)| starts(&b.key).is_none() || before(b));
        }
    }
    if job.which == Which::Newest {
        // The newest of each series: a directory's newest file of any kind
        // is not the newest backup of each thing backed up there.
        chosen.sort_by(|a, b| {
            b.0.timestamp
                .cmp(&a.0.timestamp)
                .then(a.0.key.cmp(&b.0.key))
        });
        let mut seen = std::collections::BTreeSet::new();
        chosen.retain(|(b, _)| seen.insert(pattern.series(&b.key)));
        chosen.sort_by(|a, b| a.0.key.cmp(&b.0.key));
    }
    let mut out = Vec::new();
    for (b, kind) in chosen {
        let subject = target.source.subject(&b.key);
        let damaged = structure.get(subject.as_str()) == Some(&Status::Fail);
        if damaged && kind.format == inspect::Format::PgTar {
            let facts = RestoreFacts {
                source: Some(job.source_name.clone()),
                location: Some(target.source.location()),
                ..RestoreFacts::default()
            };
            out.push(RestoreOutcome {
                finding: Finding::new(
                    subject,
                    Check::Restore,
                    Status::Fail,
                    "not restored: failed structure check (pg_restore can hang forever on a damaged tar archive)",
                )
                .with_evidence(facts.evidence())
                .remedy("The dump is damaged: restore from an earlier backup or a copy, and fix the backup job."),
                facts,
            });
            continue;
        }
        out.push(job.session.restore(
            target.source.as_ref(),
            b,
            kind,
            job.spec,
            &job.source_name,
            job.previous.as_ref(),
            decoded.get(b.key.as_str()).copied(),
            pairing(&verified.physical, &b.key).as_ref(),
        ));
    }
    out
}

/// What a base backup's restore takes from the pairing: the local archive
/// it was paired with, and the window it recovers to.
fn pairing(facts: &PhysicalFacts, key: &str) -> Option<crate::restore::PitrPairing> {
    facts.clusters.iter().find_map(|c| {
        let w = c.backups.iter().find(|w| w.backup.key == key)?;
        let archive = c
            .archive
            .as_deref()
            .filter(|a| !source::is_remote(a))
            .map(std::path::PathBuf::from);
        Some(crate::restore::PitrPairing {
            wal_archive: archive,
            earliest: w.earliest,
            latest: w.latest,
        })
    })
}

/// Base backups paired with WAL archives by system identifier: those of
/// this target, and an archive named elsewhere (`--wal-archive`,
/// `wal_archive`), whose own verdict is reported once, where it was read.
fn pair_physical(
    own: &[verify::BackupRecord],
    extra: &[verify::BackupRecord],
) -> (Vec<Finding>, PhysicalFacts) {
    let mut bases = Vec::new();
    let mut archives = Vec::new();
    for r in own.iter().chain(extra) {
        match &r.decoded {
            Some(inspect::Decoded::BaseBackup(b)) => bases.push((r.subject.as_str(), &**b)),
            Some(inspect::Decoded::WalArchive(a)) => archives.push((r.subject.as_str(), &**a)),
            _ => {}
        }
    }
    if bases.is_empty() && archives.is_empty() {
        return (Vec::new(), PhysicalFacts::default());
    }
    let (findings, facts) = crate::inspect::physical::window::pair(&bases, &archives);
    let elsewhere: std::collections::BTreeSet<&str> =
        extra.iter().map(|r| r.subject.as_str()).collect();
    let findings = findings
        .into_iter()
        .filter(|f| !elsewhere.contains(f.subject.as_str()))
        .collect();
    (findings, facts)
}

/// Verifies a WAL archive kept apart from the base backups, once, so that
/// every target's base backups can be paired with it.
pub(super) fn audit_wal_archive(
    location: &Path,
    s3: &source::S3Options,
    opts: &VerifyOptions,
) -> Result<verify::Verified, SourceError> {
    let target = source::resolve(location, s3)?;
    let scope = catalog::plan::Scope {
        pattern: &TimestampPattern::default(),
        filter: &catalog::Filter::default(),
        shard: crate::shard::Shard::WHOLE,
        whole: true,
    };
    let catalog::plan::Planned {
        catalog, problems, ..
    } = catalog::plan::plan(
        target.source.as_ref(),
        target.only.as_deref(),
        &scope,
        catalog::plan::IN_MEMORY_UP_TO,
    )?;
    let mut v = verify::verify_catalog(target.source.as_ref(), &catalog, opts, &Progress::hidden());
    v.findings.extend(problems.iter().map(SourceError::finding));
    if !v
        .backups
        .iter()
        .any(|b| matches!(b.decoded, Some(inspect::Decoded::WalArchive(_))))
    {
        v.findings.push(
            Finding::new(target.source.location(), Check::Continuity, Status::Error, "named as a WAL archive, but holds no WAL segments")
                .remedy("Point --wal-archive (or wal_archive) at the directory archive_command copies segments into."),
        );
    }
    Ok(v)
}

/// What policies need of a source's verification: each backup with the
/// worst of its integrity and structure verdicts.
pub(super) fn observe(v: &verify::Verified) -> Vec<Observed> {
    let encryption: BTreeMap<&str, &str> = v
        .backups
        .iter()
        .filter_map(|b| Some((b.subject.as_str(), b.encryption.as_deref()?)))
        .collect();
    let mut verdicts: BTreeMap<&str, Status> = BTreeMap::new();
    for f in &v.findings {
        if matches!(f.check, Check::Integrity | Check::Structure) {
            let e = verdicts.entry(f.subject.as_str()).or_insert(Status::Pass);
            *e = (*e).max(f.status);
        }
    }
    v.catalogued
        .iter()
        .map(|(subject, key, timestamp, size)| Observed {
            subject: subject.clone(),
            key: key.clone(),
            timestamp: *timestamp,
            size: *size,
            verdict: verdicts.get(subject.as_str()).copied(),
            encryption: encryption.get(subject.as_str()).map(|e| e.to_string()),
        })
        .collect()
}

/// The storage a source lives on, for separation checks: its bucket, or
/// the filesystem (device) of a local directory.
pub(super) fn storage_of(path: &Path) -> Option<String> {
    let text = path.to_string_lossy();
    if source::aws::is_cloud(&text) {
        // The provider's own storage, per service and region.
        let (scheme, rest) = text.split_once("://")?;
        let region = rest.split(['/', '?']).next()?;
        return Some(format!("{scheme}://{region}"));
    }
    if source::is_s3(&text) {
        let bucket = text.trim_start_matches("s3://").split('/').next()?;
        return Some(format!("s3://{bucket}"));
    }
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).ok()?.dev();
    Some(format!(
        "filesystem {}:{}",
        rustix::fs::major(dev),
        rustix::fs::minor(dev)
    ))
}
