//! The commands as library calls, one module each, each taking a request
//! struct and returning typed results. The CLI (`src/main.rs`) parses flags
//! into these requests, calls one function, prints what comes back and maps
//! it to the exit code; nothing here prints.
//!
//! ```text
//! verify   resolve paths -> target::verify_target -> Report (-> history)
//! compare  two stores -> parity findings -> Report (-> history)
//! ls       resolve path -> catalog -> Vec<Listed>
//! nightly  lock -> config -> history (read once) -> each source: target -> policy -> Report
//!          -> report files -> history
//! export   history -> compliance::Compliance
//! chain    history -> ChainCheck
//! ```

pub mod chain;
pub mod compare;
pub mod export;
mod fleet;
pub mod lock;
pub mod ls;
pub mod nightly;
mod target;
pub mod verify;

use std::path::{Path, PathBuf};

use crate::catalog::TimestampPattern;
use crate::history::{History, HistoryError};
use crate::report::Report;

/// Why a command could not run at all: exit 2. A damaged backup is never
/// one of these; it is a finding in the report.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("--timestamp-pattern: {0}")]
    TimestampPattern(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error(transparent)]
    Shard(#[from] crate::shard::ShardError),
    #[error(
        "--shard: the fleet run is not named: give --run-group ID (or $BACKPROOF_RUN_GROUP), the same for every shard of one night"
    )]
    NoRunGroup,
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    #[error(transparent)]
    Unsupported(#[from] crate::report::Unsupported),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: no source named {name:?} (sources: {known})", config.display())]
    NoSuchSource {
        name: String,
        config: PathBuf,
        known: String,
    },
    #[error("cannot write the demo corpus: {0}")]
    Demo(#[source] std::io::Error),
    #[error("cannot write reports to {}: {source}", dir.display())]
    Reports {
        dir: PathBuf,
        #[source]
        source: crate::report::WriteError,
    },
    #[error("no history at {}{}", location.display(), if *.export { ": nothing has been recorded there yet" } else { "" })]
    NoHistory { location: PathBuf, export: bool },
}

/// The `--timestamp-pattern` a command was given, or the default.
pub fn timestamp_pattern(pattern: Option<&str>) -> Result<TimestampPattern, CommandError> {
    match pattern {
        Some(p) => TimestampPattern::from_strftime(p)
            .map_err(|e| CommandError::TimestampPattern(e.to_string())),
        None => Ok(TimestampPattern::default()),
    }
}

/// From now on, a signal (SIGINT, SIGTERM, SIGHUP) records this run in the
/// history at `location` as interrupted: the signal, no verdict.
pub fn record_interruptions(location: &Path, command: &'static str, sources: Vec<String>) {
    let location = location.to_path_buf();
    let started = chrono::Utc::now();
    crate::interrupt::record_with(Box::new(move |by| {
        let report = Report::interrupted(command, started, sources, by);
        History::open(&location)
            .and_then(|mut h| h.append(&report))
            .map(drop)
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send>)
    }));
}

/// Appends the run to the history; a run that cannot be recorded did not
/// produce its evidence, so that alone makes the exit code 2.
pub fn record(report: &Report, location: &Path) -> Result<(), CommandError> {
    crate::interrupt::halt_if_interrupted();
    History::open(location)?.append(report)?;
    Ok(())
}

/// A `run` record of this config: its sources, their names, its files.
fn run_report(
    config: &crate::config::Config,
    started: chrono::DateTime<chrono::Utc>,
    backups: Vec<crate::verify::BackupRecord>,
    findings: Vec<crate::finding::Finding>,
) -> Report {
    let sources = config
        .sources
        .iter()
        .map(|s| crate::source::location_name(&s.path))
        .collect();
    let mut report = Report::new("run", started, sources, backups, findings);
    report.source_names = config
        .sources
        .iter()
        .map(|s| (crate::source::location_name(&s.path), s.name.clone()))
        .collect();
    report.config = config.files.clone();
    report
}
