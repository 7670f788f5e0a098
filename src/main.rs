//! The `backproof` command line: parse flags, call the library, map the
//! outcome to the exit code contract (0 pass, 1 a check failed, 2 could not
//! run). Nothing else lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use backproof::audit;
use backproof::catalog::TimestampPattern;
use backproof::config::Config;
use backproof::digest::Algorithm;
use backproof::report::{self, Report};
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
        /// Backup files, directory-format dumps, or directories of backups.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        work: Work,
    },
    /// List the backups found under a path: kind, timestamp, size, age and
    /// the checksums manifests record for them.
    Ls {
        path: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// The nightly job: audit every source in a config and write reports.
    Run {
        /// The config file (see README).
        #[arg(long, short, required_unless_present = "demo", conflicts_with = "demo")]
        config: Option<PathBuf>,
        /// Run on a demo corpus generated under reports/demo (one backup in
        /// it is corrupt on purpose).
        #[arg(long)]
        demo: bool,
        /// Where reports go; overrides the config's report.dir.
        #[arg(long)]
        report_dir: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        work: Work,
    },
}

#[derive(Args)]
struct Common {
    /// Output on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// strftime-like pattern for the timestamp in backup names, e.g.
    /// "appdb_%Y%m%d_%H%M" (default: any ISO-like date in the name, else mtime).
    #[arg(long)]
    timestamp_pattern: Option<String>,
    /// Also list passing checks in text output.
    #[arg(long, short)]
    verbose: bool,
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

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Format {
    Text,
    Json,
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
    match format {
        Format::Json => print!("{}", report::json::render(report)),
        Format::Text => print!("{}", report::text::render(report, verbose)),
    }
}

fn fail(message: &str) -> i32 {
    eprintln!("backproof: {message}");
    2
}

fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Verify {
            paths,
            common,
            work,
        } => {
            let pattern = match pattern(&common) {
                Ok(p) => p,
                Err(e) => return fail(&e),
            };
            let report =
                audit::verify_paths(&paths, &pattern, &options(&work, None), !work.no_progress);
            print_report(&report, common.format, common.verbose);
            report.exit_code()
        }
        Command::Ls { path, common } => {
            let pattern = match pattern(&common) {
                Ok(p) => p,
                Err(e) => return fail(&e),
            };
            match audit::list_path(&path, &pattern) {
                Ok(list) => {
                    match common.format {
                        Format::Json => println!(
                            "{}",
                            serde_json::to_string_pretty(&list).expect("serializes")
                        ),
                        Format::Text => print!("{}", audit::render_listing(&list)),
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
            common,
            work,
        } => {
            let config = if demo {
                match backproof::demo::prepare(&PathBuf::from("reports/demo")) {
                    Ok(c) => {
                        eprintln!(
                            "backproof: demo corpus written to {}",
                            c.sources[0].path.parent().unwrap().display()
                        );
                        c
                    }
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
            let report = audit::run_config(
                &config,
                &options(&work, config.defaults.jobs),
                !work.no_progress,
            );
            let dir = report_dir.unwrap_or_else(|| config.report.dir.clone());
            match report::write_all(&report, &dir, &config.report.formats) {
                Ok(paths) => {
                    for p in paths {
                        eprintln!("backproof: wrote {}", p.display());
                    }
                }
                Err(e) => {
                    print_report(&report, common.format, common.verbose);
                    return fail(&format!("cannot write reports to {}: {e}", dir.display()));
                }
            }
            print_report(&report, common.format, common.verbose);
            report.exit_code()
        }
    }
}
