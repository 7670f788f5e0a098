//! A Markdown summary for tickets, wikis and pull requests.

use std::fmt::Write;

use crate::escape::printable;

use crate::finding::Status;

use super::export::human_secs;
use super::text::human_bytes;
use super::{Compliance, Report, Writer};

/// A table cell: control characters escaped (no name can end the row or
/// forge one), `|` escaped.
fn cell(s: &str) -> String {
    printable(s).replace('|', "\\|")
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

pub struct Markdown;

impl Writer for Markdown {
    fn run_report(&self, report: &Report, _verbose: bool) -> Option<String> {
        Some(render(report))
    }
    fn export(&self, c: &Compliance) -> Option<String> {
        Some(render_export(c))
    }
}

pub fn render_export(c: &Compliance) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Backup compliance report\n");
    let _ = writeln!(
        o,
        "Period from {} to {} · {} run(s), {} with a failed check{} · history `{}`\n",
        c.period_start.format("%Y-%m-%d %H:%M UTC"),
        c.generated_at.format("%Y-%m-%d %H:%M UTC"),
        c.runs,
        c.runs_failed,
        match c.runs_interrupted {
            0 => String::new(),
            n => format!(", {n} interrupted (no verdict)"),
        },
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
    // Failures first, one line per source, check and promise: at 10,000
    // backups the tables below are long, this list is not.
    if !c.attention.is_empty() {
        let _ = writeln!(
            o,
            "## Needs attention\n\n| status | source | check | promise | subjects | nights | last seen | latest finding |\n|---|---|---|---|---|---|---|---|"
        );
        for g in &c.attention {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} (`{}`) |",
                g.status,
                cell(&g.source),
                g.check,
                cell(g.promise.as_deref().unwrap_or("")),
                g.subjects,
                g.nights,
                match g.in_last_run {
                    true => "in the last run".to_string(),
                    false => g.last_seen.format("%Y-%m-%d %H:%M").to_string(),
                },
                cell(&g.latest_summary),
                cell(&g.latest_subject)
            );
        }
        let _ = writeln!(o);
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
            "\n## Promises\n\n| promise | check | findings | pass rate | warn | fail | error | achieved (worst) | promised |\n|---|---|---|---|---|---|---|---|---|"
        );
        for p in &c.promises {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {:.1}% | {} | {} | {} | {} | {} |",
                p.promise.replace('|', "\\|"),
                p.check,
                p.findings,
                p.pass_rate * 100.0,
                p.warn,
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
                cell(&r.subject),
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
            cell(&b.subject),
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
                cell(&f.subject),
                f.status,
                cell(&f.summary)
            );
        }
    }
    o
}
