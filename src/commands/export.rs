//! `backproof report --since`: the compliance export from the history.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::CommandError;
use crate::compliance::Compliance;
use crate::config::Config;
use crate::history::{self, History, StoredRun};

pub struct ExportRequest {
    pub history: PathBuf,
    /// Start of the period.
    pub since: DateTime<Utc>,
    pub format: crate::report::Format,
    /// Only this source of this config: (name, config file).
    pub source: Option<(String, PathBuf)>,
}

/// The export rendered, and whether the chain it was built from is intact
/// (exit 1 when not).
pub struct Exported {
    pub text: String,
    pub chain_intact: bool,
}

pub fn export(req: &ExportRequest) -> Result<Exported, CommandError> {
    let c = build(req)?;
    Ok(Exported {
        text: req.format.export(&c)?,
        chain_intact: c.chain_intact,
    })
}

/// The compliance document of the period.
pub fn build(req: &ExportRequest) -> Result<Compliance, CommandError> {
    if !history::exists(&req.history) {
        return Err(CommandError::NoHistory {
            location: req.history.clone(),
            export: true,
        });
    }
    let only = match &req.source {
        Some((name, config)) => Some(source_scope(name, config)?),
        None => None,
    };
    let h = History::open(&req.history)?;
    let chain = h.verify()?;
    let mut runs = h.runs_since(req.since)?;
    if let Some(scope) = &only {
        runs = scope.keep(runs);
    }
    Ok(crate::compliance::build(&runs, &chain, req.since))
}

/// What belongs to one source of a config: findings and backups under its
/// path (or its copy's) as `run` records them, and promise findings whose
/// evidence names it.
struct Scope {
    name: String,
    prefixes: Vec<String>,
}

fn source_scope(name: &str, config: &Path) -> Result<Scope, CommandError> {
    let c = Config::load(config)?;
    let Some(s) = c.sources.iter().find(|s| s.name == name) else {
        return Err(CommandError::NoSuchSource {
            name: name.to_string(),
            config: config.to_path_buf(),
            known: c
                .sources
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let prefixes = std::iter::once(&s.path)
        .chain(s.copy.as_ref())
        .map(|p| p.display().to_string().trim_end_matches('/').to_string())
        .collect();
    Ok(Scope {
        name: name.to_string(),
        prefixes,
    })
}

impl Scope {
    fn covers(&self, subject: &str) -> bool {
        self.prefixes.iter().any(|p| {
            subject == p
                || subject
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    /// The runs with only this source's findings and backups; runs left
    /// with none are not this source's.
    fn keep(&self, runs: Vec<StoredRun>) -> Vec<StoredRun> {
        runs.into_iter()
            .filter_map(|mut r| {
                r.findings.retain(|f| {
                    self.covers(&f.subject)
                        || f.evidence.get("source").and_then(|v| v.as_str()) == Some(&self.name)
                });
                r.backups.retain(|b| self.covers(&b.subject));
                (!r.findings.is_empty() || !r.backups.is_empty()).then_some(r)
            })
            .collect()
    }
}
