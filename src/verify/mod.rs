//! Verification: every backup of a catalog streamed once through its digests
//! and its structure inspector, by a bounded pool of workers, with a
//! prefetcher keeping many reads in flight ahead of them; [`store`] judges
//! what the store says about itself.

pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::catalog::{Backup, Catalog, Layout, ManifestState, TimestampFrom};
use crate::digest::{Algorithm, DigestSet, Hashers, HashingReader, LANE_THRESHOLD};
use crate::expectation::Expectation;
use crate::finding::{Check, Finding, Status};
use crate::inspect::physical;
use crate::inspect::{self, Format, Inspection, Kind, Subject};
use crate::progress::Progress;
use crate::source::{Artifact, ReadScope, Storage, StoreFacts, Unchecked};

/// How far the prefetcher runs ahead of the workers, in files and bytes.
const PREFETCH_FILES: usize = 128;
const PREFETCH_BYTES: u64 = 256 * 1024 * 1024;
/// Files larger than this are left to the kernel's sequential readahead:
/// asking for all of a large file at once would only evict other data.
const PREFETCH_MAX_FILE: u64 = 16 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// Worker threads; each hashes and decodes one backup at a time.
    pub jobs: usize,
    /// Digests to compute for every file, on top of those manifests need.
    /// Empty means SHA-256 (the evidence digest) only.
    pub digests: Vec<Algorithm>,
    /// No new backup is started after this instant; those not reached are
    /// reported as `error`, so a time budget never turns into a silent pass.
    pub deadline: Option<Instant>,
    /// A WAL archive kept apart from the base backups (`--wal-archive`):
    /// read once, and every target's base backups paired with it.
    pub wal_archive: Option<std::path::PathBuf>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            jobs: thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            digests: Vec::new(),
            deadline: None,
            wal_archive: None,
        }
    }
}

/// What was learnt about one backup, for reports and (later) history.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct BackupRecord {
    pub subject: String,
    pub key: String,
    pub kind: Kind,
    pub layout: Layout,
    pub timestamp: DateTime<Utc>,
    pub timestamp_from: TimestampFrom,
    pub size: u64,
    pub bytes_read: u64,
    /// Per member key (one entry for single-file backups).
    pub digests: BTreeMap<String, DigestSet>,
    pub duration_ms: u64,
    /// Server-side encryption of the stored bytes, where the store reports
    /// it; the weakest member's for a directory dump ("none" wins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    /// What the structure check decoded from a configuration-store
    /// snapshot, for its restore to compare against (not in reports: the
    /// structure finding's evidence shows it).
    #[serde(skip)]
    pub decoded: Option<crate::inspect::Decoded>,
}

pub struct Verified {
    /// Every backup the catalog held (some may be unreached): subject, key,
    /// timestamp and size, for policies.
    pub catalogued: Vec<(String, String, DateTime<Utc>, u64)>,
    pub backups: Vec<BackupRecord>,
    pub findings: Vec<Finding>,
    /// What the store said about itself, for the promises about stores;
    /// empty until [`Verified::check_store`].
    pub store: StoreFacts,
    /// Bytes read for the store's own checks (old versions, recovery
    /// points), on top of the backups' `bytes_read`: reports add both.
    pub store_bytes_read: u64,
    /// Base backups paired with WAL archives: the recoverable windows;
    /// empty until the target's pairing (`commands::target`).
    pub physical: physical::PhysicalFacts,
}

/// Old versions read back at once.
const VERSIONS_IN_FLIGHT: usize = 4;

impl Verified {
    /// Asks the store about itself (bucket settings, deleted objects, old
    /// versions), reads back every version it names through the same
    /// checks as a current object, adds the findings, and keeps the facts.
    pub fn check_store(&mut self, source: &dyn Storage) {
        let facts = source.store_facts();
        let mut versions: Vec<&Artifact> = Vec::new();
        if let Some(Ok(v)) = &facts.versions {
            versions.extend(v.deleted.iter().filter_map(|d| d.previous.as_ref()));
            versions.extend(&v.noncurrent);
        }
        let reads = read_versions(source, &versions);
        self.store_bytes_read += reads
            .iter()
            .filter_map(|r| r.outcome.as_ref().ok())
            .map(|r| r.bytes)
            .sum::<u64>();
        self.findings
            .extend(store::findings(source, &facts, &reads));
        self.store = facts;
    }
}

/// Each version read back, a few at a time, in order.
fn read_versions(source: &dyn Storage, versions: &[&Artifact]) -> Vec<store::ReadBack> {
    let next = AtomicUsize::new(0);
    let mut found: Vec<(usize, store::ReadBack)> = thread::scope(|s| {
        let workers: Vec<_> = (0..VERSIONS_IN_FLIGHT.min(versions.len()))
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(a) = versions.get(i) else { break };
                        out.push((i, read_version(source, a)));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("version reader panicked"))
            .collect()
    });
    found.sort_by_key(|(i, _)| *i);
    found.into_iter().map(|(_, r)| r).collect()
}

/// One version through [`read_member`]: the store's checksums and the
/// structure inspection, exactly as a current object.
fn read_version(source: &dyn Storage, a: &Artifact) -> store::ReadBack {
    let pass = read_member(source, a, BTreeSet::new(), &Progress::hidden());
    let outcome = match pass.storage_error {
        Some(reason) => Err(store::ReadFailure { reason }),
        None => {
            let i = &pass.inspection;
            let structure = match (&i.result, &i.warning) {
                (Err(d), _) => store::Structure::Damaged {
                    kind: i.kind,
                    damage: d.to_string(),
                },
                (Ok(()), Some(w)) => store::Structure::Unrecognised {
                    kind: i.kind,
                    why: w.clone(),
                },
                (Ok(()), None) => store::Structure::Sound(i.kind),
            };
            let mut checks: Vec<(Expectation, String)> = pass
                .promises
                .into_iter()
                .map(|e| {
                    let actual = pass.digests.get(&e.algorithm).cloned().unwrap_or_default();
                    (e, actual)
                })
                .collect();
            checks.extend(pass.settled);
            Ok(store::VersionRead {
                bytes: pass.bytes,
                checks,
                unchecked: pass.unchecked,
                structure,
            })
        }
    };
    store::ReadBack {
        version: a.clone(),
        outcome,
    }
}

/// Verifies every backup of `catalog`, plus the catalog's manifest findings.
pub fn verify_catalog(
    source: &dyn Storage,
    catalog: &Catalog,
    opts: &VerifyOptions,
    progress: &Progress,
) -> Verified {
    source.want_digests(&opts.digests);
    let subject_of = |key: &str| source.subject(key);
    let mut findings = manifest_findings(catalog, &subject_of);

    let backups = &catalog.backups;
    let next = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let jobs = opts.jobs.max(1).min(backups.len().max(1));
    let mut results: Vec<Option<(BackupRecord, Vec<Finding>)>> = vec![None; backups.len()];
    thread::scope(|s| {
        s.spawn(|| prefetch(source, backups, &next, &done));
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        if opts.deadline.is_some_and(|d| Instant::now() >= d) {
                            break;
                        }
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(b) = backups.get(i) else { break };
                        out.push((i, verify_backup(source, b, opts, progress)));
                    }
                    out
                })
            })
            .collect();
        for w in workers {
            for (i, r) in w.join().expect("verification worker panicked") {
                results[i] = Some(r);
            }
        }
        done.store(true, Ordering::SeqCst);
    });
    let mut records = Vec::with_capacity(backups.len());
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Some((record, f)) => {
                records.push(record);
                findings.extend(f);
            }
            None => findings.push(
                Finding::new(
                    subject_of(&backups[i].key),
                    Check::Structure,
                    Status::Error,
                    "not verified: the run's deadline passed before it was reached",
                )
                .remedy("Give the run more time (--deadline), more workers (--jobs), or spread full reads over several nights."),
            ),
        }
    }
    Verified {
        catalogued: backups
            .iter()
            .map(|b| (subject_of(&b.key), b.key.clone(), b.timestamp, b.size))
            .collect(),
        backups: records,
        findings,
        store: StoreFacts::default(),
        store_bytes_read: 0,
        physical: physical::PhysicalFacts::default(),
    }
}

fn prefetch(source: &dyn Storage, backups: &[Backup], next: &AtomicUsize, done: &AtomicBool) {
    let mut ahead = 0usize;
    while ahead < backups.len() && !done.load(Ordering::Relaxed) {
        let claimed = next.load(Ordering::Relaxed);
        ahead = ahead.max(claimed);
        let window_bytes: u64 = backups[claimed.min(backups.len())..ahead.min(backups.len())]
            .iter()
            .map(|b| b.size.min(PREFETCH_MAX_FILE))
            .sum();
        if ahead >= backups.len()
            || ahead - claimed >= PREFETCH_FILES
            || window_bytes >= PREFETCH_BYTES
        {
            thread::sleep(Duration::from_millis(1));
            continue;
        }
        for m in &backups[ahead].members {
            if m.size <= PREFETCH_MAX_FILE {
                source.prefetch(m);
            }
        }
        ahead += 1;
    }
}

fn manifest_findings(catalog: &Catalog, subject_of: &dyn Fn(&str) -> String) -> Vec<Finding> {
    let mut out = Vec::new();
    for m in &catalog.manifests {
        match m {
            ManifestState::Parsed { key, entries } => out.push(
                Finding::new(
                    subject_of(key),
                    Check::Manifest,
                    Status::Pass,
                    format!("{entries} checksum line(s) parsed"),
                )
                .with("entries", *entries),
            ),
            ManifestState::Unreadable(e) => {
                let summary = if e.line > 0 {
                    format!("unreadable at line {}: {}", e.line, e.reason)
                } else {
                    format!("unreadable: {}", e.reason)
                };
                out.push(
                    Finding::new(subject_of(&e.key), Check::Manifest, Status::Fail, summary)
                        .with("line", e.line)
                        .with("reason", e.reason.clone())
                        .remedy("Regenerate the manifest from the backups (sha256sum/b3sum/md5sum) or restore it from a copy; the files it should cover are unverified."),
                );
            }
        }
    }
    for miss in &catalog.missing {
        out.push(
            Finding::new(
                subject_of(&miss.target),
                Check::Manifest,
                Status::Fail,
                format!("listed in {} line {} but not present", miss.manifest, miss.line),
            )
            .with("manifest", subject_of(&miss.manifest))
            .with("line", miss.line)
            .remedy("The backup was deleted, renamed or never uploaded: find out which, and restore it from a copy if it should exist."),
        );
    }
    out
}

/// Result of streaming one member file.
struct MemberPass {
    inspection: Inspection,
    digests: DigestSet,
    bytes: u64,
    storage_error: Option<String>,
    /// Checksums the store records for the member (S3 ETag and the like).
    promises: Vec<Expectation>,
    /// Store checks worked out while reading, with the value the bytes gave.
    settled: Vec<(Expectation, String)>,
    /// Store checksums that could not be checked, with why.
    unchecked: Vec<Unchecked>,
    /// Store checksums left out as adding nothing, with why.
    skipped: Vec<Unchecked>,
    /// The object version read, on versioned stores.
    version_id: Option<String>,
    /// Encryption at rest, where the store reports it.
    encryption: Option<String>,
    /// What the store chose to read of the member, where it chose.
    scope: Option<ReadScope>,
}

fn read_member(
    source: &dyn Storage,
    member: &Artifact,
    algorithms: BTreeSet<Algorithm>,
    progress: &Progress,
) -> MemberPass {
    read_member_with(source, member, algorithms, progress, &inspect::inspect)
}

/// An inspector: reads a member's stream as far as its format goes.
type Inspector<'a> = &'a dyn Fn(&mut dyn std::io::Read, &Subject<'_>) -> Inspection;

/// [`read_member`] with another inspector (a tar-format base backup's
/// tars are checked against its manifest as they stream).
fn read_member_with(
    source: &dyn Storage,
    member: &Artifact,
    mut algorithms: BTreeSet<Algorithm>,
    progress: &Progress,
    inspector: Inspector<'_>,
) -> MemberPass {
    let (key, size) = (member.key.as_str(), member.size);
    let opened = match source.open(member) {
        Ok(f) => f,
        Err(e) => {
            return MemberPass {
                inspection: inspect_skipped(),
                digests: DigestSet::new(),
                bytes: 0,
                storage_error: Some(e.to_string()),
                promises: Vec::new(),
                settled: Vec::new(),
                unchecked: Vec::new(),
                skipped: Vec::new(),
                version_id: None,
                encryption: None,
                scope: None,
            };
        }
    };
    let partial = opened.scope.as_ref().is_some_and(|s| s.partial);
    if partial {
        // The stream holds only the changed parts: a digest of it would be
        // no digest of the artifact; the store's own checks still run.
        algorithms.clear();
    }
    // The store's own checksums are computed in the same pass.
    algorithms.extend(opened.promises.iter().map(|p| p.algorithm));
    let mut file = opened.reader;
    let lends = file.lender().is_some();
    let bar = progress.clone();
    // A lent stream hashes each digest on its own thread without lanes.
    let lanes = !lends && size >= LANE_THRESHOLD && algorithms.len() > 1;
    let mut tee = HashingReader::new(file, Hashers::with_lanes(algorithms, lanes))
        .on_progress(move |n| bar.advance(n));
    let path = source.local_path(key);
    let read_at = |off: u64, buf: &mut [u8]| source.read_at(member, off, buf);
    let name = key.rsplit('/').next().unwrap_or(key);
    let subject = Subject {
        name,
        size,
        read_at: Some(&read_at),
        local_path: path.as_deref(),
    };
    // A partial stream is not the artifact: the inspector reads the
    // artifact itself, only as far as it looks, through `read_at`.
    let inspection = match partial {
        true => inspector(
            &mut Positional {
                read_at: &read_at,
                pos: 0,
                size,
            },
            &subject,
        ),
        false => inspector(&mut tee, &subject),
    };
    let drained = match tee.drain_lent(|r| r.lender()) {
        Some(lent) => lent,
        None if lanes || size >= LANE_THRESHOLD => tee.drain_pipelined(),
        None => tee.drain(),
    };
    let mut storage_error = tee.storage_error().map(str::to_string);
    if let (Err(e), None) = (&drained, &storage_error) {
        storage_error = Some(e.to_string());
    }
    let bytes = tee.bytes_read();
    if storage_error.is_none() && bytes != size && !partial {
        // The file changed under us (still being written, or replaced).
        storage_error = Some(format!(
            "read {bytes} bytes but the listing said {size}: file changed during verification"
        ));
    }
    let (digests, reader) = tee.into_parts();
    MemberPass {
        inspection,
        digests,
        bytes,
        storage_error,
        promises: opened.promises,
        unchecked: opened.unchecked,
        skipped: opened.skipped,
        version_id: opened.version_id,
        encryption: opened.encryption,
        scope: opened.scope,
        settled: reader.finish(),
    }
}

/// An artifact read front to back through positional reads, each as large
/// as the caller asks: an inspector fetches only what it looks at.
struct Positional<'a> {
    read_at: &'a dyn Fn(u64, &mut [u8]) -> std::io::Result<usize>,
    pos: u64,
    size: u64,
}

impl std::io::Read for Positional<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min((self.size - self.pos) as usize);
        let n = (self.read_at)(self.pos, &mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn inspect_skipped() -> Inspection {
    Inspection {
        kind: Kind::UNKNOWN,
        result: Ok(()),
        warning: None,
        evidence: Map::new(),
        toc_files: None,
        unjudged: None,
        decoded: None,
    }
}

pub fn verify_backup(
    source: &dyn Storage,
    b: &Backup,
    opts: &VerifyOptions,
    progress: &Progress,
) -> (BackupRecord, Vec<Finding>) {
    let started = Instant::now();
    let subj = source.subject(&b.key);
    let mut passes: Vec<(String, MemberPass)> = Vec::new();
    // A base backup's manifest is read first: its checksum algorithm is
    // computed for every other file in the same pass.
    let mut order: Vec<&Artifact> = b.members.iter().collect();
    order.sort_by_key(|m| !physical::is_manifest_of(&b.key, &m.key));
    let mut manifest_alg: Option<Algorithm> = None;
    for m in order {
        let mut algorithms = b.algorithms_for(&m.key, &opts.digests);
        let pass = match b.layout {
            Layout::PgBaseBackupTar if physical::basetar::is_backup_tar(m.file_name()) => {
                let alg = manifest_alg;
                let inspector = move |r: &mut dyn std::io::Read, s: &Subject<'_>| {
                    physical::basetar::inspect(r, s, alg)
                };
                read_member_with(source, m, algorithms, progress, &inspector)
            }
            Layout::PgBaseBackup => {
                algorithms.extend(manifest_alg);
                read_member(source, m, algorithms, progress)
            }
            _ => read_member(source, m, algorithms, progress),
        };
        if physical::is_manifest_of(&b.key, &m.key) {
            manifest_alg = physical::manifest_algorithm(pass.inspection.decoded.as_ref());
        }
        passes.push((m.key.clone(), pass));
    }
    let kind = match b.layout {
        Layout::File => passes[0].1.inspection.kind,
        Layout::PgDirectory => Kind {
            format: Format::PgToc,
            compression: None,
        },
        Layout::PgBaseBackup => Kind {
            format: Format::PgBaseBackup,
            compression: None,
        },
        Layout::MariadbBackup => Kind {
            format: Format::MariadbBackup,
            compression: None,
        },
        Layout::PgBaseBackupTar => Kind {
            format: Format::PgBaseBackupTar,
            compression: None,
        },
        Layout::WalArchive => Kind {
            format: Format::WalArchive,
            compression: None,
        },
    };
    let mut findings = Vec::new();
    let mut decoded = match b.layout {
        Layout::File => passes[0].1.inspection.decoded.clone(),
        _ => None,
    };
    let storage_errors: Vec<String> = passes
        .iter()
        .filter_map(|(k, p)| p.storage_error.as_ref().map(|e| format!("{k}: {e}")))
        .collect();
    if !storage_errors.is_empty() {
        for check in [Check::Structure, Check::Integrity] {
            findings.push(
                Finding::new(
                    &subj,
                    check,
                    Status::Error,
                    format!("could not read: {}", storage_errors.join("; ")),
                )
                .remedy("Check permissions and the storage itself; the backup was not verified."),
            );
        }
    } else if let Some((f, facts)) = physical_findings(&subj, b, &passes) {
        findings.extend(f);
        decoded = Some(facts);
    } else {
        findings.push(structure_finding(&subj, b, kind, &passes));
        findings.push(integrity_finding(&subj, b, &passes));
    }
    let record = BackupRecord {
        subject: subj,
        key: b.key.clone(),
        kind,
        layout: b.layout,
        timestamp: b.timestamp,
        timestamp_from: b.timestamp_from,
        size: b.size,
        bytes_read: passes.iter().map(|(_, p)| p.bytes).sum(),
        digests: passes
            .iter()
            .map(|(k, p)| (k.clone(), p.digests.clone()))
            .collect(),
        duration_ms: started.elapsed().as_millis() as u64,
        encryption: weakest_encryption(passes.iter().map(|(_, p)| p.encryption.as_deref())),
        decoded,
    };
    (record, findings)
}

/// Base backups and WAL archives, judged by [`physical`] from what their
/// members decoded: the findings, and the typed facts for the pairing.
fn physical_findings(
    subj: &str,
    b: &Backup,
    passes: &[(String, MemberPass)],
) -> Option<(Vec<Finding>, inspect::Decoded)> {
    let inner = |k: &str| -> String {
        k.strip_prefix(b.key.as_str())
            .map(|r| r.trim_start_matches('/'))
            .unwrap_or(k)
            .to_string()
    };
    let names: Vec<String> = passes.iter().map(|(k, _)| inner(k)).collect();
    let sizes: BTreeMap<&str, u64> = b.members.iter().map(|m| (m.key.as_str(), m.size)).collect();
    let format = match b.layout {
        Layout::PgBaseBackup => physical::BaseFormat::Plain,
        Layout::PgBaseBackupTar => physical::BaseFormat::Tar,
        Layout::WalArchive => {
            let members: Vec<physical::archive::Member<'_>> = names
                .iter()
                .zip(passes)
                .map(|(n, (_, p))| (n.as_str(), &p.inspection))
                .collect();
            let (f, facts) = physical::archive::judge(subj, &b.key, &members);
            return Some((f, inspect::Decoded::WalArchive(Box::new(facts))));
        }
        _ => return None,
    };
    let members: Vec<physical::base::BaseMember<'_>> = names
        .iter()
        .zip(passes)
        .map(|(n, (k, p))| physical::base::BaseMember {
            name: n.as_str(),
            inspection: &p.inspection,
            digests: &p.digests,
            size: sizes.get(k.as_str()).copied().unwrap_or(p.bytes),
        })
        .collect();
    let (f, info) = physical::base::judge(subj, &b.key, format, &members);
    Some((f, inspect::Decoded::BaseBackup(Box::new(info))))
}

/// One unencrypted member makes the whole backup unencrypted; members
/// encrypted differently are "mixed".
fn weakest_encryption<'a>(members: impl Iterator<Item = Option<&'a str>>) -> Option<String> {
    let kinds: Option<BTreeSet<&str>> = members.collect();
    let kinds = kinds.filter(|k| !k.is_empty())?;
    let weakest = if kinds.contains("none") {
        "none"
    } else if kinds.len() == 1 {
        kinds.first()?
    } else {
        "mixed"
    };
    Some(weakest.to_string())
}

fn structure_finding(
    subj: &str,
    b: &Backup,
    kind: Kind,
    passes: &[(String, MemberPass)],
) -> Finding {
    let remedy = "The backup is damaged: take a fresh backup now, and find out what cut or altered this one (disk full, interrupted upload, bad media).";
    match b.layout {
        Layout::PgBaseBackup
        | Layout::MariadbBackup
        | Layout::PgBaseBackupTar
        | Layout::WalArchive => directory_finding(subj, b, kind, passes),
        Layout::File => {
            let i = &passes[0].1.inspection;
            let base = |status, summary: String| {
                Finding::new(subj, Check::Structure, status, summary)
                    .with("kind", kind.to_string())
                    .with_evidence(i.evidence.clone())
            };
            if let Some(why) = &i.unjudged {
                return base(Status::Error, format!("{kind}: not judged: {why}"))
                    .remedy("Raise the limit named above, or check this backup where more memory is available; backproof did not find it damaged.");
            }
            match (&i.result, &i.warning) {
                (Err(d), _) => base(Status::Fail, format!("{kind}: {d}")).remedy(remedy),
                (Ok(()), Some(w)) => base(Status::Warn, w.clone())
                    .remedy("If this is a backup, tell backproof its format (or open an issue); otherwise keep it out of backup locations."),
                (Ok(()), None) => base(Status::Pass, i.pass_summary()),
            }
        }
        Layout::PgDirectory => {
            let mut problems = Vec::new();
            let mut evidence = Map::new();
            let names: BTreeSet<&str> = b.members.iter().map(|m| m.file_name()).collect();
            let toc = passes
                .iter()
                .find(|(k, _)| k.rsplit('/').next() == Some("toc.dat"));
            match toc.map(|(_, p)| &p.inspection) {
                Some(i) if i.kind.format == Format::PgToc && i.result.is_ok() => {
                    evidence.extend(i.evidence.clone());
                    for f in i.toc_files.iter().flatten() {
                        let present = ["", ".gz", ".lz4", ".zst"]
                            .iter()
                            .any(|ext| names.contains(format!("{f}{ext}").as_str()));
                        if !present {
                            problems.push(format!("{f}: named in toc.dat but missing"));
                        }
                    }
                }
                Some(i) => problems.push(format!(
                    "toc.dat: {}",
                    i.result
                        .as_ref()
                        .err()
                        .map(|d| d.0.clone())
                        .unwrap_or_else(|| "not a pg_dump table of contents".into())
                )),
                None => problems.push("toc.dat missing".into()),
            }
            for (k, p) in passes {
                if k.ends_with("/toc.dat") {
                    continue;
                }
                if let Err(d) = &p.inspection.result {
                    problems.push(format!("{}: {d}", k.rsplit('/').next().unwrap_or(k)));
                }
            }
            evidence.insert("files".into(), json!(b.members.len()));
            if problems.is_empty() {
                Finding::new(
                    subj,
                    Check::Structure,
                    Status::Pass,
                    format!("{kind}: table of contents and every data file complete"),
                )
                .with("kind", kind.to_string())
                .with_evidence(evidence)
            } else {
                Finding::new(
                    subj,
                    Check::Structure,
                    Status::Fail,
                    format!("{kind}: {}", problems.join("; ")),
                )
                .with("kind", kind.to_string())
                .with("problems", problems)
                .with_evidence(evidence)
                .remedy(remedy)
            }
        }
    }
}

/// A directory backup judged by [`inspect::dirs`].
fn directory_finding(
    subj: &str,
    b: &Backup,
    kind: Kind,
    passes: &[(String, MemberPass)],
) -> Finding {
    let inner = |k: &str| -> String {
        k.strip_prefix(b.key.as_str())
            .map(|r| r.trim_start_matches('/'))
            .unwrap_or(k)
            .to_string()
    };
    let names: Vec<String> = passes.iter().map(|(k, _)| inner(k)).collect();
    let members: Vec<inspect::dirs::Member<'_>> = names
        .iter()
        .zip(passes)
        .map(|(n, (_, p))| (n.as_str(), &p.inspection))
        .collect();
    let sizes: Vec<u64> = b.members.iter().map(|m| m.size).collect();
    let j = if b.layout == Layout::PgBaseBackup {
        inspect::dirs::judge_pg_base_backup(&members, &sizes)
    } else {
        inspect::dirs::judge_mariadb_backup(&members, &sizes)
    };
    let base = |status, summary: String| {
        Finding::new(subj, Check::Structure, status, summary)
            .with("kind", kind.to_string())
            .with_evidence(j.evidence.clone())
    };
    if !j.problems.is_empty() {
        base(Status::Fail, format!("{kind}: {}", j.problems.join("; ")))
            .with("problems", j.problems.clone())
            .remedy("The backup is damaged or incomplete: take a fresh backup now, and find out what cut or altered this one.")
    } else if !j.warnings.is_empty() {
        base(Status::Warn, format!("{kind}: {}", j.warnings.join("; ")))
            .with("warnings", j.warnings.clone())
            .remedy("A test restore is what can vouch for these files.")
    } else {
        base(Status::Pass, format!("{kind}: {}", j.checked))
    }
}

fn integrity_finding(subj: &str, b: &Backup, passes: &[(String, MemberPass)]) -> Finding {
    let f = integrity_judged(subj, b, passes);
    // What the store read, and against what: said in the summary too, so
    // a pass carried from an earlier read is never mistaken for a full one.
    let notes: Vec<&ReadScope> = passes
        .iter()
        .filter_map(|(_, p)| p.scope.as_ref())
        .collect();
    if notes.is_empty() {
        return f;
    }
    let text = notes
        .iter()
        .map(|n| n.note.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let mut f = f.with(
        "read_scope",
        notes.iter().map(|n| json!(n)).collect::<Vec<_>>(),
    );
    f.summary = format!("{} ({text})", f.summary);
    f
}

fn integrity_judged(subj: &str, b: &Backup, passes: &[(String, MemberPass)]) -> Finding {
    let f = integrity_verdict(subj, b, passes);
    let skipped: Vec<Value> = (passes.iter())
        .flat_map(|(key, p)| p.skipped.iter().map(move |u| left_unchecked(key, u)))
        .collect();
    if skipped.is_empty() {
        f
    } else {
        f.with("skipped", skipped)
    }
}

/// A store checksum not checked (or left out), for the evidence.
fn left_unchecked(file: &str, u: &Unchecked) -> Value {
    json!({
        "file": file,
        "algorithm": u.expectation.algorithm,
        "expected": u.expectation.digest,
        "manifest": u.expectation.manifest,
        "reason": u.reason,
    })
}

/// The integrity verdict from the digests against every expectation.
fn integrity_verdict(subj: &str, b: &Backup, passes: &[(String, MemberPass)]) -> Finding {
    let mut mismatches = Vec::new();
    let mut matched = Vec::new();
    let mut uncovered = Vec::new();
    let mut unchecked = Vec::new();
    // A wrong ETag beside a matching stronger checksum of the same bytes is
    // the store misreporting (SeaweedFS's UploadPartCopy), not corruption.
    let mut only_etags_differ = true;
    let mut stronger_matched = false;
    for (key, p) in passes {
        let expected: Vec<(&Expectation, String)> = b
            .expected
            .get(key)
            .into_iter()
            .flatten()
            .chain(&p.promises)
            .map(|e| (e, p.digests.get(&e.algorithm).cloned().unwrap_or_default()))
            .chain(p.settled.iter().map(|(e, actual)| (e, actual.clone())))
            .collect();
        unchecked.extend(p.unchecked.iter().map(|u| left_unchecked(key, u)));
        if expected.is_empty() && p.unchecked.is_empty() {
            uncovered.push(key.clone());
        }
        for (e, actual) in expected {
            let etag = is_store_etag(e);
            let mut entry = json!({
                "file": key,
                "algorithm": e.algorithm,
                "expected": e.digest,
                "actual": actual,
                "manifest": e.manifest,
                "line": e.line,
            });
            if let Some(v) = &p.version_id {
                entry["version_id"] = json!(v);
            }
            if actual == e.digest {
                stronger_matched |= e.algorithm != Algorithm::Md5;
                matched.push(entry);
            } else {
                only_etags_differ &= etag;
                mismatches.push(entry);
            }
        }
    }
    let digests: Map<String, Value> = if passes.len() == 1 {
        passes[0]
            .1
            .digests
            .iter()
            .map(|(a, h)| (a.to_string(), json!(h)))
            .collect()
    } else {
        Map::new()
    };
    if !mismatches.is_empty() && only_etags_differ && stronger_matched {
        let first = &mismatches[0];
        return Finding::new(
            subj,
            Check::Integrity,
            Status::Warn,
            format!(
                "the store's {} disagrees with the bytes, but {} stronger checksum(s) of the same bytes match: a store metadata fault, not corruption",
                first["manifest"].as_str().unwrap_or("ETag"),
                matched
                    .iter()
                    .filter(|m| m["algorithm"] != json!(Algorithm::Md5))
                    .count()
            ),
        )
        .with("etag_mismatches", mismatches)
        .with("matched", matched)
        .with("unchecked", unchecked)
        .with_evidence(digests)
        .remedy("The bytes are intact; the store reports a wrong ETag for them (a known fault of some stores' server-side copies). Tools that trust the ETag will think the copy corrupt: re-copy it with a plain upload if that matters.");
    }
    if !mismatches.is_empty() {
        let first = &mismatches[0];
        return Finding::new(
            subj,
            Check::Integrity,
            Status::Fail,
            format!(
                "{} digest does not match {}{} ({} mismatch(es))",
                first["algorithm"].as_str().unwrap_or("?"),
                first["manifest"].as_str().unwrap_or("?"),
                match first["line"].as_u64() {
                    Some(0) | None => String::new(),
                    Some(n) => format!(" line {n}"),
                },
                mismatches.len()
            ) + &match first["version_id"].as_str() {
                Some(v) if !first["manifest"].as_str().unwrap_or("").contains(v) => {
                    format!(" in version {v}")
                }
                _ => String::new(),
            },
        )
        .with("mismatches", mismatches)
        .with("matched", matched)
        .with_evidence(digests)
        .remedy("The bytes differ from what was recorded when the backup was made: treat this copy as corrupt and restore from another copy; check the storage for errors.");
    }
    if !uncovered.is_empty() {
        let summary = if passes.len() == 1 {
            "not covered by any manifest or sidecar: nothing to compare the digest with".to_string()
        } else {
            format!(
                "{} of {} files not covered by any manifest",
                uncovered.len(),
                passes.len()
            )
        };
        return Finding::new(subj, Check::Integrity, Status::Warn, summary)
            .with("uncovered", uncovered)
            .with("matched", matched)
            .with_evidence(digests)
            .remedy("Write a SHA256SUMS (or .sha256 sidecar) when the backup is made, so later corruption can be proven.");
    }
    if !unchecked.is_empty() && matched.is_empty() {
        return Finding::new(
            subj,
            Check::Integrity,
            Status::Warn,
            format!(
                "{} store checksum(s) could not be checked, and nothing else vouches for the bytes: {}",
                unchecked.len(),
                unchecked[0]["reason"].as_str().unwrap_or("?")
            ),
        )
        .with("unchecked", unchecked)
        .with("matched", matched)
        .with_evidence(digests)
        .remedy("Let backproof read the part layout (s3:GetObjectAttributes, or HEAD ?partNumber), or write a SHA256SUMS when the backup is made.");
    }
    let not_checked = if unchecked.is_empty() {
        String::new()
    } else {
        format!("; {} store checksum(s) not checked", unchecked.len())
    };
    let f = Finding::new(
        subj,
        Check::Integrity,
        Status::Pass,
        format!(
            "{} digest(s) match their {}{not_checked}",
            matched.len(),
            if passes
                .iter()
                .any(|(_, p)| !p.promises.is_empty() || !p.settled.is_empty())
            {
                "manifest or the store's checksums"
            } else {
                "manifest"
            }
        ),
    )
    .with("matched", matched)
    .with_evidence(digests);
    if unchecked.is_empty() {
        f
    } else {
        f.with("unchecked", unchecked)
    }
}

/// The store's ETag (single or multipart): an MD5 some stores get wrong.
fn is_store_etag(e: &Expectation) -> bool {
    e.algorithm == Algorithm::Md5 && e.manifest.starts_with("S3 ") && e.manifest.contains("ETag")
}
