//! `backproof history verify`: recompute the hash chain.

use std::path::Path;

use super::CommandError;
use crate::history::{self, ChainCheck, History};

/// Recomputes the chain; with `expect_head`, a head hash an auditor kept
/// from an earlier report must still be one of the chain's runs.
pub fn verify_chain(
    location: &Path,
    expect_head: Option<&str>,
) -> Result<ChainCheck, CommandError> {
    if !history::exists(location) {
        return Err(CommandError::NoHistory {
            location: location.to_path_buf(),
            export: false,
        });
    }
    let h = History::open(location)?;
    let mut check = h.verify()?;
    if let Some(head) = expect_head
        && !h.contains_hash(head)?
    {
        check.problems.push(format!(
            "no run has the expected head {head}: the records it covered were deleted or replaced"
        ));
    }
    Ok(check)
}

/// Prunes runs started before `before` (see [`crate::history::Pruned`]).
pub fn prune(
    location: &Path,
    before: chrono::DateTime<chrono::Utc>,
) -> Result<crate::history::Pruned, CommandError> {
    if !history::exists(location) {
        return Err(CommandError::NoHistory {
            location: location.to_path_buf(),
            export: false,
        });
    }
    Ok(History::open(location)?.prune(before)?)
}

/// JSON for `--format json`, else the text form.
pub fn render(check: &ChainCheck, format: crate::report::Format) -> String {
    match format {
        crate::report::Format::Json => {
            serde_json::to_string_pretty(check).unwrap_or_default() + "\n"
        }
        _ => render_text(check),
    }
}

/// The text form: one line per problem, then the verdict.
fn render_text(check: &ChainCheck) -> String {
    let mut out = String::new();
    for p in &check.problems {
        out.push_str(&format!("FAIL  {p}\n"));
    }
    out.push_str(&format!(
        "{}: {} run(s){} in {}, chain head {}\n",
        if check.problems.is_empty() {
            "OK"
        } else {
            "TAMPERED"
        },
        check.runs,
        match check.pruned {
            0 => String::new(),
            n => format!(" and {n} pruned run(s) sealed by a checkpoint"),
        },
        check.location,
        check.head
    ));
    out
}
