//! The auditor's export: every run of a period, read back from the history,
//! summarised per check (pass rate, every failure with its evidence) and per
//! backup (when its bytes were last verified, with what result), stating the
//! hash-chain head it was built from. The document is
//! [`crate::report::export::Compliance`]; each format's writer renders it.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::finding::{Check, Status};
use crate::history::{ChainCheck, StoredRun};
use crate::restore::RestoreFacts;

pub use crate::report::export::{
    BackupEvidence, CheckStats, Compliance, FailureRecord, FindingGroup, PromiseStats,
    RestorePoint, SourceStats, human_secs,
};

/// How many subjects a group names (the count says how many more).
const EXAMPLES: usize = 20;

/// The source a finding or backup belongs to: a promise's own `source` (a
/// config name) or a location mapped to its config name, else the run's
/// source location that holds the subject (by its config name in any run
/// of the period: a `verify` of a configured directory is that source),
/// else the subject's directory.
fn source_of(
    run: &StoredRun,
    names: &BTreeMap<String, String>,
    subject: &str,
    named: Option<&str>,
) -> String {
    let under = |text: &str, loc: &str| {
        text == loc
            || text
                .strip_prefix(loc)
                .is_some_and(|rest| rest.starts_with('/') || loc.ends_with('/'))
    };
    for text in named.into_iter().chain([subject]) {
        if names.values().any(|n| n == text) {
            return text.to_string();
        }
        let holder = run
            .sources
            .iter()
            .chain(names.keys())
            .filter(|loc| under(text, loc))
            .max_by_key(|loc| loc.len());
        if let Some(loc) = holder {
            return names.get(loc).unwrap_or(loc).clone();
        }
    }
    if let Some(name) = named {
        return name.to_string();
    }
    match subject.rsplit_once('/') {
        Some((dir, _)) if !dir.is_empty() => dir.to_string(),
        _ => subject.to_string(),
    }
}

/// One group of `Compliance::attention` as it is gathered.
struct Group {
    status: Status,
    findings: usize,
    subjects: std::collections::BTreeSet<String>,
    nights: std::collections::BTreeSet<NaiveDate>,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    latest_run_id: i64,
    latest_subject: String,
    latest_summary: String,
}

/// The evidence keys of a promise (policy) finding the export summarises.
/// Each is read on its own: absent, null or of another type, it is `None`
/// and the others still count (as they did in runs recorded long ago).
#[derive(Debug, Default, Deserialize)]
struct Measures {
    #[serde(default, deserialize_with = "lenient")]
    policy: Option<String>,
    /// Freshness promises: the newest backup's age and the promised RPO.
    #[serde(default, deserialize_with = "lenient")]
    age_seconds: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    fail_after_seconds: Option<f64>,
    /// Restore promises: the promised RTO and the last restore's load time.
    #[serde(default, deserialize_with = "lenient")]
    rto_seconds: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    restore_seconds: Option<f64>,
    /// Retention promises: the history a source must keep.
    #[serde(default, deserialize_with = "lenient")]
    min_age_seconds: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    source: Option<String>,
}

fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    Ok(T::deserialize(Value::deserialize(d)?).ok())
}

impl Measures {
    fn of(evidence: &Map<String, Value>) -> Measures {
        // Every field is lenient, so only a non-object could fail: none is.
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

pub fn build(runs: &[StoredRun], chain: &ChainCheck, since: DateTime<Utc>) -> Compliance {
    let mut checks: BTreeMap<String, CheckStats> = BTreeMap::new();
    let mut backups: BTreeMap<String, BackupEvidence> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut calendar: BTreeMap<String, BTreeMap<NaiveDate, Status>> = BTreeMap::new();
    let mut restores = Vec::new();
    let mut promises: BTreeMap<String, PromiseStats> = BTreeMap::new();
    let mut retention_windows = BTreeMap::new();
    let mut groups: BTreeMap<(String, String, Option<String>), Group> = BTreeMap::new();
    // The newest run that said anything about each source.
    let mut newest_run: BTreeMap<String, i64> = BTreeMap::new();
    // Config names of locations; the newest run's naming wins.
    let names: BTreeMap<String, String> = runs
        .iter()
        .flat_map(|r| r.source_names.iter())
        .map(|(l, n)| (l.clone(), n.clone()))
        .collect();
    for run in runs {
        let day = run.started_at.date_naive();
        let mut worst: BTreeMap<&str, Status> = BTreeMap::new();
        for f in &run.findings {
            let check = f.check.as_str().to_string();
            let status = f.status.as_str();
            let subject = f.subject.clone();
            let m = Measures::of(&f.evidence);
            let source = source_of(run, &names, &f.subject, m.source.as_deref());
            newest_run.insert(source.clone(), run.id);
            let c = checks.entry(check.clone()).or_insert_with(|| CheckStats {
                check: check.clone(),
                ..Default::default()
            });
            c.findings += 1;
            match f.status {
                Status::Pass => c.pass += 1,
                Status::Warn => c.warn += 1,
                Status::Fail => c.fail += 1,
                Status::Error => c.error += 1,
            }
            let w = worst.entry(&f.subject).or_insert(Status::Pass);
            *w = (*w).max(f.status);
            let cell = calendar
                .entry(check.clone())
                .or_default()
                .entry(day)
                .or_insert(Status::Pass);
            *cell = (*cell).max(f.status);
            if f.status != Status::Pass {
                let g = groups
                    .entry((source.clone(), check.clone(), m.policy.clone()))
                    .or_insert_with(|| Group {
                        status: f.status,
                        findings: 0,
                        subjects: Default::default(),
                        nights: Default::default(),
                        first_seen: run.started_at,
                        last_seen: run.started_at,
                        latest_run_id: run.id,
                        latest_subject: String::new(),
                        latest_summary: String::new(),
                    });
                g.status = g.status.max(f.status);
                g.findings += 1;
                g.subjects.insert(subject.clone());
                g.nights.insert(day);
                g.last_seen = run.started_at;
                g.latest_run_id = run.id;
                g.latest_subject.clone_from(&subject);
                g.latest_summary.clone_from(&f.summary);
            }
            if let Some(name) = &m.policy {
                let p = promises
                    .entry(name.clone())
                    .or_insert_with(|| PromiseStats {
                        promise: name.clone(),
                        check: check.clone(),
                        ..Default::default()
                    });
                p.findings += 1;
                match f.status {
                    Status::Pass => p.pass += 1,
                    Status::Warn => p.warn += 1,
                    Status::Fail => p.fail += 1,
                    Status::Error => p.error += 1,
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
                    source: source.clone(),
                    subject: subject.clone(),
                    at: run.started_at,
                    seconds,
                    rto_seconds: facts.rto_seconds,
                    status: status.to_string(),
                });
            }
            if f.status >= Status::Fail {
                failures.push(FailureRecord {
                    source,
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
            let result = worst
                .get(subject.as_str())
                .copied()
                .unwrap_or(Status::Pass)
                .as_str()
                .to_string();
            let times = backups.get(&subject).map(|e| e.times_verified).unwrap_or(0) + 1;
            backups.insert(
                subject.clone(),
                BackupEvidence {
                    source: source_of(run, &names, &subject, None),
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
    // Regression: warnings used to count as passes ("integrity 100.0 %"
    // with 27 pass and 4,581 warn); each status has its own rate.
    let share = |n: usize, of: usize| if of == 0 { 0.0 } else { n as f64 / of as f64 };
    for c in checks.values_mut() {
        c.pass_rate = share(c.pass, c.findings);
        c.warn_rate = share(c.warn, c.findings);
        c.fail_rate = share(c.fail, c.findings);
        c.error_rate = share(c.error, c.findings);
    }
    for p in promises.values_mut() {
        p.pass_rate = share(p.pass, p.findings);
        p.warn_rate = share(p.warn, p.findings);
        p.fail_rate = share(p.fail, p.findings);
        p.error_rate = share(p.error, p.findings);
    }
    let mut last_restores: BTreeMap<&str, &RestorePoint> = BTreeMap::new();
    for r in restores.iter().filter(|r| r.status == "pass") {
        last_restores.insert(r.subject.as_str(), r);
    }
    let last_restores = last_restores.into_values().cloned().collect();
    let calendar = calendar
        .into_iter()
        .map(|(check, days)| {
            let days = days
                .into_iter()
                .map(|(d, s)| (d, s.as_str().to_string()))
                .collect();
            (check, days)
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
        runs_failed: runs
            .iter()
            .filter(|r| r.exit_code != 0 && r.interrupted.is_none())
            .count(),
        runs_interrupted: runs.iter().filter(|r| r.interrupted.is_some()).count(),
        checks: checks.into_values().collect(),
        attention: attention(groups, &newest_run),
        sources: source_stats(backups.values()),
        promises: promises.into_values().collect(),
        last_restores,
        backups: backups.into_values().collect(),
        failures,
        calendar,
        restores,
        retention_windows,
    }
}

/// Fail first, then error, then warn; within each, what is still open, then
/// the most recent, then the most subjects.
fn attention(
    groups: BTreeMap<(String, String, Option<String>), Group>,
    newest_run: &BTreeMap<String, i64>,
) -> Vec<FindingGroup> {
    let rank = |s: Status| match s {
        Status::Fail => 0,
        Status::Error => 1,
        _ => 2,
    };
    let mut out: Vec<(Status, FindingGroup)> = groups
        .into_iter()
        .map(|((source, check, promise), g)| {
            let in_last_run = newest_run.get(&source) == Some(&g.latest_run_id);
            let group = FindingGroup {
                check,
                promise,
                status: g.status.as_str().to_string(),
                findings: g.findings,
                subjects: g.subjects.len(),
                examples: g.subjects.into_iter().take(EXAMPLES).collect(),
                nights: g.nights.len(),
                first_seen: g.first_seen,
                last_seen: g.last_seen,
                in_last_run,
                latest_run_id: g.latest_run_id,
                latest_subject: g.latest_subject,
                latest_summary: g.latest_summary,
                source,
            };
            (g.status, group)
        })
        .collect();
    out.sort_by(|(sa, a), (sb, b)| {
        (
            rank(*sa),
            !a.in_last_run,
            std::cmp::Reverse(a.last_seen),
            std::cmp::Reverse(a.subjects),
        )
            .cmp(&(
                rank(*sb),
                !b.in_last_run,
                std::cmp::Reverse(b.last_seen),
                std::cmp::Reverse(b.subjects),
            ))
            .then_with(|| (&a.source, &a.check, &a.promise).cmp(&(&b.source, &b.check, &b.promise)))
    });
    out.into_iter().map(|(_, g)| g).collect()
}

fn source_stats<'a>(backups: impl Iterator<Item = &'a BackupEvidence>) -> Vec<SourceStats> {
    let mut by: BTreeMap<&str, SourceStats> = BTreeMap::new();
    for b in backups {
        let s = by.entry(&b.source).or_insert_with(|| SourceStats {
            source: b.source.clone(),
            ..Default::default()
        });
        s.backups += 1;
        s.bytes += b.size;
        match b.last_result.as_str() {
            "pass" => s.pass += 1,
            "warn" => s.warn += 1,
            "fail" => s.fail += 1,
            _ => s.error += 1,
        }
        s.oldest_verification = Some(
            s.oldest_verification
                .map_or(b.last_verified_at, |o| o.min(b.last_verified_at)),
        );
    }
    by.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Finding;

    fn run(findings: Vec<Finding>) -> StoredRun {
        StoredRun {
            id: 1,
            started_at: Utc::now(),
            command: "run".into(),
            exit_code: 0,
            hash: "h".into(),
            findings,
            backups: vec![],
            interrupted: None,
            sources: vec![],
            source_names: Default::default(),
        }
    }

    fn chain() -> ChainCheck {
        ChainCheck {
            location: "h.sqlite".into(),
            runs: 1,
            pruned: 0,
            head: "h".into(),
            problems: vec![],
        }
    }

    #[test]
    fn promises_measure_rpo_and_rto_and_restores_exclude_promise_findings() {
        let findings = vec![
            Finding::new("daily", Check::Freshness, Status::Pass, "fresh")
                .with("policy", "daily")
                .with("age_seconds", 7200)
                .with("fail_after_seconds", 86_400u64),
            Finding::new("pg/a.dump", Check::Restore, Status::Pass, "restored")
                .with("source", "pg")
                .with("restore_seconds", 30.0)
                .with("rto_seconds", 600.0),
            Finding::new("weekly", Check::Restore, Status::Pass, "restored")
                .with("policy", "weekly")
                .with("rto_seconds", None::<f64>)
                .with("restore_seconds", 30.0),
            Finding::new("keep", Check::Retention, Status::Pass, "kept")
                .with("policy", "keep")
                .with("source", "pg")
                .with("min_age_seconds", Some(3600u64)),
        ];
        let c = build(&[run(findings)], &chain(), Utc::now());
        let p: Vec<_> = c
            .promises
            .iter()
            .map(|p| {
                (
                    p.promise.as_str(),
                    p.measure.as_deref(),
                    p.worst_achieved_seconds,
                    p.promised_seconds,
                )
            })
            .collect();
        assert_eq!(
            p,
            [
                ("daily", Some("RPO"), Some(7200.0), Some(86_400.0)),
                ("keep", None, None, None),
                ("weekly", Some("RTO"), Some(30.0), None),
            ]
        );
        assert_eq!(c.restores.len(), 1);
        assert_eq!(c.restores[0].subject, "pg/a.dump");
        assert_eq!(c.restores[0].rto_seconds, Some(600.0));
        assert_eq!(c.last_restores.len(), 1);
        assert_eq!(c.retention_windows.get("pg"), Some(&3600));
    }

    #[test]
    fn warnings_are_not_counted_as_passes_in_pass_rates() {
        let findings = vec![
            Finding::new("a", Check::Integrity, Status::Pass, "ok"),
            Finding::new("b", Check::Integrity, Status::Warn, "uncovered"),
            Finding::new("c", Check::Integrity, Status::Warn, "uncovered"),
            Finding::new("d", Check::Integrity, Status::Fail, "mismatch"),
            Finding::new("daily", Check::Freshness, Status::Warn, "late").with("policy", "daily"),
        ];
        let c = build(&[run(findings)], &chain(), Utc::now());
        let integrity = c.checks.iter().find(|s| s.check == "integrity").unwrap();
        assert_eq!(integrity.pass_rate, 0.25);
        assert_eq!(integrity.warn_rate, 0.5);
        assert_eq!(c.promises[0].pass_rate, 0.0);
        assert_eq!(c.promises[0].warn_rate, 1.0);
    }

    #[test]
    fn evidence_that_does_not_fit_is_no_measure_but_the_promise_counts() {
        let odd = Finding::new("x", Check::Freshness, Status::Fail, "?")
            .with("policy", "x")
            .with("age_seconds", "soon");
        let c = build(&[run(vec![odd])], &chain(), Utc::now());
        assert_eq!(c.promises.len(), 1);
        assert_eq!(c.promises[0].fail, 1);
        assert_eq!(c.promises[0].measure, None);
        assert_eq!(c.checks[0].fail, 1);
        assert_eq!(c.failures.len(), 1);
    }
}
