//! Reports: the run report ([`Report`]) and the compliance export
//! ([`Compliance`]), each rendered by one [`Writer`] per [`Format`].

pub mod csv;
pub mod export;
pub mod format;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod prometheus;
pub mod text;

pub use export::Compliance;
pub use format::{Document, Format, UnknownFormat, Unsupported};

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::finding::{self, Finding, Tally};
use crate::verify::BackupRecord;

/// Bumped whenever a field changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: String,
    /// `verify`, `run`, ...
    pub command: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub sources: Vec<String>,
    /// The config's name for each source location (`run` only), so the
    /// compliance export can group a location's findings with its promises'.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub source_names: std::collections::BTreeMap<String, String>,
    pub summary: Summary,
    pub backups: Vec<BackupRecord>,
    pub findings: Vec<Finding>,
    /// The config and pack files the run read, with their SHA-256.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<ConfigFile>,
    /// Set on the record of a run a signal cut short: it holds no verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<Interrupted>,
    /// A shard's share of a fleet run, or a fleet run's judgement over
    /// its shards (`--shard`, `--finalize`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<crate::fleet::FleetMark>,
}

/// A config or pack file as a run read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ConfigFile {
    pub path: String,
    pub sha256: String,
}

impl ConfigFile {
    pub fn of(path: &Path, bytes: &[u8]) -> ConfigFile {
        use sha2::Digest;
        ConfigFile {
            path: std::path::absolute(path)
                .unwrap_or_else(|_| path.to_path_buf())
                .display()
                .to_string(),
            sha256: hex::encode(sha2::Sha256::digest(bytes)),
        }
    }
}

/// What cut a run short, as the history keeps it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Interrupted {
    /// `SIGTERM`, `SIGINT`, `SIGHUP`.
    pub signal: String,
}

#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Summary {
    pub backups: usize,
    pub bytes_read: u64,
    pub findings: Tally,
    pub exit_code: i32,
}

impl Report {
    pub fn new(
        command: &str,
        started_at: DateTime<Utc>,
        sources: Vec<String>,
        backups: Vec<BackupRecord>,
        findings: Vec<Finding>,
    ) -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            tool: format!("backproof {}", env!("CARGO_PKG_VERSION")),
            command: command.to_string(),
            started_at,
            finished_at: Utc::now(),
            sources,
            source_names: Default::default(),
            summary: Summary {
                backups: backups.len(),
                bytes_read: backups.iter().map(|b| b.bytes_read).sum(),
                findings: Tally::of(&findings),
                exit_code: finding::exit_code(&findings),
            },
            backups,
            findings,
            config: Vec::new(),
            interrupted: None,
            fleet: None,
        }
    }

    /// The record of a run a signal cut short: no backup, no finding (no
    /// verdict on unfinished work), the signal's exit code.
    pub fn interrupted(
        command: &str,
        started_at: DateTime<Utc>,
        sources: Vec<String>,
        by: crate::interrupt::Interruption,
    ) -> Report {
        let mut r = Report::new(command, started_at, sources, vec![], vec![]);
        r.summary.exit_code = by.exit_code();
        r.interrupted = Some(Interrupted { signal: by.name() });
        r
    }

    pub fn exit_code(&self) -> i32 {
        self.summary.exit_code
    }
}

/// Writes `contents` to `path` through a temporary file in the same directory
/// and a rename, so a crash never leaves half a report behind.
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    io::Write::write_all(&mut tmp, contents)?;
    // Reports are for others to read (node_exporter, a web server): not 0600.
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// One output format's renderer of both documents; `None` where the format
/// has no form of that document (see [`Format::run_report`]).
pub trait Writer: Sync {
    fn run_report(&self, report: &Report, verbose: bool) -> Option<String>;
    fn export(&self, c: &Compliance) -> Option<String>;
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Writes the report in each format under `dir`, returning the paths. Each
/// file is replaced atomically, so a reader (node_exporter, a dashboard)
/// never sees half of one.
pub fn write_all(
    report: &Report,
    dir: &Path,
    formats: &[Format],
) -> Result<Vec<PathBuf>, WriteError> {
    let mut written = Vec::new();
    for &f in formats {
        let unsupported = Unsupported {
            format: f,
            document: Document::RunReport,
        };
        let name = f.report_file().ok_or(unsupported)?;
        let text = f.run_report(report, false)?;
        let path = dir.join(name);
        write_atomically(&path, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}
