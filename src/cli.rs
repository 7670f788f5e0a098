//! The command-line definition: flags as clap parses them, and their
//! translation into the library's request structs. No I/O happens here;
//! `src/main.rs` calls the commands and maps outcomes to exit codes.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::commands::nightly::{ConfigFrom, FleetRole, NightlyRequest};
use crate::commands::verify::VerifyRequest;
use crate::digest::Algorithm;
use crate::history;
use crate::ledger::Sample;
use crate::logging::{LevelFilter, LogFormat};
use crate::report::Format;
use crate::restore::{PitrTarget, RestoreOverrides};
use crate::shard::{Shard, ShardSpec};
use crate::source::S3Options;
use crate::verify::VerifyOptions;

/// A period that cannot be read, or reads two ways.
#[derive(Debug, thiserror::Error)]
pub enum PeriodError {
    #[error(
        "{0:?} is ambiguous: \"m\" reads as minutes; write \"90d\" or \"3months\" for months, \"{1}min\" for minutes"
    )]
    Ambiguous(String, String),
    #[error("{source}; {forms}", forms = crate::tomlerr::DURATION_FORMS)]
    Bad {
        #[from]
        source: humantime::DurationError,
    },
}

/// `report --since`: an age such as "90d"; a bare "m" is refused, since an
/// auditor asking for "3m" means months far more often than minutes.
pub fn parse_period(s: &str) -> Result<Duration, PeriodError> {
    let t = s.trim();
    if let Some(n) = t.strip_suffix('m')
        && n.trim().chars().all(|c| c.is_ascii_digit())
        && !n.trim().is_empty()
    {
        return Err(PeriodError::Ambiguous(s.to_string(), n.trim().to_string()));
    }
    Ok(humantime::parse_duration(t)?)
}

#[derive(Parser)]
#[command(
    name = "backproof",
    version,
    about = "Proves that backups can be restored, and keeps the evidence."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// Backup files, directory-format dumps, or directories of backups;
    /// or s3://bucket/prefix URLs (a prefix, an object, a dump prefix).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub work: Work,
    #[command(flatten)]
    pub store: Store,
    /// Do not record this spot check in the history.
    #[arg(long)]
    pub no_history: bool,
    #[command(flatten)]
    pub restore: RestoreArgs,
    /// A WAL archive kept elsewhere (a directory archive_command copies
    /// into): base backups found in PATHS are paired with it.
    #[arg(long, value_name = "PATH")]
    pub wal_archive: Option<PathBuf>,
    #[command(flatten)]
    pub shard: ShardArg,
}

impl VerifyArgs {
    pub fn request(&self) -> VerifyRequest {
        VerifyRequest {
            paths: self.paths.clone(),
            timestamp_pattern: self.common.timestamp_pattern.clone(),
            options: VerifyOptions {
                wal_archive: self.wal_archive.clone(),
                ..self.work.options()
            },
            s3: self.common.s3.options(),
            show_progress: !self.work.no_progress,
            restore: self.restore.overrides(),
            history: self.store.record_to(self.no_history),
            shard: self.shard.get(),
        }
    }
}

#[derive(Args)]
pub struct RunArgs {
    /// The config file (see README).
    #[arg(long, short, required_unless_present = "demo", conflicts_with = "demo")]
    pub config: Option<PathBuf>,
    /// Run on a demo week of backups generated under reports/demo (a night
    /// missing, a dump truncated, one too small; the newest restored when
    /// the servers are installed); seven nights in
    /// reports/demo/history.sqlite, the week in reports/demo/report.html.
    #[arg(long)]
    pub demo: bool,
    /// Where reports go; overrides the config's report.dir.
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// Re-read only part of the unchanged archive tonight: "rotate:N"
    /// reads about 1/N of it, least recently verified first, so every
    /// byte is re-read at least every N runs; new backups always.
    #[arg(long)]
    pub sample: Option<Sample>,
    /// Post a JSON summary to this webhook on failure and on recovery
    /// (Slack's body for hooks.slack.com); overrides `[notify] url`.
    #[arg(long)]
    pub notify: Option<String>,
    /// Read only this shard's part of the run: "I/N" (0-based, I < N),
    /// "auto/N" (I from JOB_COMPLETION_INDEX, a Kubernetes Indexed Job, or
    /// AWS_BATCH_JOB_ARRAY_INDEX), or "auto" (AWS Batch: N from
    /// AWS_BATCH_JOB_ARRAY_SIZE). Every backup belongs to exactly one shard;
    /// the promises are judged once over the whole fleet run, by the last
    /// shard to report or by --finalize.
    #[arg(long, value_parser = ShardSpec::parse, conflicts_with_all = ["demo", "finalize"])]
    pub shard: Option<ShardSpec>,
    /// The fleet run a shard belongs to; every shard of one night gives the
    /// same. Default: $BACKPROOF_RUN_GROUP, else an AWS Batch array job's id.
    #[arg(long, env = "BACKPROOF_RUN_GROUP")]
    pub run_group: Option<String>,
    /// Judge fleet run ID over its shards' records (a follow-up job): once
    /// every shard has reported, or after --wait with the missing shards
    /// named as errors.
    #[arg(long, value_name = "ID", conflicts_with = "demo", requires = "config")]
    pub finalize: Option<String>,
    /// With --finalize: how long to wait for shards still to report, e.g.
    /// "30m" (default: judge now).
    #[arg(long, requires = "finalize", value_parser = humantime::parse_duration)]
    pub wait: Option<Duration>,
    /// At most K test restores' scratch servers at once on this machine,
    /// across backproof processes (shards side by side on one node); a
    /// restore waits for a free slot, and the wait is not counted in its time.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u16).range(1..))]
    pub restore_slots: Option<u16>,
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub work: Work,
    #[command(flatten)]
    pub store: Store,
}

impl RunArgs {
    pub fn request(&self) -> NightlyRequest {
        self.work.apply_limits();
        let fleet = match (&self.shard, &self.finalize) {
            (Some(spec), _) => Some(FleetRole::Shard {
                spec: spec.clone(),
                group: self.run_group.clone(),
            }),
            (None, Some(group)) => Some(FleetRole::Finalize {
                group: group.clone(),
                wait: self.wait.unwrap_or_default(),
            }),
            (None, None) => None,
        };
        NightlyRequest {
            config: match &self.config {
                Some(path) if !self.demo => ConfigFrom::File(path.clone()),
                _ => ConfigFrom::Demo(PathBuf::from("reports/demo")),
            },
            history: self.store.history.clone(),
            report_dir: self.report_dir.clone(),
            deadline: self.work.deadline,
            sample: self.sample,
            jobs: self.work.jobs,
            digests: self.work.digests.clone(),
            s3: self.common.s3.options(),
            show_progress: !self.work.no_progress,
            notify: self.notify.clone(),
            fleet,
            restore_slots: self.restore_slots.map(usize::from),
        }
    }
}

/// Logs go to stderr only; stdout carries nothing but the report.
#[derive(Args)]
pub struct LogArgs {
    /// Logs as text, or as JSON lines (one span per source and per restore,
    /// with durations).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// error, warn, info, debug, trace or off.
    #[arg(long, global = true, default_value = "warn")]
    pub log_level: LevelFilter,
}

#[derive(Subcommand)]
pub enum Command {
    /// Verify backups in files or directories: checksums against manifests
    /// and sidecars, and the format's own structure. No config needed.
    Verify(VerifyArgs),
    /// List the backups found under a path: kind, timestamp, size, age and
    /// the checksums manifests record for them.
    Ls {
        path: PathBuf,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        shard: ShardArg,
        /// Only count the backups (and their bytes) that the shard owns,
        /// planning as a run does: no heads read, no listing held. Sizes a
        /// --shard split.
        #[arg(long)]
        count: bool,
        /// Read no backup's bytes, only the listing: a single-file backup's
        /// KIND shows `-`. Over S3, 100,000 objects are then 100 LIST
        /// requests instead of 100 LISTs and 100,000 GETs.
        #[arg(long)]
        no_read: bool,
    },
    /// Compare a copy with its source (each a directory or an s3:// URL):
    /// objects missing, stale or extra in the copy, and the copy lag.
    Compare {
        /// The original.
        src: PathBuf,
        /// The copy.
        dst: PathBuf,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        work: Work,
        #[command(flatten)]
        store: Store,
        /// Do not record this comparison in the history.
        #[arg(long)]
        no_history: bool,
        #[command(flatten)]
        shard: ShardArg,
    },
    /// The nightly job: audit every source in a config, write reports and
    /// record the run in the history.
    Run(RunArgs),
    /// Export a compliance report for a period from the history.
    Report {
        /// Start of the period, as an age: "90d", "12h", "2w", "3months".
        #[arg(long, value_parser = parse_period, default_value = "90d")]
        since: Duration,
        #[arg(long, value_parser = Format::value_parser(Format::EXPORT), default_value_t = Format::Md)]
        format: Format,
        /// Write to this file (atomically) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only this source of the config given with --config.
        #[arg(long, requires = "config")]
        source: Option<String>,
        /// The config that names --source.
        #[arg(long, short, requires = "source")]
        config: Option<PathBuf>,
        #[command(flatten)]
        store: Store,
    },
    /// The run history.
    History {
        #[command(subcommand)]
        action: HistoryAction,
    },
    /// Print a shell completion script (see README for where it goes).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from this command line.
    Man,
}

/// The completion script for `shell`, made from the command line itself.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(
        shell,
        &mut <Cli as clap::CommandFactory>::command(),
        "backproof",
        &mut out,
    );
    out
}

/// The man page, made from the command line itself.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut out)?;
    Ok(out)
}

#[derive(Subcommand)]
pub enum HistoryAction {
    /// Recompute the hash chain: exit 1 if a record was edited or deleted.
    Verify {
        #[command(flatten)]
        store: Store,
        /// A chain head kept from an earlier report: exit 1 unless some run
        /// of the history still has it.
        #[arg(long, value_name = "HASH")]
        expect_head: Option<String>,
        #[arg(long, value_parser = Format::value_parser(Format::RUN_REPORT), default_value_t = Format::Text)]
        format: Format,
    },
    /// Drop the reports of runs started before DATE, keeping their hash
    /// links under a checkpoint that `history verify` checks.
    Prune {
        #[command(flatten)]
        store: Store,
        /// "2026-09-01" (UTC midnight) or an RFC 3339 time.
        #[arg(long, value_parser = parse_date)]
        before: chrono::DateTime<chrono::Utc>,
    },
}

/// A date or time that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is neither a date (2026-09-01) nor an RFC 3339 time (2026-09-01T00:00:00Z)")]
pub struct DateError(String);

/// `YYYY-MM-DD` (UTC midnight) or RFC 3339.
pub fn parse_date(s: &str) -> Result<chrono::DateTime<chrono::Utc>, DateError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| DateError(s.to_string()))
}

#[derive(Args)]
pub struct Common {
    /// Output on stdout.
    #[arg(long, value_parser = Format::value_parser(Format::RUN_REPORT), default_value_t = Format::Text)]
    pub format: Format,
    /// strftime-like pattern for the timestamp in backup names, e.g.
    /// "appdb_%Y%m%d_%H%M" (default: any ISO-like date in the name, else mtime).
    #[arg(long)]
    pub timestamp_pattern: Option<String>,
    /// Also list passing checks in text output.
    #[arg(long, short)]
    pub verbose: bool,
    #[command(flatten)]
    pub s3: S3Args,
}

/// How to reach S3 for `s3://` locations; the SDK's standard chain
/// (environment, profiles, SSO, instance roles) fills in the rest.
#[derive(Args)]
pub struct S3Args {
    /// AWS profile for credentials and settings.
    #[arg(long, env = "AWS_PROFILE")]
    pub profile: Option<String>,
    /// AWS region (default: from the environment or profile).
    #[arg(long)]
    pub region: Option<String>,
    /// S3 endpoint, for S3-compatible stores (default: AWS_ENDPOINT_URL_S3,
    /// AWS_ENDPOINT_URL, the profile's, then AWS).
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// Path-style bucket addressing (implied for IP and localhost endpoints).
    #[arg(long)]
    pub path_style: bool,
    /// Also read every noncurrent object version and check it against the
    /// checksums S3 stored for it (deleted objects' last versions always are).
    #[arg(long)]
    pub all_versions: bool,
}

impl S3Args {
    pub fn options(&self) -> S3Options {
        S3Options {
            profile: self.profile.clone(),
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
            path_style: self.path_style,
            all_versions: self.all_versions,
        }
    }
}

#[derive(Args)]
pub struct RestoreArgs {
    /// Also restore every database dump found into a scratch database and
    /// check the result (tables, row counts); scratch instances are started
    /// and removed by backproof unless --scratch-url names a server.
    #[arg(long)]
    pub restore: bool,
    /// A PostgreSQL or MySQL server (postgres://... / mysql://...) where
    /// backproof creates, and always drops, its own scratch databases.
    #[arg(long, requires = "restore")]
    pub scratch_url: Option<String>,
    /// Promised recovery time, e.g. "1h": a slower restore fails.
    #[arg(long, requires = "restore", value_parser = humantime::parse_duration)]
    pub rto: Option<Duration>,
    /// Kill a restore after this long (default: twice the RTO, else 6h).
    #[arg(long, requires = "restore", value_parser = humantime::parse_duration)]
    pub restore_timeout: Option<Duration>,
    /// Point-in-time restores of base backups stop here, e.g.
    /// '2026-11-20 03:00:00+00' (default: the latest recoverable instant of the
    /// paired WAL archive, less 1 s).
    #[arg(long, requires = "restore", value_parser = PitrTarget::parse_time)]
    pub target_time: Option<PitrTarget>,
}

impl RestoreArgs {
    pub fn overrides(&self) -> Option<RestoreOverrides> {
        self.restore.then(|| RestoreOverrides {
            scratch_url: self.scratch_url.clone(),
            rto: self.rto,
            timeout: self.restore_timeout,
            target: self.target_time,
            slots: None,
        })
    }
}

/// `--shard` for the spot checks: this process reads one part; the N
/// parts together are one unsharded check, with nothing read twice.
#[derive(Args)]
pub struct ShardArg {
    /// Only this shard's part: "I/N" (0-based), or "auto/N" with I from
    /// JOB_COMPLETION_INDEX or AWS_BATCH_JOB_ARRAY_INDEX.
    #[arg(long, value_parser = shard_here)]
    pub shard: Option<Shard>,
}

impl ShardArg {
    pub fn get(&self) -> Shard {
        self.shard.unwrap_or(Shard::WHOLE)
    }
}

/// `--shard` of a spot check, resolved where it is parsed (`auto` reads
/// the engine's variables).
fn shard_here(text: &str) -> Result<Shard, crate::shard::ShardError> {
    Ok(ShardSpec::parse(text)?
        .resolve(|k| std::env::var(k).ok())?
        .0)
}

#[derive(Args)]
pub struct Work {
    /// Worker threads (default: number of cores).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Digest to compute for every file, on top of those manifests need
    /// (repeatable: sha256, blake3, md5). Default: sha256.
    #[arg(long = "digest", value_name = "ALGORITHM")]
    pub digests: Vec<Algorithm>,
    /// No progress bar even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Time budget, e.g. "45m": no backup is started after it, and those
    /// not reached are reported as errors.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub deadline: Option<Duration>,
    /// Largest zstd window a decoder may allocate, e.g. "128MiB" (default
    /// 2GiB, the format's maximum, so `zstd --long=31` dumps decode). A
    /// frame that needs more is an error, never a failed backup.
    #[arg(long, value_parser = parse_size)]
    pub zstd_window_max: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0:?}: expected a size like 512MiB or 2GiB")]
pub struct BadSize(String);

/// "512MiB", "2GiB", "64M", "1048576".
fn parse_size(text: &str) -> Result<u64, BadSize> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || BadSize(text.to_string());
    let n: u64 = num.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(bad()),
    };
    n.checked_mul(1 << shift).ok_or_else(bad)
}

#[derive(Args)]
pub struct Store {
    /// History store: a SQLite file, or a postgres:// URL for a history a
    /// team shares. Default: $BACKPROOF_HISTORY, else
    /// $XDG_DATA_HOME/backproof/history.sqlite.
    #[arg(long)]
    pub history: Option<PathBuf>,
}

impl Store {
    pub fn location(&self) -> PathBuf {
        self.history
            .clone()
            .unwrap_or_else(history::default_location)
    }
}

impl Work {
    /// Verification options from the flags alone (`verify`, `compare`).
    pub fn options(&self) -> VerifyOptions {
        let mut opts = VerifyOptions::default();
        if let Some(j) = self.jobs {
            opts.jobs = j.max(1);
        }
        opts.digests = self.digests.clone();
        opts.deadline = self.deadline.map(|d| std::time::Instant::now() + d);
        self.apply_limits();
        opts
    }

    /// Process-wide decoder limits the flags set.
    pub fn apply_limits(&self) {
        if let Some(bytes) = self.zstd_window_max {
            crate::inspect::set_zstd_window_max(bytes);
        }
    }
}

impl Store {
    /// Where a spot check is recorded: nowhere with `--no-history`.
    pub fn record_to(&self, no_history: bool) -> Option<PathBuf> {
        (!no_history).then(|| self.location())
    }
}
