//! `backproof run`: the nightly job. Every configured source (and its copy)
//! is audited, then the promises are judged on what was found; reports are
//! written atomically and the run is appended to the history. The history is
//! read once, up front, for everything the run needs of earlier runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;

use super::CommandError;
use super::fleet::{self as judging, When};
use super::lock::{RunLock, lock_path};
use super::target::{RestoreJob, observe, storage_of, verify_target};
use crate::config::Config;
use crate::demo;
use crate::digest::Algorithm;
use crate::finding::{Check, Finding, Status};
use crate::fleet::{self, FleetMark, ShardPart};
use crate::history::{self, History, PastRestore};
use crate::ledger::{Ledger, Sample};
use crate::notify::{self, NotifyConfig};
use crate::policy::{self, RestoreSeen, SourceView};
use crate::report::Report;
use crate::restore::{RestoreOverrides, RestoreSession};
use crate::shard::{Shard, ShardSpec};
use crate::source::{self, S3Options, Target};
use crate::verify::VerifyOptions;

/// Where the run's config comes from.
pub enum ConfigFrom {
    File(PathBuf),
    /// The demo corpus, written under this directory (history beside it
    /// unless one is named).
    Demo(PathBuf),
}

pub struct NightlyRequest {
    pub config: ConfigFrom,
    /// `None`: the demo's own history, else the default location.
    pub history: Option<PathBuf>,
    /// Overrides the config's report.dir.
    pub report_dir: Option<PathBuf>,
    /// No backup is started after this budget.
    pub deadline: Option<Duration>,
    pub sample: Option<Sample>,
    /// From the command line; the config's `[defaults]` fill in what is unset.
    pub jobs: Option<usize>,
    pub digests: Vec<Algorithm>,
    pub s3: S3Options,
    pub show_progress: bool,
    /// A webhook for the run's summary; overrides the config's `[notify] url`.
    pub notify: Option<String>,
    /// A shard of a fleet run, or the judgement of one.
    pub fleet: Option<FleetRole>,
    /// At most this many restore sessions with scratch servers at once on
    /// this machine.
    pub restore_slots: Option<usize>,
}

/// This process's part in a fleet run.
#[derive(Clone, Debug)]
pub enum FleetRole {
    /// Read the backups this shard owns and record them; judge the fleet
    /// run if this shard is the last to report. `auto` and the group's
    /// default come from the engine's variables.
    Shard {
        spec: ShardSpec,
        group: Option<String>,
    },
    /// Judge the fleet run: wait up to `wait` for shards that have not
    /// reported, then judge it, `error` naming those still missing.
    Finalize { group: String, wait: Duration },
}

/// The run, what was written and whether it was recorded: each of the last
/// two can fail on its own (exit 2) without losing the report.
pub struct Nightly {
    pub report: Report,
    pub written: Result<Vec<PathBuf>, CommandError>,
    pub recorded: Result<(), CommandError>,
    /// Lines for stderr after the report (the demo's closing story).
    pub closing: Vec<String>,
}

/// What the run needs of earlier runs, read in one pass.
#[derive(Default)]
struct Past {
    /// The verification ledger, when the history exists and the run needs
    /// it (`--sample`, or an `ebs://` source read incrementally).
    ledger: Option<Ledger>,
    empty: Ledger,
    restores: Vec<PastRestore>,
}

pub fn nightly(req: &NightlyRequest) -> Result<Nightly, CommandError> {
    let started = Instant::now();
    let history = match (&req.history, &req.config) {
        (Some(h), _) => h.clone(),
        (None, ConfigFrom::Demo(dir)) => dir.join("history.sqlite"),
        (None, ConfigFrom::File(_)) => history::default_location(),
    };
    if let (Some(FleetRole::Finalize { group, wait }), ConfigFrom::File(path)) =
        (&req.fleet, &req.config)
    {
        return finalize(req, path, &history, group, *wait);
    }
    let shard = match &req.fleet {
        Some(FleetRole::Shard { spec, group }) => {
            let env = |k: &str| std::env::var(k).ok();
            let (shard, from) = spec.resolve(env)?;
            let group = group
                .clone()
                .or_else(|| crate::shard::group_from_engine(env))
                .ok_or(CommandError::NoRunGroup)?;
            Some((shard, from, group))
        }
        _ => None,
    };
    let shard = shard.as_ref().map(|(s, f, g)| (*s, *f, g.as_str()));
    let _lock = RunLock::acquire(&match shard {
        Some((s, _, group)) => super::lock::shard_lock_path(&history, group, s),
        None => lock_path(&history),
    })?;
    let now = Utc::now();
    let mut demo = match &req.config {
        ConfigFrom::Demo(dir) => {
            if req.history.is_none() {
                demo::forget_history(&history).map_err(CommandError::Demo)?;
            }
            let week = demo::Week::prepare(dir, now).map_err(CommandError::Demo)?;
            Some((week, demo::Servers::find()))
        }
        ConfigFrom::File(_) => None,
    };
    let config = match (&req.config, &demo) {
        (_, Some((week, servers))) => week.config(servers),
        (ConfigFrom::File(path), None) => Config::load(path)?,
        (ConfigFrom::Demo(_), None) => unreachable!("the demo week is prepared above"),
    };
    let mut opts = VerifyOptions::default();
    if let Some(j) = req.jobs.or(config.defaults.jobs) {
        opts.jobs = j.max(1);
    }
    // Regression: `[defaults] digests` used to be validated and then ignored.
    opts.digests = if req.digests.is_empty() {
        config.defaults.digests.clone()
    } else {
        req.digests.clone()
    };
    opts.deadline = req.deadline.map(|d| started + d);
    if let Some((week, _)) = &mut demo {
        replay_week(week, &opts, &req.s3, &history)?;
    }
    let past = read_past(&config, &history, req.sample.is_some())?;
    super::record_interruptions(
        &history,
        if shard.is_some() {
            fleet::SHARD_COMMAND
        } else {
            "run"
        },
        config
            .sources
            .iter()
            .map(|s| source::location_name(&s.path))
            .collect(),
    );
    let notify = notify_config(req, &config);
    // Read before this run is recorded: a recovery is told from the last one.
    let previous = match &notify {
        Some(_) if history::exists(&history) => History::open(&history)?.last_exit_code("run")?,
        _ => None,
    };
    let plan = match (req.sample, &past.ledger) {
        (Some(s), Some(l)) => Some((l, s)),
        (Some(s), None) => Some((&past.empty, s)),
        (None, _) => None,
    };
    let Ran {
        mut report,
        views,
        unread,
    } = run_config(
        &config,
        &opts,
        &req.s3,
        req.show_progress,
        plan,
        past.ledger.as_ref(),
        &past.restores,
        Utc::now(),
        shard.map_or(Shard::WHOLE, |s| s.0),
        req.restore_slots,
    );
    if let Some((shard, from, group)) = shard {
        tracing::info!(
            shard = %shard,
            from = from.variable().unwrap_or("--shard"),
            group,
            "fleet shard"
        );
        report.command = fleet::SHARD_COMMAND.to_string();
        report.fleet = Some(FleetMark::Shard(ShardPart {
            group: group.to_string(),
            shard: shard.index,
            of: shard.count,
            index_from: from.variable().unwrap_or("--shard").to_string(),
            views,
            unread,
        }));
    }
    if let Some((_, servers)) = &demo {
        report = with_findings(report, demo::missing_servers(servers));
    }
    // A signal cut the run short: no report; the history records it as
    // interrupted (the handler does).
    crate::interrupt::halt_if_interrupted();
    let dir = req
        .report_dir
        .clone()
        .unwrap_or_else(|| config.report.dir.clone());
    // A shard's own reports go beside the fleet run's, one directory each.
    let shard_dir = match shard {
        Some((s, _, group)) => dir
            .join(format!("fleet-{group}"))
            .join(format!("shard-{}", s.index)),
        None => dir.clone(),
    };
    let mut written = crate::report::write_all(&report, &shard_dir, &config.report.formats)
        .map_err(|source| CommandError::Reports {
            dir: shard_dir.clone(),
            source,
        });
    let recorded = super::record(&report, &history);
    // The last shard to report judges the fleet run (under the history's
    // lock, so two shards finishing together judge it once).
    // The webhook hears of the fleet run, from the shard that judged it;
    // never of a shard's part.
    let mut judged = None;
    if let (Some((_, _, group)), Ok(())) = (shard, &recorded) {
        let now = History::open(&history)
            .map_err(CommandError::from)
            .and_then(|mut h| {
                let past = h.restores()?;
                judge_fleet(&mut h, &past, group, &config, When::Complete)
            });
        match now {
            Ok(history::Judged::Now(final_report)) => {
                if let Err(e) =
                    crate::report::write_all(&final_report, &dir, &config.report.formats)
                {
                    tracing::warn!(
                        "fleet run {group}: reports not written to {}: {e}",
                        dir.display()
                    );
                }
                tracing::info!(
                    group,
                    exit_code = final_report.exit_code(),
                    "fleet run judged by the last shard"
                );
                judged = Some(final_report);
            }
            Ok(_) => tracing::info!(group, "fleet run: not judged by this shard"),
            Err(e) => tracing::warn!("fleet run {group}: not judged: {e}"),
        }
    }
    match (notify, shard, &judged) {
        (Some(n), None, _) => send_notification(&n, &report, previous),
        (Some(n), Some(_), Some(fleet_run)) => send_notification(&n, fleet_run, previous),
        _ => {}
    }
    let mut closing = Vec::new();
    if let Some((_, servers)) = &demo {
        let html = match (
            &recorded,
            demo_html(&dir.join("report.html"), &history, now),
        ) {
            (Ok(()), Ok(p)) => Some(p),
            (_, Err(e)) => {
                written = Err(e);
                None
            }
            _ => None,
        };
        if let (Ok(paths), Some(p)) = (&mut written, &html) {
            paths.push(p.clone());
        }
        closing = demo::closing(&report, servers, html.as_deref());
    }
    Ok(Nightly {
        report,
        written,
        recorded,
        closing,
    })
}

/// For a cloud source, the snapshots in each region its region_copy
/// promises name, listed once per region.
fn region_copies(
    config: &Config,
    name: &str,
    path: &Path,
    s3: &S3Options,
) -> BTreeMap<String, Result<Vec<source::facts::CloudSnapshot>, source::SourceError>> {
    let mut out = BTreeMap::new();
    for c in &config.checks {
        if let policy::CheckDef::RegionCopy { source, region, .. } = c
            && source == name
            && !out.contains_key(region)
        {
            let listed = source::aws::copies::in_region(&path.to_string_lossy(), s3, region);
            out.insert(region.clone(), listed);
        }
    }
    out
}

/// The demo's six earlier nights, each audited as it was that night (only
/// the backups made by then present, the clock moved back a day per night)
/// and recorded, so that tonight's run is the seventh night of the history.
/// Test restores run tonight only.
fn replay_week(
    week: &mut demo::Week,
    opts: &VerifyOptions,
    s3: &S3Options,
    history: &Path,
) -> Result<(), CommandError> {
    let config = week.config(&demo::Servers::none());
    for k in (1..demo::NIGHTS).rev() {
        week.night(k).map_err(CommandError::Demo)?;
        let at = week.audited(k);
        let real = Utc::now();
        let Ran { report: mut r, .. } = run_config(
            &config,
            opts,
            s3,
            false,
            None,
            None,
            &[],
            at,
            Shard::WHOLE,
            None,
        );
        crate::interrupt::halt_if_interrupted();
        r.finished_at = at + (r.finished_at - real);
        super::record(&r, history)?;
    }
    week.night(0).map_err(CommandError::Demo)
}

/// The compliance export of the demo week, as HTML, beside the reports.
fn demo_html(
    path: &Path,
    history: &Path,
    now: chrono::DateTime<Utc>,
) -> Result<PathBuf, CommandError> {
    let e = super::export::export(&super::export::ExportRequest {
        history: history.to_path_buf(),
        since: now - chrono::Duration::days(demo::NIGHTS + 1),
        format: crate::report::Format::Html,
        source: None,
    })?;
    crate::report::write_atomically(path, e.text.as_bytes()).map_err(|source| {
        CommandError::Write {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(path.to_path_buf())
}

/// The report with more findings, its summary recounted.
fn with_findings(r: Report, more: Vec<Finding>) -> Report {
    if more.is_empty() {
        return r;
    }
    let mut findings = r.findings;
    findings.extend(more);
    let mut out = Report::new(&r.command, r.started_at, r.sources, r.backups, findings);
    out.summary.bytes_read = r.summary.bytes_read;
    out.finished_at = r.finished_at;
    out.source_names = r.source_names;
    out.config = r.config;
    out
}

/// `--notify URL` (with the config's `on` and `body`, if any), else `[notify]`.
fn notify_config(req: &NightlyRequest, config: &Config) -> Option<NotifyConfig> {
    let mut n = config.notify.clone();
    if let Some(url) = &req.notify {
        n = Some(NotifyConfig {
            url: url.clone(),
            ..n.unwrap_or_else(|| NotifyConfig::for_url(url))
        });
    }
    n
}

/// After the run is recorded; never changes its exit code.
fn send_notification(n: &NotifyConfig, report: &Report, previous: Option<i32>) {
    let Some(when) = notify::occasion(&n.on, report.exit_code(), previous) else {
        return;
    };
    let body = notify::body(report, when, &n.url, n.body);
    match notify::send(&n.url, &body) {
        Ok(attempts) => tracing::info!(
            url = %notify::shown(&n.url),
            attempts,
            "notification sent"
        ),
        Err(e) => tracing::warn!("notification not sent: {e}"),
    }
}

/// The ledger (for `--sample` and incremental EBS reads) and earlier restores (for restore promises
/// and the row-drop check), from one open of the history; nothing when it
/// does not exist yet.
fn read_past(config: &Config, location: &Path, sample: bool) -> Result<Past, CommandError> {
    let wants_restores = config.sources.iter().any(|s| s.restore.is_some())
        || config
            .checks
            .iter()
            .any(|c| matches!(c, policy::CheckDef::Restore { .. }));
    // EBS snapshots are read incrementally against earlier verifications.
    let incremental = config
        .sources
        .iter()
        .any(|s| s.path.to_string_lossy().starts_with("ebs://"));
    if !history::exists(location) || !(sample || wants_restores || incremental) {
        return Ok(Past::default());
    }
    let h = History::open(location)?;
    Ok(Past {
        ledger: if sample || incremental {
            Some(h.ledger()?)
        } else {
            None
        },
        empty: Ledger::new(),
        restores: if wants_restores {
            h.restores()?
        } else {
            Vec::new()
        },
    })
}

/// Every configured source (and its copy), then the policies on what was
/// found. Sources with a `[sources.restore]` section get a test restore.
/// A shard of a fleet run reads its own part and judges no promise: it
/// returns what the promises need, for the fleet run's judgement.
#[allow(clippy::too_many_arguments)] // one run, its inputs named
fn run_config(
    config: &Config,
    opts: &VerifyOptions,
    s3: &S3Options,
    show_progress: bool,
    sample: Option<(&Ledger, Sample)>,
    history: Option<&Ledger>,
    past_restores: &[PastRestore],
    started: chrono::DateTime<Utc>,
    shard: Shard,
    restore_slots: Option<usize>,
) -> Ran {
    let mut unread = Vec::new();
    let mut backups = Vec::new();
    let mut findings = Vec::new();
    let mut store_bytes = 0;
    let mut session = RestoreSession::new(RestoreOverrides {
        slots: restore_slots,
        ..RestoreOverrides::default()
    });
    let mut observed: BTreeMap<String, SourceView> = BTreeMap::new();
    for s in &config.sources {
        let target = match source::open_location(&s.path, s3) {
            Ok(source) => Target::new(source, None).sharded(shard),
            Err(e) => {
                findings.push(e.finding());
                unread.push(s.name.clone());
                continue;
            }
        };
        // Earlier restores of this source, newest first: same name and same
        // location, so another config's "db" never stands in for this one.
        let location = target.source.location();
        let owns_source = shard.owns_source(&location);
        let earlier: Vec<&PastRestore> = past_restores
            .iter()
            .filter(|p| {
                p.facts.source.as_deref() == Some(s.name.as_str())
                    && p.facts.location.as_deref() == Some(location.as_str())
            })
            .collect();
        let mut view = SourceView {
            location,
            storage: storage_of(&s.path),
            region: s.region.clone().or_else(|| target.source.region()),
            account: s.account.clone(),
            is_s3: source::is_s3(&s.path.to_string_lossy()),
            copy: s.copy.as_ref().map(|c| c.display().to_string()),
            timestamp_pattern: config.pattern_for(s),
            ..SourceView::default()
        };
        if let Some(copy) = s.copy.as_ref().filter(|_| owns_source) {
            let parity = source::open_location(copy, s3).and_then(|dst| {
                crate::compare::compare_stores(
                    target.source.as_ref(),
                    dst.as_ref(),
                    opts,
                    Shard::WHOLE,
                )
            });
            match &parity {
                Ok(p) => {
                    store_bytes += p.bytes_read;
                    findings.extend(p.findings.iter().cloned())
                }
                Err(e) => findings.push(e.finding()),
            }
            view.parity = Some(parity.map(|p| p.facts));
        }
        let job = s.restore.as_ref().map(|spec| RestoreJob {
            session: &mut session,
            spec,
            source_name: s.name.clone(),
            which: spec.which,
            previous: earlier.iter().find_map(|p| p.facts.row_counts.clone()),
        });
        let archive = s
            .wal_archive
            .as_ref()
            .filter(|_| owns_source)
            .and_then(|a| {
                super::target::audit_wal_archive(a, s3, opts)
                    .map_err(|e| findings.push(e.finding()))
                    .ok()
            });
        match verify_target(
            &target,
            &config.pattern_for(s),
            &Config::filter_for(s),
            opts,
            show_progress,
            sample,
            history,
            job,
            archive.as_ref(),
        ) {
            Ok(audited) => {
                let v = audited.verified;
                // Across every shard: RDS snapshots are catalogued from the
                // provider's listing, with nothing listed to read.
                if audited.owns_source && audited.listed == 0 && v.catalogued.is_empty() {
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
                view.restores.extend(audited.restores.iter().map(|r| {
                    let f = &r.finding;
                    RestoreSeen::of(started, &f.subject, f.status, &f.summary, &r.facts)
                }));
                view.bucket = v.store.bucket.clone();
                view.physical = audited.owns_source.then(|| v.physical.clone());
                if let Some(cloud) = audited.cloud {
                    view.copies = region_copies(config, &s.name, &s.path, s3);
                    view.cloud = Some(cloud);
                }
                store_bytes += v.store_bytes_read;
                backups.extend(v.backups);
                findings.extend(v.findings);
            }
            Err(e) => {
                findings.push(e.finding());
                unread.push(s.name.clone());
            }
        }
        // A fleet run adds earlier restores once, when it is judged.
        if shard.is_whole() {
            view.restores.extend(earlier.iter().map(|p| p.seen()));
        }
        if let Some(a) = archive {
            findings.extend(a.findings);
            backups.extend(a.backups);
        }
        observed.insert(s.name.clone(), view);
    }
    session.finish();
    if shard.is_whole() {
        findings.extend(policy::evaluate(&config.checks, &observed, started));
    }
    let mut report = super::run_report(config, started, backups, findings);
    report.summary.bytes_read += store_bytes;
    Ran {
        report,
        views: observed,
        unread,
    }
}

/// A run's report, what its promises saw of each source, and the sources
/// it could not list (a shard's part of them is missing from the union).
struct Ran {
    report: Report,
    views: BTreeMap<String, SourceView>,
    unread: Vec<String>,
}

/// Judges fleet run `group` from the shards recorded so far, once.
fn judge_fleet(
    h: &mut History,
    past: &[PastRestore],
    group: &str,
    config: &Config,
    when: When,
) -> Result<history::Judged, CommandError> {
    Ok(h.judge_fleet(group, |shards| {
        judging::judge(group, shards, config, past, when)
    })?)
}

/// `run --finalize GROUP`: the fleet run judged once every shard has
/// reported, or, after `wait`, with the missing shards named as errors.
/// A fleet run already judged complete is shown as it was recorded.
fn finalize(
    req: &NightlyRequest,
    config_path: &Path,
    history: &Path,
    group: &str,
    wait: Duration,
) -> Result<Nightly, CommandError> {
    let config = Config::load(config_path)?;
    let notify = notify_config(req, &config);
    // Read once, before the wait: the earlier restores and (a recovery is
    // told from the last run) the previous exit code.
    let mut h = History::open(history)?;
    let previous = match &notify {
        Some(_) => h.last_exit_code("run")?,
        None => None,
    };
    let past = h.restores()?;
    let until = Instant::now() + wait;
    let report = loop {
        let when = if Instant::now() >= until {
            When::Now
        } else {
            When::Complete
        };
        match judge_fleet(&mut h, &past, group, &config, when)? {
            history::Judged::Now(r) => {
                if let Some(n) = &notify {
                    send_notification(n, &r, previous);
                }
                break r;
            }
            history::Judged::Before(r) => {
                tracing::info!(group, "fleet run already judged complete");
                break r;
            }
            history::Judged::NotYet => {
                crate::interrupt::halt_if_interrupted();
                let left = until.saturating_duration_since(Instant::now());
                std::thread::sleep(left.min(Duration::from_secs(2)));
            }
        }
    };
    let dir = req
        .report_dir
        .clone()
        .unwrap_or_else(|| config.report.dir.clone());
    let written =
        crate::report::write_all(&report, &dir, &config.report.formats).map_err(|source| {
            CommandError::Reports {
                dir: dir.clone(),
                source,
            }
        });
    Ok(Nightly {
        report,
        written,
        recorded: Ok(()),
        closing: Vec::new(),
    })
}
