//! Prometheus textfile-collector format (node_exporter): per-check status,
//! backup ages, bytes verified and the run's own outcome, for alerting.

use std::fmt::Write;

use crate::finding::Status;
use crate::restore::RestoreFacts;

use super::{Compliance, Report, Writer};

fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn code(s: Status) -> u8 {
    match s {
        Status::Pass => 0,
        Status::Warn => 1,
        Status::Fail => 2,
        Status::Error => 3,
    }
}

pub fn render(report: &Report) -> String {
    let mut m = String::new();
    let _ = writeln!(
        m,
        "# HELP backproof_check_status Outcome of each check: 0 pass, 1 warn, 2 fail, 3 error.\n# TYPE backproof_check_status gauge"
    );
    for f in &report.findings {
        let _ = writeln!(
            m,
            "backproof_check_status{{check=\"{}\",subject=\"{}\"}} {}",
            f.check.as_str(),
            label(&f.subject),
            code(f.status)
        );
    }
    let _ = writeln!(
        m,
        "# HELP backproof_backup_age_seconds Age of each backup at the end of the run.\n# TYPE backproof_backup_age_seconds gauge"
    );
    for b in &report.backups {
        let age = (report.finished_at - b.timestamp).num_seconds().max(0);
        let _ = writeln!(
            m,
            "backproof_backup_age_seconds{{subject=\"{}\",kind=\"{}\"}} {age}",
            label(&b.subject),
            b.kind
        );
    }
    let _ = writeln!(
        m,
        "# HELP backproof_backup_size_bytes Size of each backup.\n# TYPE backproof_backup_size_bytes gauge"
    );
    for b in &report.backups {
        let _ = writeln!(
            m,
            "backproof_backup_size_bytes{{subject=\"{}\"}} {}",
            label(&b.subject),
            b.size
        );
    }
    // Restores, by whatever check reported them with a wall time (the
    // restore itself, and a restore promise repeating its last one).
    let restores: Vec<_> = report
        .findings
        .iter()
        .filter_map(|f| {
            Some((
                f,
                RestoreFacts::from_evidence(&f.evidence)?.restore_seconds?,
            ))
        })
        .collect();
    if !restores.is_empty() {
        let _ = writeln!(
            m,
            "# HELP backproof_restore_duration_seconds Wall time of the test restore.\n# TYPE backproof_restore_duration_seconds gauge"
        );
        for (f, secs) in &restores {
            let _ = writeln!(
                m,
                "backproof_restore_duration_seconds{{subject=\"{}\"}} {secs:.3}",
                label(&f.subject)
            );
        }
        let _ = writeln!(
            m,
            "# HELP backproof_restore_success Whether the test restore passed: 1 yes, 0 no.\n# TYPE backproof_restore_success gauge"
        );
        for (f, _) in &restores {
            let ok = matches!(f.status, Status::Pass | Status::Warn);
            let _ = writeln!(
                m,
                "backproof_restore_success{{subject=\"{}\"}} {}",
                label(&f.subject),
                u8::from(ok)
            );
        }
    }
    let t = &report.summary.findings;
    let _ = writeln!(
        m,
        "# HELP backproof_findings Findings of the run by status.\n# TYPE backproof_findings gauge"
    );
    for (s, n) in [
        ("pass", t.pass),
        ("warn", t.warn),
        ("fail", t.fail),
        ("error", t.error),
    ] {
        let _ = writeln!(m, "backproof_findings{{status=\"{s}\"}} {n}");
    }
    let secs = (report.finished_at - report.started_at).num_milliseconds() as f64 / 1000.0;
    let _ = writeln!(
        m,
        "# HELP backproof_bytes_verified Bytes read and verified in the run.\n# TYPE backproof_bytes_verified gauge\nbackproof_bytes_verified {}",
        report.summary.bytes_read
    );
    let _ = writeln!(
        m,
        "# HELP backproof_run_exit_code Exit code of the run: 0 pass, 1 a check failed, 2 could not run.\n# TYPE backproof_run_exit_code gauge\nbackproof_run_exit_code {}",
        report.exit_code()
    );
    let _ = writeln!(
        m,
        "# HELP backproof_run_timestamp_seconds When the run finished.\n# TYPE backproof_run_timestamp_seconds gauge\nbackproof_run_timestamp_seconds {}",
        report.finished_at.timestamp()
    );
    let _ = writeln!(
        m,
        "# HELP backproof_run_duration_seconds How long the run took.\n# TYPE backproof_run_duration_seconds gauge\nbackproof_run_duration_seconds {secs:.3}"
    );
    m
}

pub struct Prometheus;

impl Writer for Prometheus {
    fn run_report(&self, report: &Report, _verbose: bool) -> Option<String> {
        Some(render(report))
    }
    fn export(&self, c: &Compliance) -> Option<String> {
        Some(render_export(c))
    }
}

pub fn render_export(c: &Compliance) -> String {
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

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::finding::{Check, Finding};

    #[test]
    fn restore_metrics_come_from_findings_with_a_restore_time() {
        let findings = vec![
            Finding::new("pg/a.dump", Check::Restore, Status::Pass, "restored")
                .with("source", "pg")
                .with("restore_seconds", 12.5)
                .with("sanity_seconds", 0.5),
            Finding::new("weekly", Check::Restore, Status::Fail, "too slow")
                .with("policy", "weekly")
                .with("rto_seconds", None::<f64>)
                .with("restore_seconds", 700.25),
            Finding::new("never", Check::Restore, Status::Fail, "never restored")
                .with("policy", "never")
                .with("restore_seconds", None::<f64>),
            Finding::new("pg/a.dump", Check::Integrity, Status::Pass, "ok"),
        ];
        let m = render(&Report::new("run", Utc::now(), vec![], vec![], findings));
        assert!(m.contains("backproof_restore_duration_seconds{subject=\"pg/a.dump\"} 12.500\n"));
        assert!(m.contains("backproof_restore_duration_seconds{subject=\"weekly\"} 700.250\n"));
        assert!(m.contains("backproof_restore_success{subject=\"pg/a.dump\"} 1\n"));
        assert!(m.contains("backproof_restore_success{subject=\"weekly\"} 0\n"));
        assert!(
            !m.contains("backproof_restore_success{subject=\"never\"}"),
            "{m}"
        );
        assert_eq!(m.matches("backproof_restore_duration_seconds{").count(), 2);
    }
}
