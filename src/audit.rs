//! The commands as library calls: resolve what the user named, build the
//! catalog, verify, and assemble a [`Report`]. The CLI only parses flags and
//! maps the report to an exit code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::{self, Layout, TimestampFrom, TimestampPattern};
use crate::config::Config;
use crate::finding::{Check, Finding, Status};
use crate::inspect::{self, Kind};
use crate::ledger::{self, Ledger, Sample};
use crate::policy::{self, Observed, SourceView};
use crate::progress::Progress;
use crate::report::Report;
use crate::restore::{RestoreOverrides, RestoreSession, RestoreSpec, Which};
use crate::source::{self, S3Options, SourceError, Target};
use crate::verify::{self, VerifyOptions};

/// What to restore of one target, after it is verified.
struct RestoreJob<'a> {
    session: &'a mut RestoreSession,
    spec: &'a RestoreSpec,
    source_name: String,
    which: Which,
    /// Row counts of the previous restore of this source, from the history.
    previous: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Verifies one resolved target; with a sample plan, only the backups the
/// ledger says are due tonight are read. With a restore job, the chosen
/// dumps are then restored.
fn verify_target(
    target: &Target,
    pattern: &TimestampPattern,
    opts: &VerifyOptions,
    show_progress: bool,
    sample: Option<(&Ledger, Sample)>,
    restore: Option<RestoreJob<'_>>,
) -> Result<verify::Verified, SourceError> {
    let (artifacts, problems) = target.source.list_scoped(target.only.as_deref())?;
    let mut catalog = catalog::build(
        target.source.as_ref(),
        artifacts,
        pattern,
        target.only.as_deref(),
    );
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
                carried.push(ledger::carried(subject, &ledger[subject], sample));
            }
        }
    }
    let total = catalog.backups.iter().map(|b| b.size).sum();
    let progress = Progress::bytes(total, show_progress);
    let mut verified = verify::verify_catalog(target.source.as_ref(), &catalog, opts, &progress);
    progress.finish();
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
    verified.findings.extend(carried);
    verified
        .findings
        .extend(problems.iter().map(SourceError::finding));
    if target.only.is_none() {
        verified.check_store(target.source.as_ref());
    }
    if let Some(job) = restore {
        let restores = restore_catalog(target, &catalog.backups, &verified, job);
        verified.findings.extend(restores);
    }
    Ok(verified)
}

/// Restores the verified dumps a job asks for: every one, or the newest.
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
    verified: &verify::Verified,
    job: RestoreJob<'_>,
) -> Vec<Finding> {
    let kinds: BTreeMap<&str, Kind> = verified
        .backups
        .iter()
        .map(|r| (r.key.as_str(), r.kind))
        .collect();
    let mut structure: BTreeMap<&str, Status> = BTreeMap::new();
    for f in &verified.findings {
        if f.check == Check::Structure {
            let e = structure.entry(f.subject.as_str()).or_insert(Status::Pass);
            *e = (*e).max(f.status);
        }
    }
    let mut chosen: Vec<(&catalog::Backup, Kind)> = backups
        .iter()
        .filter_map(|b| {
            let kind = kinds.get(b.key.as_str()).copied()?;
            crate::restore::is_restorable(kind, b, job.spec.engine).then_some((b, kind))
        })
        .collect();
    if job.which == Which::Newest {
        chosen.sort_by(|a, b| {
            b.0.timestamp
                .cmp(&a.0.timestamp)
                .then(a.0.key.cmp(&b.0.key))
        });
        chosen.truncate(1);
    }
    let mut out = Vec::new();
    for (b, kind) in chosen {
        let subject = target.source.subject(&b.key);
        let damaged = structure.get(subject.as_str()) == Some(&Status::Fail);
        if damaged && kind.format == inspect::Format::PgTar {
            out.push(
                Finding::new(
                    subject,
                    Check::Restore,
                    Status::Fail,
                    "not restored: failed structure check (pg_restore can hang forever on a damaged tar archive)",
                )
                .with("source", job.source_name.clone())
                .remedy("The dump is damaged: restore from an earlier backup or a copy, and fix the backup job."),
            );
            continue;
        }
        out.push(job.session.restore(
            target.source.as_ref(),
            b,
            kind,
            job.spec,
            &job.source_name,
            job.previous.as_ref(),
        ));
    }
    out
}

/// `backproof verify PATH...`: no config needed.
/// With `restore`, every restorable dump found is also restored (one
/// scratch instance per engine shared by all of them).
pub fn verify_paths(
    paths: &[PathBuf],
    pattern: &TimestampPattern,
    opts: &VerifyOptions,
    s3: &S3Options,
    show_progress: bool,
    restore: Option<&RestoreOverrides>,
) -> Report {
    let started = Utc::now();
    let mut backups = Vec::new();
    let mut findings = Vec::new();
    let mut session = restore.map(|o| RestoreSession::new(o.clone()));
    let spec = RestoreSpec::default();
    for path in paths {
        let job = session.as_mut().map(|session| RestoreJob {
            session,
            spec: &spec,
            source_name: path.display().to_string(),
            which: Which::All,
            previous: None,
        });
        match source::resolve(path, s3)
            .and_then(|t| verify_target(&t, pattern, opts, show_progress, None, job))
        {
            Ok(v) => {
                if v.backups.is_empty() && v.findings.is_empty() {
                    findings.push(
                        Finding::new(
                            path.display().to_string(),
                            Check::Source,
                            Status::Warn,
                            "no backups found",
                        )
                        .remedy("Point backproof at the directory the backups are written to."),
                    );
                }
                backups.extend(v.backups);
                findings.extend(v.findings);
            }
            Err(e) => findings.push(e.finding()),
        }
    }
    if let Some(s) = session.as_mut() {
        s.finish();
    }
    let sources = paths.iter().map(|p| p.display().to_string()).collect();
    Report::new("verify", started, sources, backups, findings)
}

/// `backproof run`: every configured source (and its copy), then the
/// policies on what was found. Sources with a `[sources.restore]` section
/// get a test restore; `history` supplies the previous restore's row counts.
pub fn run_config(
    config: &Config,
    opts: &VerifyOptions,
    s3: &S3Options,
    show_progress: bool,
    sample: Option<(&Ledger, Sample)>,
    history: Option<&Path>,
) -> Report {
    let started = Utc::now();
    let mut backups = Vec::new();
    let mut findings = Vec::new();
    let mut session = RestoreSession::new(RestoreOverrides::default());
    let mut observed: BTreeMap<String, SourceView> = BTreeMap::new();
    // Restore promises look back further than tonight.
    let wants_restores = config
        .checks
        .iter()
        .any(|c| matches!(c, policy::CheckDef::Restore { .. }));
    let past_restores = history
        .filter(|h| wants_restores && crate::history::exists(h))
        .and_then(|h| crate::history::History::open(h).ok())
        .and_then(|h| h.findings_of("restore").ok())
        .unwrap_or_default();
    for s in &config.sources {
        let target = match source::open_location(&s.path, s3) {
            Ok(source) => Target { source, only: None },
            Err(e) => {
                findings.push(e.finding());
                continue;
            }
        };
        let mut view = SourceView {
            location: target.source.location(),
            storage: storage_of(&s.path),
            region: s.region.clone().or_else(|| target.source.region()),
            account: s.account.clone(),
            is_s3: source::is_s3(&s.path.to_string_lossy()),
            copy: s.copy.as_ref().map(|c| c.display().to_string()),
            ..SourceView::default()
        };
        if let Some(copy) = &s.copy {
            let parity = source::open_location(copy, s3).and_then(|dst| {
                crate::compare::compare_stores(target.source.as_ref(), dst.as_ref(), opts)
            });
            match &parity {
                Ok(p) => findings.extend(p.findings.iter().cloned()),
                Err(e) => findings.push(e.finding()),
            }
            view.parity = Some(parity.map(|p| p.facts));
        }
        let job = s.restore.as_ref().map(|spec| RestoreJob {
            session: &mut session,
            spec,
            source_name: s.name.clone(),
            which: spec.which,
            previous: history.and_then(|h| crate::restore::previous_row_counts(h, &s.name)),
        });
        match verify_target(
            &target,
            &config.pattern_for(s),
            opts,
            show_progress,
            sample,
            job,
        ) {
            Ok(v) => {
                if v.catalogued.is_empty() {
                    findings.push(
                        Finding::new(
                            target.source.location(),
                            Check::Source,
                            Status::Fail,
                            format!("source {:?} holds no backups", s.name),
                        )
                        .remedy("The backup job may not be running or may write elsewhere."),
                    );
                }
                view.backups = observe(&v);
                view.restores.extend(
                    v.findings
                        .iter()
                        .filter(|f| f.check == Check::Restore)
                        .map(|f| {
                            restore_seen(started, &f.subject, f.status, &f.summary, &f.evidence)
                        }),
                );
                view.bucket = v.store.bucket.clone();
                backups.extend(v.backups);
                findings.extend(v.findings);
            }
            Err(e) => findings.push(e.finding()),
        }
        view.restores.extend(
            past_restores
                .iter()
                .filter(|p| p.evidence["source"] == s.name.as_str())
                .map(|p| {
                    let status =
                        serde_json::from_value(p.status.as_str().into()).unwrap_or(Status::Error);
                    let evidence = p.evidence.as_object().cloned().unwrap_or_default();
                    restore_seen(p.at, &p.subject, status, &p.summary, &evidence)
                }),
        );
        observed.insert(s.name.clone(), view);
    }
    session.finish();
    findings.extend(policy::evaluate(&config.checks, &observed, started));
    let sources = config
        .sources
        .iter()
        .map(|s| s.path.display().to_string())
        .collect();
    Report::new("run", started, sources, backups, findings)
}

/// What policies need of a source's verification: each backup with the
/// worst of its integrity and structure verdicts.
fn observe(v: &verify::Verified) -> Vec<Observed> {
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

/// A restore finding as the restore promise sees it.
fn restore_seen(
    at: DateTime<Utc>,
    subject: &str,
    status: Status,
    summary: &str,
    evidence: &serde_json::Map<String, serde_json::Value>,
) -> policy::RestoreSeen {
    let secs = |k: &str| evidence.get(k).and_then(|v| v.as_f64());
    policy::RestoreSeen {
        at,
        subject: subject.to_string(),
        status,
        summary: summary.to_string(),
        seconds: secs("restore_seconds").map(|r| r + secs("sanity_seconds").unwrap_or(0.0)),
    }
}

/// The storage a source lives on, for separation checks: its bucket, or
/// the filesystem (device) of a local directory.
fn storage_of(path: &Path) -> Option<String> {
    let text = path.to_string_lossy();
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

/// One line of `backproof ls`.
#[derive(Debug, Serialize)]
pub struct Listed {
    pub path: String,
    pub kind: Kind,
    pub layout: Layout,
    pub timestamp: DateTime<Utc>,
    pub timestamp_from: TimestampFrom,
    pub age_hours: f64,
    pub size: u64,
    pub files: usize,
    /// Checksums that manifests promise: "sha256 (SHA256SUMS)".
    pub checksums: Vec<String>,
}

/// `backproof ls PATH`: what backups are there, newest first. Reads only the
/// first bytes of each file to tell its kind.
pub fn list_path(
    path: &Path,
    pattern: &TimestampPattern,
    s3: &S3Options,
) -> Result<Vec<Listed>, SourceError> {
    let target = source::resolve(path, s3)?;
    let (artifacts, _unreadable) = target.source.list_scoped(target.only.as_deref())?;
    let catalog = catalog::build(
        target.source.as_ref(),
        artifacts,
        pattern,
        target.only.as_deref(),
    );
    let now = Utc::now();
    let mut out = Vec::new();
    for b in &catalog.backups {
        let kind = match b.layout {
            Layout::PgDirectory => Kind {
                format: inspect::Format::PgToc,
                compression: None,
            },
            Layout::File => {
                let mut head = vec![0u8; 64 * 1024];
                let n = target
                    .source
                    .read_at(&b.members[0], 0, &mut head)
                    .unwrap_or(0);
                inspect::sniff(&head[..n], b.members[0].file_name())
            }
        };
        let mut checksums: Vec<String> = b
            .expected
            .values()
            .flatten()
            .map(|e| {
                format!(
                    "{} ({})",
                    e.algorithm,
                    e.manifest.rsplit('/').next().unwrap_or(&e.manifest)
                )
            })
            .collect();
        checksums.sort();
        checksums.dedup();
        out.push(Listed {
            path: target.source.subject(&b.key),
            kind,
            layout: b.layout,
            timestamp: b.timestamp,
            timestamp_from: b.timestamp_from,
            age_hours: (now - b.timestamp).num_seconds() as f64 / 3600.0,
            size: b.size,
            files: b.members.len(),
            checksums,
        });
    }
    out.sort_by(|a, b| b.timestamp.cmp(&a.timestamp).then(a.path.cmp(&b.path)));
    Ok(out)
}

/// `ls` as a table, newest first.
pub fn render_listing(list: &[Listed]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<17} {:<17} {:>10} {:>8}  {:<24} PATH",
        "KIND", "TIMESTAMP", "SIZE", "AGE", "CHECKSUMS"
    );
    for l in list {
        let stamp = l.timestamp.format("%Y-%m-%d %H:%M").to_string()
            + if l.timestamp_from == TimestampFrom::Mtime {
                "*"
            } else {
                ""
            };
        let age = if l.age_hours < 48.0 {
            format!("{:.0}h", l.age_hours)
        } else {
            format!("{:.0}d", l.age_hours / 24.0)
        };
        let sums = if l.checksums.is_empty() {
            "-".to_string()
        } else {
            l.checksums.join(", ")
        };
        let _ = writeln!(
            out,
            "{:<17} {:<17} {:>10} {:>8}  {:<24} {}",
            l.kind.to_string(),
            stamp,
            crate::report::text::human_bytes(l.size),
            age,
            sums,
            l.path
        );
    }
    if list
        .iter()
        .any(|l| l.timestamp_from == TimestampFrom::Mtime)
    {
        out.push_str("* timestamp from modification time: no date found in the name\n");
    }
    out
}

/// Held for the whole of `backproof run`: a second run against the same
/// history exits 2 instead of racing the first. The OS drops the lock when
/// the process dies, so a crash leaves no stale lock behind.
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    pub fn acquire(path: &Path) -> Result<RunLock, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| format!("cannot open lock {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(format!(
                "another backproof run holds {}; not starting a second one",
                path.display()
            )),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(format!("cannot lock {}: {e}", path.display()))
            }
        }
    }
}

/// The lock file that goes with a history location.
pub fn lock_path(history: &Path) -> PathBuf {
    let text = history.to_string_lossy();
    if crate::history::is_url(&text) {
        // A database history: runs on this host serialise on a lock file
        // named after it (the history's own table lock orders appends).
        use sha2::Digest;
        let id = hex::encode(sha2::Sha256::digest(text.as_bytes()));
        return std::env::temp_dir().join(format!("backproof-history-{}.lock", &id[..16]));
    }
    let mut name = history
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".lock");
    history.with_file_name(name)
}

/// `backproof report --since`: the compliance export from the history.
pub fn compliance_report(
    history: &Path,
    since: DateTime<Utc>,
) -> Result<crate::compliance::Compliance, String> {
    if !crate::history::exists(history) {
        return Err(format!(
            "no history at {}: nothing has been recorded there yet",
            history.display()
        ));
    }
    let h = crate::history::History::open(history).map_err(|e| e.to_string())?;
    let chain = h.verify().map_err(|e| e.to_string())?;
    let runs = h.runs_since(since).map_err(|e| e.to_string())?;
    Ok(crate::compliance::build(&runs, &chain, since))
}

/// The ledger for `--sample`, from the history (empty when there is none yet).
pub fn load_ledger(history: &Path) -> Result<Ledger, String> {
    if !crate::history::exists(history) {
        return Ok(Ledger::new());
    }
    crate::history::History::open(history)
        .and_then(|h| h.ledger())
        .map_err(|e| e.to_string())
}
