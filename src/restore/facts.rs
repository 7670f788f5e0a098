//! What one test restore established, typed: the restore finding's evidence
//! is this struct serialized, and every later stage (the restore promise,
//! the compliance export, the next night's row-drop check) reads it back
//! through [`RestoreFacts::from_evidence`], never by evidence key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The facts of one restore. Field names are the evidence keys reports have
/// always shown; absent facts are left out of the evidence.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestoreFacts {
    /// The configured source (or the path named on the command line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// "postgresql" or "mariadb".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The scratch server, redacted, or "ephemeral".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scratch_start_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rto_seconds: Option<f64>,
    /// Loading the dump, wall time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_seconds: Option<f64>,
    /// The sanity queries after loading, wall time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sanity_seconds: Option<f64>,
    /// Exact rows per restored table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row_counts: Option<BTreeMap<String, u64>>,
}

impl RestoreFacts {
    /// Decodes a restore finding's evidence; `None` if it is not the record
    /// of a restore (a restore promise's judgement names no engine).
    pub fn from_evidence(evidence: &Map<String, Value>) -> Option<RestoreFacts> {
        serde_json::from_value::<RestoreFacts>(Value::Object(evidence.clone()))
            .ok()
            .filter(|f| f.engine.is_some())
    }

    /// Load plus sanity checks: what the RTO is measured against.
    pub fn total_seconds(&self) -> Option<f64> {
        self.restore_seconds
            .map(|r| r + self.sanity_seconds.unwrap_or(0.0))
    }
}
