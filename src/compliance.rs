//! The auditor's export: every run of a period, read back from the history,
//! summarised per check (pass rate, every failure with its evidence) and per
//! backup (when its bytes were last verified, with what result), stating the
//! hash-chain head it was built from. The document is
//! [`crate::report::export::Compliance`]; each format's writer renders it.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::finding::Check;
use crate::history::{ChainCheck, StoredRun};
use crate::restore::RestoreFacts;

pub use crate::report::export::{
    BackupEvidence, CheckStats, Compliance, FailureRecord, PromiseStats, RestorePoint, human_secs,
};

/// The evidence keys of a promise (policy) finding the export summarises.
/// Absent or null keys are `None`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Measures {
    policy: Option<String>,
    /// Freshness promises: the newest backup's age and the promised RPO.
    age_seconds: Option<f64>,
    fail_after_seconds: Option<f64>,
    /// Restore promises: the promised RTO and the last restore's load time.
    rto_seconds: Option<f64>,
    restore_seconds: Option<f64>,
    /// Retention promises: the history a source must keep.
    min_age_seconds: Option<u64>,
    source: Option<String>,
}

impl Measures {
    fn of(evidence: &Map<String, Value>) -> Measures {
        // Evidence of an older run that does not fit is no measure, not an error.
        serde_json::from_value(Value::Object(evidence.clone())).unwrap_or_default()
    }

    /// What a finding measured against its promise, if it is an RPO or RTO one.
    fn measured(&self) -> Option<(&'static str, f64, Option<f64>)> {
        if let Some(age) = self.age_seconds {
            return Some(("RPO", age, self.fail_after_seconds));
        }
        self.restore_seconds
            .map(|secs| ("RTO", secs, self.rto_seconds))
    }
}

fn rank(status: &str) -> u8 {
    match status {
        "pass" => 0,
        "warn" => 1,
        "fail" => 2,
        _ => 3,
    }
}

pub fn build(runs: &[StoredRun], chain: &ChainCheck, since: DateTime<Utc>) -> Compliance {
    let mut checks: BTreeMap<String, CheckStats> = BTreeMap::new();
    let mut backups: BTreeMap<String, BackupEvidence> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut calendar: BTreeMap<String, BTreeMap<NaiveDate, String>> = BTreeMap::new();
    let mut restores = Vec::new();
    let mut promises: BTreeMap<String, PromiseStats> = BTreeMap::new();
    let mut retention_windows = BTreeMap::new();
    for run in runs {
        let day = run.started_at.date_naive();
        let mut worst: BTreeMap<String, &str> = BTreeMap::new();
        for f in &run.findings {
            let check = f.check.as_str().to_string();
            let status = f.status.as_str();
            let subject = f.subject.clone();
            let c = checks.entry(check.clone()).or_insert_with(|| CheckStats {
                check: check.clone(),
                ..Default::default()
            });
            c.findings += 1;
            match status {
                "pass" => c.pass += 1,
                "warn" => c.warn += 1,
                "fail" => c.fail += 1,
                _ => c.error += 1,
            }
            let w = worst.entry(subject.clone()).or_insert("pass");
            if rank(status) > rank(w) {
                *w = status;
            }
            let cell = calendar
                .entry(check.clone())
                .or_default()
                .entry(day)
                .or_insert_with(|| "pass".into());
            if rank(status) > rank(cell) {
                *cell = status.to_string();
            }
            let m = Measures::of(&f.evidence);
            if let Some(name) = &m.policy {
                let p = promises
                    .entry(name.clone())
                    .or_insert_with(|| PromiseStats {
                        promise: name.clone(),
                        check: check.clone(),
                        ..Default::default()
                    });
                p.findings += 1;
                match status {
                    "pass" => p.pass += 1,
                    "warn" => p.warn += 1,
                    "fail" => p.fail += 1,
                    _ => p.error += 1,
                }
                if let Some((measure, achieved, promised)) = m.measured() {
                    p.measure = Some(measure.to_string());
                    p.worst_achieved_seconds = Some(
                        p.worst_achieved_seconds
                            .map_or(achieved, |w| w.max(achieved)),
                    );
                    p.promised_seconds = promised.or(p.promised_seconds);
                }
            }
            if f.check == Check::Retention
                && let (Some(src), Some(secs)) = (&m.source, m.min_age_seconds)
            {
                retention_windows.insert(src.clone(), secs);
            }
            // Restores of backups; a restore promise's finding repeats the
            // one it judged and is counted under promises.
            if f.check == Check::Restore
                && m.policy.is_none()
                && let Some(facts) = RestoreFacts::from_evidence(&f.evidence)
                && let Some(seconds) = facts.restore_seconds
            {
                restores.push(RestorePoint {
                    subject: subject.clone(),
                    at: run.started_at,
                    seconds,
                    rto_seconds: facts.rto_seconds,
                    status: status.to_string(),
                });
            }
            if rank(status) >= 2 {
                failures.push(FailureRecord {
                    run_id: run.id,
                    run_started_at: run.started_at,
                    subject,
                    check,
                    status: status.to_string(),
                    summary: f.summary.clone(),
                    evidence: if f.evidence.is_empty() {
                        Value::Null
                    } else {
                        Value::Object(f.evidence.clone())
                    },
                });
            }
        }
        for b in &run.backups {
            let subject = b.subject.clone();
            let result = worst.get(&subject).copied().unwrap_or("pass").to_string();
            let times = backups.get(&subject).map(|e| e.times_verified).unwrap_or(0) + 1;
            backups.insert(
                subject.clone(),
                BackupEvidence {
                    subject,
                    kind: b.kind.clone(),
                    timestamp: b.timestamp.clone(),
                    size: b.size,
                    last_verified_at: run.started_at,
                    last_result: result,
                    times_verified: times,
                },
            );
        }
    }
    for c in checks.values_mut() {
        c.pass_rate = if c.findings == 0 {
            0.0
        } else {
            (c.pass + c.warn) as f64 / c.findings as f64
        };
    }
    for p in promises.values_mut() {
        p.pass_rate = (p.pass + p.warn) as f64 / p.findings.max(1) as f64;
    }
    let mut last_restores: BTreeMap<&str, &RestorePoint> = BTreeMap::new();
    for r in restores.iter().filter(|r| r.status == "pass") {
        last_restores.insert(r.subject.as_str(), r);
    }
    let last_restores = last_restores
        .into_values()
        .map(|r| RestorePoint {
            subject: r.subject.clone(),
            at: r.at,
            seconds: r.seconds,
            rto_seconds: r.rto_seconds,
            status: r.status.clone(),
        })
        .collect();
    Compliance {
        schema_version: 1,
        tool: format!("backproof {}", env!("CARGO_PKG_VERSION")),
        generated_at: Utc::now(),
        period_start: since,
        history: chain.location.clone(),
        chain_head: chain.head.clone(),
        chain_intact: chain.problems.is_empty(),
        chain_problems: chain.problems.clone(),
        runs: runs.len(),
        runs_failed: runs.iter().filter(|r| r.exit_code != 0).count(),
        checks: checks.into_values().collect(),
        promises: promises.into_values().collect(),
        last_restores,
        backups: backups.into_values().collect(),
        failures,
        calendar,
        restores,
        retention_windows,
    }
}
