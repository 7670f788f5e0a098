//! A Markdown summary for tickets, wikis and pull requests.

use std::fmt::Write;

use crate::finding::Status;

use super::Report;
use super::text::human_bytes;

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let t = &report.summary.findings;
    let verdict = match report.exit_code() {
        0 => "✅ no check failed",
        1 => "❌ a check failed",
        _ => "⚠️ the audit could not run completely",
    };
    let _ = writeln!(out, "# backproof {}: {verdict}\n", report.command);
    let _ = writeln!(
        out,
        "Run {} → {} · {} backup(s) · {} read · {} pass, {} warn, {} fail, {} error\n",
        report.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        report.finished_at.format("%H:%M:%S UTC"),
        report.summary.backups,
        human_bytes(report.summary.bytes_read),
        t.pass,
        t.warn,
        t.fail,
        t.error
    );
    let mut findings: Vec<_> = report.findings.iter().collect();
    findings.sort_by(|a, b| b.status.cmp(&a.status).then(a.subject.cmp(&b.subject)));
    let problems: Vec<_> = findings
        .iter()
        .filter(|f| f.status != Status::Pass)
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(
            out,
            "## Needs attention\n\n| status | check | subject | finding | what to do |\n|---|---|---|---|---|"
        );
        for f in problems {
            let _ = writeln!(
                out,
                "| {} | {} | `{}` | {} | {} |",
                f.status.as_str(),
                f.check.as_str(),
                cell(&f.subject),
                cell(&f.summary),
                cell(f.remediation.as_deref().unwrap_or(""))
            );
        }
        out.push('\n');
    }
    if !report.backups.is_empty() {
        let _ = writeln!(
            out,
            "## Backups\n\n| backup | kind | timestamp | size | sha256 |\n|---|---|---|---|---|"
        );
        for b in &report.backups {
            let sha = b
                .digests
                .values()
                .next()
                .and_then(|d| d.get(&crate::digest::Algorithm::Sha256))
                .map(|s| format!("`{}…`", &s[..16]))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                cell(&b.subject),
                b.kind,
                b.timestamp.format("%Y-%m-%d %H:%M"),
                human_bytes(b.size),
                sha
            );
        }
    }
    out
}
