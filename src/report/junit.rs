//! JUnit XML: one test suite per check, one test case per finding, so CI
//! dashboards show backup checks like tests. Warnings pass, with the message
//! in system-out.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::finding::{Finding, Status};

use super::{Compliance, Report, Writer};

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // XML 1.0 allows no other control characters.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

pub fn render(report: &Report) -> String {
    let mut suites: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in &report.findings {
        suites.entry(f.check.as_str()).or_default().push(f);
    }
    let t = &report.summary.findings;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"backproof {}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" timestamp=\"{}\">",
        esc(&report.command),
        report.findings.len(),
        t.fail,
        t.error,
        report.started_at.to_rfc3339()
    );
    for (check, findings) in suites {
        let fails = findings.iter().filter(|f| f.status == Status::Fail).count();
        let errors = findings
            .iter()
            .filter(|f| f.status == Status::Error)
            .count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{check}\" tests=\"{}\" failures=\"{fails}\" errors=\"{errors}\">",
            findings.len()
        );
        for f in findings {
            let _ = write!(
                out,
                "    <testcase classname=\"backproof.{check}\" name=\"{}\"",
                esc(&f.subject)
            );
            let evidence = serde_json::to_string_pretty(&f.evidence).unwrap_or_default();
            let detail = match &f.remediation {
                Some(r) => format!("{evidence}\n\n{r}"),
                None => evidence,
            };
            match f.status {
                Status::Pass => out.push_str("/>\n"),
                Status::Warn => {
                    let _ = writeln!(
                        out,
                        ">\n      <system-out>WARN: {}</system-out>\n    </testcase>",
                        esc(&f.summary)
                    );
                }
                Status::Fail => {
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                        esc(&f.summary),
                        esc(&detail)
                    );
                }
                Status::Error => {
                    let _ = writeln!(
                        out,
                        ">\n      <error message=\"{}\">{}</error>\n    </testcase>",
                        esc(&f.summary),
                        esc(&detail)
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

pub struct Junit;

impl Writer for Junit {
    fn run_report(&self, report: &Report, _verbose: bool) -> Option<String> {
        Some(render(report))
    }
    fn export(&self, c: &Compliance) -> Option<String> {
        Some(render_export(c))
    }
}

pub fn render_export(c: &Compliance) -> String {
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
