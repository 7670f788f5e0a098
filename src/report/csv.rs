//! One row per finding, for spreadsheets and audit tooling.

use super::{Compliance, Report, Writer};

/// Rows written by `rows` into an in-memory CSV document.
fn document(rows: impl FnOnce(&mut csv::Writer<Vec<u8>>) -> csv::Result<()>) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    rows(&mut w).expect("writing CSV to memory cannot fail");
    String::from_utf8(w.into_inner().expect("in-memory writer"))
        .expect("CSV of UTF-8 strings is UTF-8")
}

pub fn render(report: &Report) -> String {
    let header = [
        "run_started_at",
        "command",
        "subject",
        "check",
        "status",
        "summary",
        "remediation",
        "evidence",
    ];
    let started = report.started_at.to_rfc3339();
    document(|w| {
        w.write_record(header)?;
        for f in &report.findings {
            w.write_record([
                started.as_str(),
                report.command.as_str(),
                f.subject.as_str(),
                f.check.as_str(),
                f.status.as_str(),
                f.summary.as_str(),
                f.remediation.as_deref().unwrap_or(""),
                &serde_json::Value::Object(f.evidence.clone()).to_string(),
            ])?;
        }
        Ok(())
    })
}

pub struct Csv;

impl Writer for Csv {
    fn run_report(&self, report: &Report, _verbose: bool) -> Option<String> {
        Some(render(report))
    }
    fn export(&self, c: &Compliance) -> Option<String> {
        Some(render_export(c))
    }
}

/// One row per failure in the period, then one per check with its rate.
pub fn render_export(c: &Compliance) -> String {
    document(|w| {
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
    })
}
