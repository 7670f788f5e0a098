//! The compliance export as a document: what `compliance::build` makes from
//! the history and every format's writer renders.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Serialize)]
pub struct Compliance {
    pub schema_version: u32,
    pub tool: String,
    pub generated_at: DateTime<Utc>,
    pub period_start: DateTime<Utc>,
    pub history: String,
    /// Hash of the newest run in the history when the export was made.
    pub chain_head: String,
    pub chain_intact: bool,
    pub chain_problems: Vec<String>,
    pub runs: usize,
    /// Runs with a failed or errored check (interrupted runs not counted).
    pub runs_failed: usize,
    /// Runs a signal cut short: they hold no verdict, so they are no pass.
    pub runs_interrupted: usize,
    pub checks: Vec<CheckStats>,
    /// What needs attention, failures first: the fail, error and warn
    /// findings of the period grouped by source, check and promise.
    pub attention: Vec<FindingGroup>,
    /// Per source: its backups by the result of their last verification.
    pub sources: Vec<SourceStats>,
    /// Per written promise (policy check): pass rate and, for RPO and RTO
    /// promises, the worst achieved against the promised.
    pub promises: Vec<PromiseStats>,
    /// The last passing restore per restored backup series.
    pub last_restores: Vec<RestorePoint>,
    pub backups: Vec<BackupEvidence>,
    pub failures: Vec<FailureRecord>,
    /// Worst status per check per day (UTC): the nightly calendar.
    pub calendar: BTreeMap<String, BTreeMap<NaiveDate, String>>,
    /// Restore timings found in the period, for the RTO trend.
    pub restores: Vec<RestorePoint>,
    /// Promised history per source (retention min_age), from the newest run.
    pub retention_windows: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RestorePoint {
    pub source: String,
    pub subject: String,
    pub at: DateTime<Utc>,
    pub seconds: f64,
    pub rto_seconds: Option<f64>,
    pub status: String,
}

#[derive(Debug, Serialize, Default)]
pub struct CheckStats {
    pub check: String,
    pub findings: usize,
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub error: usize,
    /// Share of findings that passed; warnings are not passes.
    pub pass_rate: f64,
    /// Share of findings that warned.
    pub warn_rate: f64,
    pub fail_rate: f64,
    pub error_rate: f64,
}

#[derive(Debug, Serialize, Default)]
pub struct PromiseStats {
    pub promise: String,
    pub check: String,
    pub findings: usize,
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub error: usize,
    /// Share of findings that passed; warnings are not passes.
    pub pass_rate: f64,
    /// Share of findings that warned.
    pub warn_rate: f64,
    pub fail_rate: f64,
    pub error_rate: f64,
    /// "RPO" (newest backup age) or "RTO" (restore wall time).
    pub measure: Option<String>,
    pub worst_achieved_seconds: Option<f64>,
    pub promised_seconds: Option<f64>,
}

/// "1h 2m 3s", or nothing when there is no value.
pub fn human_secs(s: Option<f64>) -> String {
    s.map(|v| {
        humantime::format_duration(std::time::Duration::from_secs(v.max(0.0) as u64)).to_string()
    })
    .unwrap_or_default()
}

/// Findings of one source, check and promise that did not pass, over the
/// period: how many, on which subjects, since when, and the latest words.
#[derive(Debug, Serialize)]
pub struct FindingGroup {
    pub source: String,
    pub check: String,
    /// The promise's name, for a policy finding.
    pub promise: Option<String>,
    /// The worst status in the group: `fail`, `error` or `warn`.
    pub status: String,
    pub findings: usize,
    /// Distinct subjects; `examples` names the first of them.
    pub subjects: usize,
    pub examples: Vec<String>,
    /// Distinct nights (UTC days) with such a finding.
    pub nights: usize,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Whether the source's newest run still had it.
    pub in_last_run: bool,
    pub latest_run_id: i64,
    pub latest_subject: String,
    pub latest_summary: String,
}

/// A source's backups by the result of their last verification.
#[derive(Debug, Serialize, Default)]
pub struct SourceStats {
    pub source: String,
    pub backups: usize,
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub error: usize,
    pub bytes: u64,
    /// The longest a backup has gone since its bytes were last read.
    pub oldest_verification: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct BackupEvidence {
    pub source: String,
    pub subject: String,
    pub kind: String,
    pub timestamp: String,
    pub size: u64,
    pub last_verified_at: DateTime<Utc>,
    /// Worst status of its findings in that run.
    pub last_result: String,
    pub times_verified: usize,
}

#[derive(Debug, Serialize)]
pub struct FailureRecord {
    pub source: String,
    pub run_id: i64,
    pub run_started_at: DateTime<Utc>,
    pub subject: String,
    pub check: String,
    pub status: String,
    pub summary: String,
    pub evidence: Value,
}
