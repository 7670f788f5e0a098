//! The auditor's page: a self-contained HTML file with inline SVG pictures:
//! a calendar of nightly results per check, backup ages against the
//! retention window, and restore durations against the RTO. No scripts, no
//! network fetches.
//!
//! The markup is the template `reports/compliance.html`, embedded at build
//! time and rendered by minijinja with auto-escaping: this file only works
//! out the geometry and formats the numbers.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment};
use serde::Serialize;

use super::export::{Compliance, RestorePoint, human_secs};
use super::{Report, Writer};

const TEMPLATE_NAME: &str = "compliance.html";

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // The page ends in a newline, as the file does.
    let syntax = SyntaxConfig::builder().keep_trailing_newline(true).build();
    env.set_syntax(syntax.expect("the default delimiters are valid"));
    // The page has always escaped exactly & < > " (minijinja's own HTML
    // escaping also rewrites ' and /, which would change every path shown).
    env.set_formatter(|out, state, value| {
        if *state.auto_escape() == AutoEscape::Html && !value.is_safe() {
            let text = value.to_string();
            out.write_str(&html_escape::encode_double_quoted_attribute(&text))?;
            Ok(())
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    env.add_template(TEMPLATE_NAME, include_str!("../../reports/compliance.html"))
        .expect("the embedded template parses (pinned by the snapshot tests)");
    env
});

pub struct Html;

impl Writer for Html {
    /// The run report has no page: it is the JSON, text and other formats.
    fn run_report(&self, _report: &Report, _verbose: bool) -> Option<String> {
        None
    }
    fn export(&self, c: &Compliance) -> Option<String> {
        Some(render(c))
    }
}

pub fn render(c: &Compliance) -> String {
    let page = Page::of(c);
    ENV.get_template(TEMPLATE_NAME)
        .and_then(|t| t.render(Serde(&page)))
        .expect("the embedded template renders plain data (pinned by the snapshot tests)")
}

fn color(status: &str) -> &'static str {
    match status {
        "pass" => "#2e9e57",
        "warn" => "#e0a526",
        "fail" => "#d2372c",
        "error" => "#6b6f7b",
        _ => "#eceef3",
    }
}

/// Everything the template shows, numbers already formatted.
#[derive(Serialize)]
struct Page<'a> {
    period_start: String,
    generated_at: String,
    tool: &'a str,
    runs: usize,
    runs_failed: usize,
    runs_interrupted: usize,
    history: &'a str,
    chain_intact: bool,
    chain_head: &'a str,
    calendar: Option<Calendar<'a>>,
    timeline: Option<Timeline>,
    rto: Option<RtoChart<'a>>,
    promises: Vec<PromiseRow<'a>>,
    last_restores: Vec<RestoreRow<'a>>,
    checks: Vec<CheckRow<'a>>,
    backups: Vec<BackupRow<'a>>,
    failures: Vec<FailureRow<'a>>,
}

impl<'a> Page<'a> {
    fn of(c: &'a Compliance) -> Page<'a> {
        Page {
            period_start: c.period_start.format("%Y-%m-%d %H:%M UTC").to_string(),
            generated_at: c.generated_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            tool: &c.tool,
            runs: c.runs,
            runs_failed: c.runs_failed,
            runs_interrupted: c.runs_interrupted,
            history: &c.history,
            chain_intact: c.chain_intact,
            chain_head: &c.chain_head,
            calendar: Calendar::of(c),
            timeline: Timeline::of(c),
            rto: RtoChart::of(c),
            promises: c
                .promises
                .iter()
                .map(|p| PromiseRow {
                    promise: &p.promise,
                    check: &p.check,
                    findings: p.findings,
                    pass_rate: format!("{:.1}", p.pass_rate * 100.0),
                    warn: p.warn,
                    fail: p.fail,
                    error: p.error,
                    over: matches!(
                        (p.worst_achieved_seconds, p.promised_seconds),
                        (Some(a), Some(b)) if a > b
                    ),
                    achieved: p
                        .measure
                        .as_ref()
                        .map(|m| format!("{m} {}", human_secs(p.worst_achieved_seconds)))
                        .unwrap_or_default(),
                    promised: human_secs(p.promised_seconds),
                })
                .collect(),
            last_restores: c
                .last_restores
                .iter()
                .map(|r| RestoreRow {
                    subject: &r.subject,
                    at: r.at.format("%Y-%m-%d %H:%M").to_string(),
                    seconds: format!("{:.1}", r.seconds),
                    rto: human_secs(r.rto_seconds),
                })
                .collect(),
            checks: c
                .checks
                .iter()
                .map(|k| CheckRow {
                    check: &k.check,
                    findings: k.findings,
                    pass_rate: format!("{:.1}", k.pass_rate * 100.0),
                    pass: k.pass,
                    warn: k.warn,
                    fail: k.fail,
                    error: k.error,
                })
                .collect(),
            backups: c
                .backups
                .iter()
                .map(|b| BackupRow {
                    subject: &b.subject,
                    kind: &b.kind,
                    timestamp: &b.timestamp,
                    verified: b.last_verified_at.format("%Y-%m-%d %H:%M").to_string(),
                    color: color(&b.last_result),
                    result: &b.last_result,
                    times: b.times_verified,
                })
                .collect(),
            failures: c
                .failures
                .iter()
                .map(|f| FailureRow {
                    run_id: f.run_id,
                    when: f.run_started_at.format("%Y-%m-%d %H:%M").to_string(),
                    check: &f.check,
                    subject: &f.subject,
                    color: color(&f.status),
                    summary: &f.summary,
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct PromiseRow<'a> {
    promise: &'a str,
    check: &'a str,
    findings: usize,
    pass_rate: String,
    warn: usize,
    fail: usize,
    error: usize,
    /// The worst achieved is over the promise.
    over: bool,
    achieved: String,
    promised: String,
}

#[derive(Serialize)]
struct RestoreRow<'a> {
    subject: &'a str,
    at: String,
    seconds: String,
    rto: String,
}

#[derive(Serialize)]
struct CheckRow<'a> {
    check: &'a str,
    findings: usize,
    pass_rate: String,
    pass: usize,
    warn: usize,
    fail: usize,
    error: usize,
}

#[derive(Serialize)]
struct BackupRow<'a> {
    subject: &'a str,
    kind: &'a str,
    timestamp: &'a str,
    verified: String,
    color: &'static str,
    result: &'a str,
    times: usize,
}

#[derive(Serialize)]
struct FailureRow<'a> {
    run_id: i64,
    when: String,
    check: &'a str,
    subject: &'a str,
    color: &'static str,
    summary: &'a str,
}

/// One row per check, one square per day of the period.
#[derive(Serialize)]
struct Calendar<'a> {
    width: usize,
    height: usize,
    cell: usize,
    ticks: Vec<Tick>,
    rows: Vec<CalendarRow<'a>>,
}

#[derive(Serialize)]
struct Tick {
    x: usize,
    label: String,
}

#[derive(Serialize)]
struct CalendarRow<'a> {
    check: &'a str,
    y: usize,
    label_y: usize,
    cells: Vec<Cell<'a>>,
}

#[derive(Serialize)]
struct Cell<'a> {
    x: usize,
    fill: &'static str,
    day: String,
    status: &'a str,
}

impl<'a> Calendar<'a> {
    fn of(c: &'a Compliance) -> Option<Calendar<'a>> {
        if c.calendar.is_empty() {
            return None;
        }
        let end = c.generated_at.date_naive();
        let first_run = c
            .calendar
            .values()
            .flat_map(|d| d.keys())
            .min()
            .copied()
            .unwrap_or(end);
        let start = c
            .period_start
            .date_naive()
            .max(first_run)
            .max(end - Duration::days(119));
        let days: Vec<NaiveDate> = start.iter_days().take_while(|d| *d <= end).collect();
        let (label_w, cell, gap) = (190, 14, 3);
        let x = |i: usize| label_w + i * (cell + gap);
        let ticks = days
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 7 == 0)
            .map(|(i, d)| Tick {
                x: x(i),
                label: d.format("%m-%d").to_string(),
            })
            .collect();
        let rows = c
            .calendar
            .iter()
            .enumerate()
            .map(|(row, (check, by_day))| {
                let y = 20 + row * (cell + gap);
                CalendarRow {
                    check,
                    y,
                    label_y: y + 11,
                    cells: days
                        .iter()
                        .enumerate()
                        .map(|(i, d)| {
                            let status = by_day.get(d).map(String::as_str).unwrap_or("none");
                            Cell {
                                x: x(i),
                                fill: color(status),
                                day: d.to_string(),
                                status,
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        Some(Calendar {
            width: label_w + days.len() * (cell + gap) + 10,
            height: 24 + c.calendar.len() * (cell + gap) + 10,
            cell,
            ticks,
            rows,
        })
    }
}

/// Each backup as a dot on a time axis, one row per location, with the
/// promised retention window shaded.
#[derive(Serialize)]
struct Timeline {
    width: String,
    height: String,
    window: Option<Window>,
    now_x: String,
    now_y2: String,
    now_label_y: String,
    label_w: String,
    line_x2: String,
    rows: Vec<TimelineRow>,
}

#[derive(Serialize)]
struct Window {
    x: String,
    width: String,
    height: String,
}

#[derive(Serialize)]
struct TimelineRow {
    y: String,
    label_y: String,
    /// The location's last 48 characters.
    label: String,
    dots: Vec<Dot>,
}

#[derive(Serialize)]
struct Dot {
    x: String,
    fill: &'static str,
    at: String,
    status: String,
}

impl Timeline {
    fn of(c: &Compliance) -> Option<Timeline> {
        let points: Vec<(String, DateTime<Utc>, &str)> = c
            .backups
            .iter()
            .filter_map(|b| {
                let t = DateTime::parse_from_rfc3339(&b.timestamp)
                    .ok()?
                    .with_timezone(&Utc);
                let dir = b
                    .subject
                    .rsplit_once('/')
                    .map(|(d, _)| d)
                    .unwrap_or("")
                    .to_string();
                Some((dir, t, b.last_result.as_str()))
            })
            .collect();
        if points.is_empty() {
            return None;
        }
        let now = c.generated_at;
        let longest_window = c.retention_windows.values().max().copied().unwrap_or(0) as i64;
        let oldest = points.iter().map(|p| p.1).min().unwrap_or(now);
        let start = oldest.min(now - Duration::seconds(longest_window)) - Duration::hours(12);
        let span = (now - start).num_seconds().max(1) as f64;
        let mut rows: Vec<&str> = points.iter().map(|p| p.0.as_str()).collect();
        rows.sort();
        rows.dedup();
        let (label_w, plot_w, row_h) = (330.0, 700.0, 26.0);
        let height = 40.0 + rows.len() as f64 * row_h;
        let x = |t: DateTime<Utc>| label_w + plot_w * ((t - start).num_seconds() as f64 / span);
        let window = (longest_window > 0).then(|| {
            let wx = x(now - Duration::seconds(longest_window));
            Window {
                x: format!("{wx:.1}"),
                width: format!("{:.1}", x(now) - wx),
                height: format!("{:.1}", height - 24.0),
            }
        });
        let rows = rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let y = 30.0 + i as f64 * row_h;
                let skip = row.chars().count().saturating_sub(48);
                TimelineRow {
                    y: format!("{y:.1}"),
                    label_y: format!("{:.1}", y + 4.0),
                    label: row.chars().skip(skip).collect(),
                    dots: points
                        .iter()
                        .filter(|p| p.0 == *row)
                        .map(|(_, t, status)| Dot {
                            x: format!("{:.1}", x(*t)),
                            fill: color(status),
                            at: t.format("%Y-%m-%d %H:%M").to_string(),
                            status: status.to_string(),
                        })
                        .collect(),
                }
            })
            .collect();
        Some(Timeline {
            width: format!("{}", label_w + plot_w + 20.0),
            height: format!("{height}"),
            window,
            now_x: format!("{:.1}", x(now)),
            now_y2: format!("{:.1}", height - 6.0),
            now_label_y: format!("{height:.1}"),
            label_w: format!("{label_w}"),
            line_x2: format!("{:.1}", label_w + plot_w),
            rows,
        })
    }
}

/// Restore wall times over the period, with the RTO as a line.
#[derive(Serialize)]
struct RtoChart<'a> {
    width: String,
    height: String,
    pad: String,
    axis_bottom: String,
    axis_right: String,
    top_label_y: String,
    top: String,
    rto: Option<RtoLine>,
    series: Vec<Series<'a>>,
}

#[derive(Serialize)]
struct RtoLine {
    x2: String,
    y: String,
    label_y: String,
    seconds: String,
}

#[derive(Serialize)]
struct Series<'a> {
    points: String,
    dots: Vec<RestoreDot<'a>>,
}

#[derive(Serialize)]
struct RestoreDot<'a> {
    x: String,
    y: String,
    fill: &'static str,
    subject: &'a str,
    at: String,
    seconds: String,
}

impl<'a> RtoChart<'a> {
    fn of(c: &'a Compliance) -> Option<RtoChart<'a>> {
        let t0 = c.restores.iter().map(|r| r.at).min()?;
        let t1 = c.restores.iter().map(|r| r.at).max()?;
        let (w, h, pad) = (900.0, 240.0, 40.0);
        let span = (t1 - t0).num_seconds().max(1) as f64;
        let rto_max = c
            .restores
            .iter()
            .filter_map(|r| r.rto_seconds)
            .fold(0.0, f64::max);
        let top = c
            .restores
            .iter()
            .map(|r| r.seconds)
            .fold(rto_max, f64::max)
            .max(1.0)
            * 1.15;
        let x = |t: DateTime<Utc>| pad + (w - 2.0 * pad) * ((t - t0).num_seconds() as f64 / span);
        let y = |v: f64| h - pad - (h - 2.0 * pad) * (v / top);
        let rto = (rto_max > 0.0).then(|| {
            let ry = y(rto_max);
            RtoLine {
                x2: format!("{:.1}", w - pad),
                y: format!("{ry:.1}"),
                label_y: format!("{:.1}", ry - 4.0),
                seconds: format!("{rto_max:.0}"),
            }
        });
        let mut by_subject: BTreeMap<&str, Vec<&RestorePoint>> = BTreeMap::new();
        for r in &c.restores {
            by_subject.entry(r.subject.as_str()).or_default().push(r);
        }
        let series = by_subject
            .values()
            .map(|points| Series {
                points: points
                    .iter()
                    .map(|r| format!("{:.1},{:.1}", x(r.at), y(r.seconds)))
                    .collect::<Vec<_>>()
                    .join(" "),
                dots: points
                    .iter()
                    .map(|r| RestoreDot {
                        x: format!("{:.1}", x(r.at)),
                        y: format!("{:.1}", y(r.seconds)),
                        fill: color(&r.status),
                        subject: &r.subject,
                        at: r.at.format("%Y-%m-%d %H:%M").to_string(),
                        seconds: format!("{:.1}", r.seconds),
                    })
                    .collect(),
            })
            .collect();
        Some(RtoChart {
            width: format!("{w}"),
            height: format!("{h}"),
            pad: format!("{pad}"),
            axis_bottom: format!("{:.1}", h - pad),
            axis_right: format!("{:.1}", w - pad),
            top_label_y: format!("{pad:.1}"),
            top: format!("{top:.0}"),
            rto,
            series,
        })
    }
}
