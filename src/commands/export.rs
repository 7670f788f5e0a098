//! `backproof report --since`: the compliance export from the history.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::CommandError;
use crate::compliance::Compliance;
use crate::history::{self, History};

pub struct ExportRequest {
    pub history: PathBuf,
    /// Start of the period.
    pub since: DateTime<Utc>,
    pub format: crate::report::Format,
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
    let h = History::open(&req.history)?;
    let chain = h.verify()?;
    let runs = h.runs_since(req.since)?;
    Ok(crate::compliance::build(&runs, &chain, req.since))
}
