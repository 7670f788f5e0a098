//! The human summary: problems first, one line each, then the tally.

use std::fmt::Write;

use crate::escape::printable;
use crate::finding::Status;

use super::{Compliance, Report, Writer};

pub fn render(report: &Report, verbose: bool) -> String {
    let mut out = String::new();
    let mut findings: Vec<_> = report
        .findings
        .iter()
        .filter(|f| verbose || f.status != Status::Pass)
        .collect();
    findings.sort_by(|a, b| b.status.cmp(&a.status).then(a.subject.cmp(&b.subject)));
    for f in &findings {
        let _ = writeln!(
            out,
            "{:<5} {:<9} {}: {}",
            f.status.as_str().to_uppercase(),
            f.check.as_str(),
            printable(&f.subject),
            printable(&f.summary)
        );
        if f.status != Status::Pass
            && let Some(r) = &f.remediation
        {
            let _ = writeln!(out, "      -> {}", printable(r));
        }
    }
    let t = &report.summary.findings;
    let verdict = match report.exit_code() {
        0 => "OK",
        1 => "FAILED",
        _ => "COULD NOT RUN",
    };
    let _ = writeln!(
        out,
        "{verdict}: {} backup(s), {} read; {} pass, {} warn, {} fail, {} error",
        report.summary.backups,
        human_bytes(report.summary.bytes_read),
        t.pass,
        t.warn,
        t.fail,
        t.error
    );
    out
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The terminal summary. The compliance export in text is the Markdown
/// one, which reads as plain text on a terminal: see [`super::Format::export`].
pub struct Text;

impl Writer for Text {
    fn run_report(&self, report: &Report, verbose: bool) -> Option<String> {
        Some(render(report, verbose))
    }
    fn export(&self, _c: &Compliance) -> Option<String> {
        None
    }
}
