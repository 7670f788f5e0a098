//! The auditor's export: every run of a period, read back from the history,
//! summarised per check (pass rate, every failure with its evidence) and per
//! backup (when its bytes were last verified, with what result), stating the
//! hash-chain head it was built from.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::history::{ChainCheck, StoredRun};

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
    pub runs_failed: usize,
    pub checks: Vec<CheckStats>,
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

#[derive(Debug, Serialize)]
pub struct RestorePoint {
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
    /// Share of findings that were not fail or error.
    pub pass_rate: f64,
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
    pub pass_rate: f64,
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

/// What a finding measured against its promise, if it is an RPO or RTO one.
fn measured(ev: &Value) -> Option<(&'static str, f64, Option<f64>)> {
    if let Some(age) = ev["age_seconds"].as_f64() {
        return Some(("RPO", age, ev["fail_after_seconds"].as_f64()));
    }
    restore_seconds(ev).map(|secs| ("RTO", secs, ev["rto_seconds"].as_f64()))
}

#[derive(Debug, Serialize)]
pub struct BackupEvidence {
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
    pub run_id: i64,
    pub run_started_at: DateTime<Utc>,
    pub subject: String,
    pub check: String,
    pub status: String,
    pub summary: String,
    pub evidence: Value,
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
            let ev = &Value::Object(f.evidence.clone());
            if let Some(name) = ev["policy"].as_str() {
                let p = promises
                    .entry(name.to_string())
                    .or_insert_with(|| PromiseStats {
                        promise: name.to_string(),
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
                if let Some((measure, achieved, promised)) = measured(ev) {
                    p.measure = Some(measure.to_string());
                    p.worst_achieved_seconds = Some(
                        p.worst_achieved_seconds
                            .map_or(achieved, |w| w.max(achieved)),
                    );
                    p.promised_seconds = promised.or(p.promised_seconds);
                }
            }
            if check == "retention"
                && let (Some(src), Some(secs)) =
                    (ev["source"].as_str(), ev["min_age_seconds"].as_u64())
            {
                retention_windows.insert(src.to_string(), secs);
            }
            // Restores of backups; a restore promise's finding repeats the
            // one it judged and is counted under promises.
            if check == "restore"
                && ev["policy"].is_null()
                && let Some(seconds) = restore_seconds(ev)
            {
                restores.push(RestorePoint {
                    subject: subject.clone(),
                    at: run.started_at,
                    seconds,
                    rto_seconds: ev["rto_seconds"].as_f64(),
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
                        ev.clone()
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

/// A restore finding's wall time, whichever unit its evidence uses.
fn restore_seconds(ev: &Value) -> Option<f64> {
    for (key, scale) in [
        ("restore_seconds", 1.0),
        ("total_seconds", 1.0),
        ("restore_ms", 0.001),
        ("total_ms", 0.001),
        ("duration_ms", 0.001),
    ] {
        if let Some(v) = ev[key].as_f64() {
            return Some(v * scale);
        }
    }
    None
}

pub const FORMATS: &[&str] = &["json", "csv", "md", "junit", "prometheus", "html"];

pub fn render(c: &Compliance, format: &str) -> Option<String> {
    Some(match format {
        "json" => serde_json::to_string_pretty(c).expect("serializes") + "\n",
        "csv" => render_csv(c),
        "md" => render_md(c),
        "junit" => render_junit(c),
        "prometheus" => render_prometheus(c),
        "html" => crate::report::html::render(c),
        _ => return None,
    })
}

/// One row per failure in the period, then one per check with its rate.
fn render_csv(c: &Compliance) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut write = || -> csv::Result<()> {
        w.write_record([
            "kind",
            "run_id",
            "run_started_at",
            "check",
            "subject",
            "status",
            "summary",
            "evidence",
        ])?;
        for s in &c.checks {
            w.write_record([
                "check_summary",
                "",
                "",
                &s.check,
                "",
                &format!("{:.4}", s.pass_rate),
                &format!(
                    "{} pass, {} warn, {} fail, {} error",
                    s.pass, s.warn, s.fail, s.error
                ),
                "",
            ])?;
        }
        for p in &c.promises {
            w.write_record([
                "promise_summary",
                "",
                "",
                &p.check,
                &p.promise,
                &format!("{:.4}", p.pass_rate),
                &format!(
                    "{} pass, {} warn, {} fail, {} error",
                    p.pass, p.warn, p.fail, p.error
                ),
                &serde_json::json!({
                    "measure": p.measure,
                    "worst_achieved_seconds": p.worst_achieved_seconds,
                    "promised_seconds": p.promised_seconds,
                })
                .to_string(),
            ])?;
        }
        for f in &c.failures {
            w.write_record([
                "failure",
                &f.run_id.to_string(),
                &f.run_started_at.to_rfc3339(),
                &f.check,
                &f.subject,
                &f.status,
                &f.summary,
                &f.evidence.to_string(),
            ])?;
        }
        Ok(())
    };
    write().expect("CSV to memory");
    String::from_utf8(w.into_inner().expect("in-memory")).expect("UTF-8")
}

fn render_md(c: &Compliance) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Backup compliance report\n");
    let _ = writeln!(
        o,
        "Period from {} to {} · {} run(s), {} with a failed check · history `{}`\n",
        c.period_start.format("%Y-%m-%d %H:%M UTC"),
        c.generated_at.format("%Y-%m-%d %H:%M UTC"),
        c.runs,
        c.runs_failed,
        c.history
    );
    let _ = writeln!(
        o,
        "Built from hash-chain head `{}`: chain {}.\n",
        c.chain_head,
        if c.chain_intact {
            "intact"
        } else {
            "BROKEN — see below"
        }
    );
    for p in &c.chain_problems {
        let _ = writeln!(o, "- ⚠️ {p}");
    }
    let _ = writeln!(
        o,
        "## Checks\n\n| check | findings | pass rate | pass | warn | fail | error |\n|---|---|---|---|---|---|---|"
    );
    for s in &c.checks {
        let _ = writeln!(
            o,
            "| {} | {} | {:.1}% | {} | {} | {} | {} |",
            s.check,
            s.findings,
            s.pass_rate * 100.0,
            s.pass,
            s.warn,
            s.fail,
            s.error
        );
    }
    if !c.promises.is_empty() {
        let _ = writeln!(
            o,
            "\n## Promises\n\n| promise | check | findings | pass rate | fail | error | achieved (worst) | promised |\n|---|---|---|---|---|---|---|---|"
        );
        for p in &c.promises {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {:.1}% | {} | {} | {} | {} |",
                p.promise.replace('|', "\\|"),
                p.check,
                p.findings,
                p.pass_rate * 100.0,
                p.fail,
                p.error,
                p.measure
                    .as_ref()
                    .map(|m| format!("{m} {}", human_secs(p.worst_achieved_seconds)))
                    .unwrap_or_default(),
                human_secs(p.promised_seconds)
            );
        }
    }
    if !c.last_restores.is_empty() {
        let _ = writeln!(
            o,
            "\n## Last successful restore\n\n| backup | when | took | RTO |\n|---|---|---|---|"
        );
        for r in &c.last_restores {
            let _ = writeln!(
                o,
                "| `{}` | {} | {:.1} s | {} |",
                r.subject,
                r.at.format("%Y-%m-%d %H:%M"),
                r.seconds,
                r.rto_seconds
                    .map(|s| format!("{s:.0} s"))
                    .unwrap_or_default()
            );
        }
    }
    let _ = writeln!(
        o,
        "\n## Backups: last full verification\n\n| backup | kind | taken | verified | result | times |\n|---|---|---|---|---|---|"
    );
    for b in &c.backups {
        let _ = writeln!(
            o,
            "| `{}` | {} | {} | {} | {} | {} |",
            b.subject,
            b.kind,
            b.timestamp,
            b.last_verified_at.format("%Y-%m-%d %H:%M"),
            b.last_result,
            b.times_verified
        );
    }
    if !c.failures.is_empty() {
        let _ = writeln!(
            o,
            "\n## Failures\n\n| run | when | check | subject | status | finding |\n|---|---|---|---|---|---|"
        );
        for f in &c.failures {
            let _ = writeln!(
                o,
                "| {} | {} | {} | `{}` | {} | {} |",
                f.run_id,
                f.run_started_at.format("%Y-%m-%d %H:%M"),
                f.check,
                f.subject,
                f.status,
                f.summary.replace('|', "\\|")
            );
        }
    }
    o
}

fn render_junit(c: &Compliance) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let failing = c.checks.iter().filter(|s| s.fail + s.error > 0).count();
    let _ = writeln!(
        o,
        "<testsuite name=\"backproof compliance\" tests=\"{}\" failures=\"{failing}\">",
        c.checks.len()
    );
    for s in &c.checks {
        let _ = write!(
            o,
            "  <testcase classname=\"backproof.compliance\" name=\"{}\"",
            esc(&s.check)
        );
        if s.fail + s.error == 0 {
            o.push_str("/>\n");
        } else {
            let _ = writeln!(
                o,
                "><failure message=\"{} fail, {} error of {} findings (pass rate {:.1}%)\"/></testcase>",
                s.fail,
                s.error,
                s.findings,
                s.pass_rate * 100.0
            );
        }
    }
    o.push_str("</testsuite>\n");
    o
}

fn render_prometheus(c: &Compliance) -> String {
    let mut o = String::from(
        "# HELP backproof_check_pass_rate Share of passing findings per check over the report period.\n# TYPE backproof_check_pass_rate gauge\n",
    );
    for s in &c.checks {
        let _ = writeln!(
            o,
            "backproof_check_pass_rate{{check=\"{}\"}} {:.6}",
            s.check, s.pass_rate
        );
    }
    let _ = writeln!(
        o,
        "# HELP backproof_history_chain_intact 1 when the history hash chain verifies.\n# TYPE backproof_history_chain_intact gauge\nbackproof_history_chain_intact {}",
        u8::from(c.chain_intact)
    );
    let _ = writeln!(
        o,
        "# HELP backproof_runs Runs in the report period.\n# TYPE backproof_runs gauge\nbackproof_runs {}",
        c.runs
    );
    o
}
