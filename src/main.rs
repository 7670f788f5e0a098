//! The `backproof` command line: parse flags, call the library, map the
//! outcome to the exit code contract (0 pass, 1 a check failed, 2 could not
//! run). Nothing else lives here.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use backproof::audit;
use backproof::catalog::TimestampPattern;
use backproof::config::Config;
use backproof::digest::Algorithm;
use backproof::history::{self, History};
use backproof::ledger::Sample;
use backproof::report::{self, Format, Report};
use backproof::restore::RestoreOverrides;
use backproof::source::S3Options;
use backproof::verify::VerifyOptions;

#[derive(Parser)]
#[command(
    name = "backproof",
    version,
    about = "Proves that backups can be restored, and keeps the evidence."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify backups in files or directories: checksums against manifests
    /// and sidecars, and the format's own structure. No config needed.
    Verify {
        /// Backup files, directory-format dumps, or directories of backups;
        /// or s3://bucket/prefix URLs (a prefix, an object, a dump prefix).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        work: Work,
        #[command(flatten)]
        store: Store,
        /// Do not record this spot check in the history.
        #[arg(long)]
        no_history: bool,
        #[command(flatten)]
        restore: RestoreArgs,
    },
    /// List the backups found under a path: kind, timestamp, size, age and
    /// the checksums manifests record for them.
    Ls {
        path: PathBuf,
        #[command(flatten)]
        common: Common,
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
    },
    /// The nightly job: audit every source in a config, write reports and
    /// record the run in the history.
    Run {
        /// The config file (see README).
        #[arg(long, short, required_unless_present = "demo", conflicts_with = "demo")]
        config: Option<PathBuf>,
        /// Run on a demo corpus generated under reports/demo (one backup in
        /// it is corrupt on purpose); history in reports/demo/history.sqlite.
        #[arg(long)]
        demo: bool,
        /// Where reports go; overrides the config's report.dir.
        #[arg(long)]
        report_dir: Option<PathBuf>,
        /// Time budget, e.g. "45m": no backup is started after it, and those
        /// not reached are reported as errors.
        #[arg(long, value_parser = humantime::parse_duration)]
        deadline: Option<Duration>,
        /// Re-read only part of the unchanged archive tonight: "rotate:N"
        /// reads about 1/N of it, least recently verified first, so every
        /// byte is re-read at least every N runs; new backups always.
        #[arg(long)]
        sample: Option<Sample>,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        work: Work,
        #[command(flatten)]
        store: Store,
    },
    /// Export a compliance report for a period from the history.
    Report {
        /// Start of the period, as an age: "90d", "12h", "2w".
        #[arg(long, value_parser = humantime::parse_duration, default_value = "90d")]
        since: Duration,
        #[arg(long, value_parser = Format::value_parser(Format::EXPORT), default_value_t = Format::Md)]
        format: Format,
        /// Write to this file (atomically) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        store: Store,
    },
    /// The run history.
    History {
        #[command(subcommand)]
        action: HistoryAction,
    },
}

#[derive(Subcommand)]
enum HistoryAction {
    /// Recompute the hash chain: exit 1 if a record was edited or deleted.
    Verify {
        #[command(flatten)]
        store: Store,
        #[arg(long, value_parser = Format::value_parser(Format::RUN_REPORT), default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Args)]
struct Common {
    /// Output on stdout.
    #[arg(long, value_parser = Format::value_parser(Format::RUN_REPORT), default_value_t = Format::Text)]
    format: Format,
    /// strftime-like pattern for the timestamp in backup names, e.g.
    /// "appdb_%Y%m%d_%H%M" (default: any ISO-like date in the name, else mtime).
    #[arg(long)]
    timestamp_pattern: Option<String>,
    /// Also list passing checks in text output.
    #[arg(long, short)]
    verbose: bool,
    #[command(flatten)]
    s3: S3Args,
}

/// How to reach S3 for `s3://` locations; the SDK's standard chain
/// (environment, profiles, SSO, instance roles) fills in the rest.
#[derive(Args)]
struct S3Args {
    /// AWS profile for credentials and settings.
    #[arg(long, env = "AWS_PROFILE")]
    profile: Option<String>,
    /// AWS region (default: from the environment or profile).
    #[arg(long)]
    region: Option<String>,
    /// S3 endpoint, for S3-compatible stores (default: AWS_ENDPOINT_URL_S3,
    /// AWS_ENDPOINT_URL, the profile's, then AWS).
    #[arg(long)]
    endpoint_url: Option<String>,
    /// Path-style bucket addressing (implied for IP and localhost endpoints).
    #[arg(long)]
    path_style: bool,
    /// Also read every noncurrent object version and check it against the
    /// checksums S3 stored for it (deleted objects' last versions always are).
    #[arg(long)]
    all_versions: bool,
}

impl S3Args {
    fn options(&self) -> S3Options {
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
struct RestoreArgs {
    /// Also restore every database dump found into a scratch database and
    /// check the result (tables, row counts); scratch instances are started
    /// and removed by backproof unless --scratch-url names a server.
    #[arg(long)]
    restore: bool,
    /// A PostgreSQL or MySQL server (postgres://... / mysql://...) where
    /// backproof creates, and always drops, its own scratch databases.
    #[arg(long, requires = "restore")]
    scratch_url: Option<String>,
    /// Promised recovery time, e.g. "1h": a slower restore fails.
    #[arg(long, requires = "restore", value_parser = humantime::parse_duration)]
    rto: Option<Duration>,
    /// Kill a restore after this long (default: twice the RTO, else 6h).
    #[arg(long, requires = "restore", value_parser = humantime::parse_duration)]
    restore_timeout: Option<Duration>,
}

impl RestoreArgs {
    fn overrides(&self) -> Option<RestoreOverrides> {
        self.restore.then(|| RestoreOverrides {
            scratch_url: self.scratch_url.clone(),
            rto: self.rto,
            timeout: self.restore_timeout,
        })
    }
}

#[derive(Args)]
struct Work {
    /// Worker threads (default: number of cores).
    #[arg(long, short)]
    jobs: Option<usize>,
    /// Digest to compute for every file, on top of those manifests need
    /// (repeatable: sha256, blake3, md5). Default: sha256.
    #[arg(long = "digest", value_name = "ALGORITHM")]
    digests: Vec<Algorithm>,
    /// No progress bar even on a terminal.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Args)]
struct Store {
    /// History store: a SQLite file, or a postgres:// URL for a history a
    /// team shares. Default: $BACKPROOF_HISTORY, else
    /// $XDG_DATA_HOME/backproof/history.sqlite.
    #[arg(long)]
    history: Option<PathBuf>,
}

impl Store {
    fn location(&self) -> PathBuf {
        self.history
            .clone()
            .unwrap_or_else(history::default_location)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    ExitCode::from(run(cli) as u8)
}

fn pattern(common: &Common) -> Result<TimestampPattern, String> {
    match &common.timestamp_pattern {
        Some(p) => {
            TimestampPattern::from_strftime(p).map_err(|e| format!("--timestamp-pattern: {e}"))
        }
        None => Ok(TimestampPattern::default()),
    }
}

fn options(work: &Work, config_jobs: Option<usize>) -> VerifyOptions {
    let mut opts = VerifyOptions::default();
    if let Some(j) = work.jobs.or(config_jobs) {
        opts.jobs = j.max(1);
    }
    opts.digests = work.digests.clone();
    opts
}

fn print_report(report: &Report, format: Format, verbose: bool) {
    // `--format` offers only run-report formats, so this does not fail.
    match format.run_report(report, verbose) {
        Ok(text) => print!("{text}"),
        Err(e) => {
            fail(&e.to_string());
        }
    }
}

fn fail(message: &str) -> i32 {
    eprintln!("backproof: {message}");
    2
}

/// Appends the run to the history; a run that cannot be recorded did not
/// produce its evidence, so that alone makes the exit code 2.
fn record(report: &Report, location: &Path) -> Result<(), String> {
    let mut h = History::open(location).map_err(|e| e.to_string())?;
    h.append(report).map_err(|e| e.to_string())?;
    Ok(())
}

fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Verify {
            paths,
            common,
            work,
            store,
            no_history,
            restore,
        } => {
            let pattern = match pattern(&common) {
                Ok(p) => p,
                Err(e) => return fail(&e),
            };
            let report = audit::verify_paths(
                &paths,
                &pattern,
                &options(&work, None),
                &common.s3.options(),
                !work.no_progress,
                restore.overrides().as_ref(),
            );
            print_report(&report, common.format, common.verbose);
            if !no_history && let Err(e) = record(&report, &store.location()) {
                return fail(&e);
            }
            report.exit_code()
        }
        Command::Compare {
            src,
            dst,
            common,
            work,
            store,
            no_history,
        } => {
            let report = backproof::compare::compare(
                &src,
                &dst,
                &options(&work, None),
                &common.s3.options(),
            );
            print_report(&report, common.format, common.verbose);
            if !no_history && let Err(e) = record(&report, &store.location()) {
                return fail(&e);
            }
            report.exit_code()
        }
        Command::Ls { path, common } => {
            let pattern = match pattern(&common) {
                Ok(p) => p,
                Err(e) => return fail(&e),
            };
            match audit::list_path(&path, &pattern, &common.s3.options()) {
                Ok(list) => {
                    match common.format {
                        Format::Json => println!(
                            "{}",
                            serde_json::to_string_pretty(&list).expect("serializes")
                        ),
                        _ => print!("{}", audit::render_listing(&list)),
                    }
                    0
                }
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Run {
            config,
            demo,
            report_dir,
            deadline,
            sample,
            common,
            work,
            store,
        } => {
            let started = Instant::now();
            let demo_dir = PathBuf::from("reports/demo");
            let history = match (&store.history, demo) {
                (None, true) => demo_dir.join("history.sqlite"),
                _ => store.location(),
            };
            let _lock = match audit::RunLock::acquire(&audit::lock_path(&history)) {
                Ok(l) => l,
                Err(e) => return fail(&e),
            };
            let config = if demo {
                match backproof::demo::prepare(&demo_dir) {
                    Ok(c) => c,
                    Err(e) => return fail(&format!("cannot write the demo corpus: {e}")),
                }
            } else {
                match Config::load(
                    config
                        .as_deref()
                        .expect("clap requires --config without --demo"),
                ) {
                    Ok(c) => c,
                    Err(e) => return fail(&e.to_string()),
                }
            };
            let mut opts = options(&work, config.defaults.jobs);
            opts.deadline = deadline.map(|d| started + d);
            let ledger = match sample {
                Some(_) => match audit::load_ledger(&history) {
                    Ok(l) => Some(l),
                    Err(e) => return fail(&e),
                },
                None => None,
            };
            let plan = ledger.as_ref().zip(sample);
            let report = audit::run_config(
                &config,
                &opts,
                &common.s3.options(),
                !work.no_progress,
                plan,
                Some(&history),
            );
            let dir = report_dir.unwrap_or_else(|| config.report.dir.clone());
            let mut code = report.exit_code();
            match report::write_all(&report, &dir, &config.report.formats) {
                Ok(paths) => {
                    for p in paths {
                        eprintln!("backproof: wrote {}", p.display());
                    }
                }
                Err(e) => code = fail(&format!("cannot write reports to {}: {e}", dir.display())),
            }
            if let Err(e) = record(&report, &history) {
                code = fail(&e);
            }
            print_report(&report, common.format, common.verbose);
            code
        }
        Command::Report {
            since,
            format,
            out,
            store,
        } => {
            let since = chrono::Utc::now()
                - chrono::Duration::from_std(since).unwrap_or(chrono::Duration::MAX);
            let c = match audit::compliance_report(&store.location(), since) {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            let text = match format.export(&c) {
                Ok(t) => t,
                Err(e) => return fail(&e.to_string()),
            };
            match out {
                Some(path) => {
                    if let Err(e) = report::write_atomically(&path, text.as_bytes()) {
                        return fail(&format!("cannot write {}: {e}", path.display()));
                    }
                }
                None => print!("{text}"),
            }
            if c.chain_intact { 0 } else { 1 }
        }
        Command::History {
            action: HistoryAction::Verify { store, format },
        } => {
            let location = store.location();
            if !history::exists(&location) {
                return fail(&format!("no history at {}", location.display()));
            }
            let check = match History::open(&location).and_then(|h| h.verify()) {
                Ok(c) => c,
                Err(e) => return fail(&e.to_string()),
            };
            if format == Format::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&check).expect("serializes")
                );
            } else {
                for p in &check.problems {
                    println!("FAIL  {p}");
                }
                println!(
                    "{}: {} run(s) in {}, chain head {}",
                    if check.problems.is_empty() {
                        "OK"
                    } else {
                        "TAMPERED"
                    },
                    check.runs,
                    check.location,
                    check.head
                );
            }
            if check.problems.is_empty() { 0 } else { 1 }
        }
    }
}
