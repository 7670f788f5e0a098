//! One row per finding, for spreadsheets and audit tooling.

use super::Report;

pub fn render(report: &Report) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
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
    let mut write = || -> csv::Result<()> {
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
    };
    write().expect("writing CSV to memory cannot fail");
    String::from_utf8(w.into_inner().expect("in-memory writer"))
        .expect("CSV of UTF-8 strings is UTF-8")
}
