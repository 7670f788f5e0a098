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

use crate::finding::Status;
use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment};
use serde::Serialize;

use super::export::{BackupEvidence, Compliance, FindingGroup, RestorePoint, human_secs};
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

/// What the page lists in full before folding the rest into a count: the
/// JSON and CSV exports keep everything.
const GROUPS_SHOWN: usize = 50;
const EXAMPLES_SHOWN: usize = 10;
const BACKUPS_SHOWN: usize = 200;
const FAILURES_SHOWN: usize = 100;
/// Approximate advance of one character of the page's 12 px sans-serif,
/// generous so labels are never cut (SVG text does not wrap).
const CHAR_PX: usize = 8;

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
    /// Fail and error groups, then warnings (folded).
    problems: Folded<GroupRow<'a>>,
    warnings: Folded<GroupRow<'a>>,
    problem_findings: usize,
    warning_findings: usize,
    calendar: Option<Calendar<'a>>,
    timeline: Option<Timeline>,
    rto_charts: Vec<RtoChart<'a>>,
    promises: Vec<PromiseRow<'a>>,
    last_restores: Vec<RestoreRow<'a>>,
    checks: Vec<CheckRow<'a>>,
    sources: Vec<SourceRow<'a>>,
    backups_total: usize,
    backups_passing: usize,
    /// The backups whose last verification did not pass.
    unhealthy: Folded<BackupRow<'a>>,
    failures: Folded<FailureRow<'a>>,
}

/// The first rows of a list and how many more the page leaves to the
/// exports.
#[derive(Serialize)]
struct Folded<T> {
    rows: Vec<T>,
    total: usize,
    more: usize,
}

impl<T> Folded<T> {
    fn of<'b, S: 'b>(
        all: impl ExactSizeIterator<Item = &'b S>,
        shown: usize,
        f: impl FnMut(&'b S) -> T,
    ) -> Folded<T> {
        let total = all.len();
        Folded {
            rows: all.take(shown).map(f).collect(),
            total,
            more: total.saturating_sub(shown),
        }
    }
}

fn pct(rate: f64) -> String {
    format!("{:.1}", rate * 100.0)
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

impl<'a> Page<'a> {
    fn of(c: &'a Compliance) -> Page<'a> {
        let (problems, warnings): (Vec<&FindingGroup>, Vec<&FindingGroup>) =
            c.attention.iter().partition(|g| g.status != "warn");
        let group_row = |g: &'a FindingGroup| GroupRow {
            color: color(&g.status),
            status: &g.status,
            source: &g.source,
            check: &g.check,
            promise: g.promise.as_deref(),
            findings: g.findings,
            subjects: g.subjects,
            examples: g
                .examples
                .iter()
                .take(EXAMPLES_SHOWN)
                .map(String::as_str)
                .collect(),
            more_subjects: g
                .subjects
                .saturating_sub(g.examples.len().min(EXAMPLES_SHOWN)),
            nights: g.nights,
            first_seen: when(g.first_seen),
            last_seen: when(g.last_seen),
            in_last_run: g.in_last_run,
            latest_subject: &g.latest_subject,
            latest_summary: &g.latest_summary,
        };
        let unhealthy: Vec<&BackupEvidence> = c
            .backups
            .iter()
            .filter(|b| b.last_result != "pass")
            .collect();
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
            problem_findings: problems.iter().map(|g| g.findings).sum(),
            warning_findings: warnings.iter().map(|g| g.findings).sum(),
            problems: Folded::of(problems.iter().copied(), GROUPS_SHOWN, group_row),
            warnings: Folded::of(warnings.iter().copied(), GROUPS_SHOWN, group_row),
            calendar: Calendar::of(c),
            timeline: Timeline::of(c),
            rto_charts: RtoChart::per_source(c),
            promises: c
                .promises
                .iter()
                .map(|p| PromiseRow {
                    promise: &p.promise,
                    check: &p.check,
                    findings: p.findings,
                    pass_rate: pct(p.pass_rate),
                    warn_rate: pct(p.warn_rate),
                    fail_rate: pct(p.fail_rate),
                    error_rate: pct(p.error_rate),
                    over: matches!(
                        (p.worst_achieved_seconds, p.promised_seconds),
                        (Some(a), Some(b)) if a > b
                    ),
                    // Sub-minute RTOs in tenths: "RTO 0s" reads as no restore.
                    achieved: match (&p.measure, p.worst_achieved_seconds) {
                        (Some(m), Some(v)) => format!("{m} {}", short_secs(v)),
                        _ => String::new(),
                    },
                    promised: p.promised_seconds.map(short_secs).unwrap_or_default(),
                })
                .collect(),
            last_restores: last_restore_per_source(c),
            checks: c
                .checks
                .iter()
                .map(|k| CheckRow {
                    check: &k.check,
                    findings: k.findings,
                    pass: k.pass,
                    warn: k.warn,
                    fail: k.fail,
                    error: k.error,
                    pass_rate: pct(k.pass_rate),
                    warn_rate: pct(k.warn_rate),
                    fail_rate: pct(k.fail_rate),
                    error_rate: pct(k.error_rate),
                })
                .collect(),
            sources: c
                .sources
                .iter()
                .map(|s| SourceRow {
                    source: &s.source,
                    backups: s.backups,
                    pass: s.pass,
                    warn: s.warn,
                    fail: s.fail,
                    error: s.error,
                    size: human_bytes(s.bytes),
                    oldest: s.oldest_verification.map(when).unwrap_or_default(),
                })
                .collect(),
            backups_total: c.backups.len(),
            backups_passing: c.backups.len() - unhealthy.len(),
            unhealthy: Folded::of(unhealthy.iter().copied(), BACKUPS_SHOWN, |b| BackupRow {
                subject: &b.subject,
                source: &b.source,
                kind: &b.kind,
                timestamp: &b.timestamp,
                verified: when(b.last_verified_at),
                color: color(&b.last_result),
                result: &b.last_result,
                times: b.times_verified,
            }),
            // Newest first: the log is for what happened lately.
            failures: Folded::of(c.failures.iter().rev(), FAILURES_SHOWN, |f| FailureRow {
                run_id: f.run_id,
                when: when(f.run_started_at),
                source: &f.source,
                check: &f.check,
                subject: &f.subject,
                color: color(&f.status),
                summary: &f.summary,
            }),
        }
    }
}

/// The newest passing restore of each source.
fn last_restore_per_source(c: &Compliance) -> Vec<RestoreRow<'_>> {
    let mut newest: BTreeMap<&str, &RestorePoint> = BTreeMap::new();
    for r in &c.last_restores {
        let e = newest.entry(&r.source).or_insert(r);
        if r.at > e.at {
            *e = r;
        }
    }
    newest
        .into_values()
        .map(|r| RestoreRow {
            source: &r.source,
            subject: &r.subject,
            at: when(r.at),
            seconds: format!("{:.1}", r.seconds),
            rto: human_secs(r.rto_seconds),
        })
        .collect()
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[derive(Serialize)]
struct GroupRow<'a> {
    color: &'static str,
    status: &'a str,
    source: &'a str,
    check: &'a str,
    promise: Option<&'a str>,
    findings: usize,
    subjects: usize,
    examples: Vec<&'a str>,
    more_subjects: usize,
    nights: usize,
    first_seen: String,
    last_seen: String,
    in_last_run: bool,
    latest_subject: &'a str,
    latest_summary: &'a str,
}

#[derive(Serialize)]
struct PromiseRow<'a> {
    promise: &'a str,
    check: &'a str,
    findings: usize,
    pass_rate: String,
    warn_rate: String,
    fail_rate: String,
    error_rate: String,
    /// The worst achieved is over the promise.
    over: bool,
    achieved: String,
    promised: String,
}

#[derive(Serialize)]
struct RestoreRow<'a> {
    source: &'a str,
    subject: &'a str,
    at: String,
    seconds: String,
    rto: String,
}

#[derive(Serialize)]
struct CheckRow<'a> {
    check: &'a str,
    findings: usize,
    pass: usize,
    warn: usize,
    fail: usize,
    error: usize,
    pass_rate: String,
    warn_rate: String,
    fail_rate: String,
    error_rate: String,
}

#[derive(Serialize)]
struct SourceRow<'a> {
    source: &'a str,
    backups: usize,
    pass: usize,
    warn: usize,
    fail: usize,
    error: usize,
    size: String,
    oldest: String,
}

#[derive(Serialize)]
struct BackupRow<'a> {
    subject: &'a str,
    source: &'a str,
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
    source: &'a str,
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
        let longest = c
            .calendar
            .keys()
            .map(|k| k.chars().count())
            .max()
            .unwrap_or(0);
        let (label_w, cell, gap) = ((longest * CHAR_PX + 12).max(100), 14, 3);
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

/// A source's backups: when taken, and their last result.
type Points<'a> = Vec<(DateTime<Utc>, &'a str)>;

/// Rows the backup-age chart draws; the rest are counted.
const TIMELINE_ROWS: usize = 30;
/// Backups closer than this many pixels share one dot (worst status).
const BUCKET_PX: f64 = 8.0;

/// Each source's backups as dots on a time axis (close ones merged into one
/// dot of the worst status), its promised retention window shaded.
#[derive(Serialize)]
struct Timeline {
    width: String,
    height: String,
    now_x: String,
    now_y2: String,
    now_label_y: String,
    label_w: String,
    line_x2: String,
    rows: Vec<TimelineRow>,
    more_rows: usize,
}

#[derive(Serialize)]
struct Window {
    x: String,
    y: String,
    width: String,
}

#[derive(Serialize)]
struct TimelineRow {
    y: String,
    label_y: String,
    label: String,
    window: Option<Window>,
    dots: Vec<Dot>,
}

#[derive(Serialize)]
struct Dot {
    x: String,
    fill: &'static str,
    title: String,
}

impl Timeline {
    fn of(c: &Compliance) -> Option<Timeline> {
        let mut by_source: BTreeMap<&str, Points> = BTreeMap::new();
        for b in &c.backups {
            if let Ok(t) = DateTime::parse_from_rfc3339(&b.timestamp) {
                by_source
                    .entry(&b.source)
                    .or_default()
                    .push((t.with_timezone(&Utc), &b.last_result));
            }
        }
        if by_source.is_empty() {
            return None;
        }
        let now = c.generated_at;
        let longest_window = c.retention_windows.values().max().copied().unwrap_or(0) as i64;
        let oldest = by_source
            .values()
            .flatten()
            .map(|p| p.0)
            .min()
            .unwrap_or(now);
        let start = oldest.min(now - Duration::seconds(longest_window)) - Duration::hours(12);
        let span = (now - start).num_seconds().max(1) as f64;
        // Sources with a backup that did not pass first.
        let mut rows: Vec<(&str, Points)> = by_source.into_iter().collect();
        rows.sort_by_key(|(name, points)| (points.iter().all(|p| p.1 == "pass"), *name));
        let more_rows = rows.len().saturating_sub(TIMELINE_ROWS);
        rows.truncate(TIMELINE_ROWS);
        let (label_w, plot_w, row_h): (f64, f64, f64) = (10.0, 1000.0, 34.0);
        let longest_label = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
        let width = (label_w + plot_w + 20.0).max((longest_label * CHAR_PX) as f64 + 20.0);
        let height = 30.0 + rows.len() as f64 * row_h;
        let x = |t: DateTime<Utc>| label_w + plot_w * ((t - start).num_seconds() as f64 / span);
        let rows = rows
            .into_iter()
            .enumerate()
            .map(|(i, (source, mut points))| {
                let y = 34.0 + i as f64 * row_h;
                points.sort();
                // One dot per bucket of pixels: worst status, with the count.
                let mut buckets: BTreeMap<i64, (Status, usize, DateTime<Utc>, DateTime<Utc>)> =
                    BTreeMap::new();
                for (t, status) in &points {
                    let s = Status::parse(status).unwrap_or(Status::Error);
                    let e = buckets
                        .entry((x(*t) / BUCKET_PX) as i64)
                        .or_insert((s, 0, *t, *t));
                    e.0 = e.0.max(s);
                    e.1 += 1;
                    e.3 = *t;
                }
                let window = c.retention_windows.get(source).map(|secs| {
                    let wx = x(now - Duration::seconds(*secs as i64));
                    Window {
                        x: format!("{wx:.1}"),
                        y: format!("{:.1}", y - 7.0),
                        width: format!("{:.1}", x(now) - wx),
                    }
                });
                TimelineRow {
                    y: format!("{y:.1}"),
                    label_y: format!("{:.1}", y - 10.0),
                    label: source.to_string(),
                    window,
                    dots: buckets
                        .into_iter()
                        .map(|(_, (status, n, first, last))| Dot {
                            x: format!("{:.1}", x(first)),
                            fill: color(status.as_str()),
                            title: if n == 1 {
                                format!("{} ({})", when(first), status.as_str())
                            } else {
                                format!(
                                    "{n} backups {} to {} (worst: {})",
                                    when(first),
                                    when(last),
                                    status.as_str()
                                )
                            },
                        })
                        .collect(),
                }
            })
            .collect();
        Some(Timeline {
            width: format!("{width}"),
            height: format!("{height}"),
            now_x: format!("{:.1}", x(now)),
            now_y2: format!("{:.1}", height - 6.0),
            now_label_y: format!("{:.1}", height + 4.0),
            label_w: format!("{label_w}"),
            line_x2: format!("{:.1}", label_w + plot_w),
            rows,
            more_rows,
        })
    }
}

/// Points one restore chart draws at most (the newest).
const RESTORE_POINTS: usize = 400;

/// One source's restore wall times over the period, with its RTO as a line
/// (or, when the RTO is far above every restore, said in words so the
/// restores are not flattened onto the axis).
#[derive(Serialize)]
struct RtoChart<'a> {
    source: &'a str,
    width: String,
    height: String,
    pad: String,
    /// Where the plot starts, under the title and its note.
    top: String,
    axis_bottom: String,
    axis_right: String,
    ticks: Vec<AxisTick>,
    dates: Vec<AxisTick>,
    rto: Option<RtoLine>,
    /// The RTO when it is off the chart's scale.
    rto_above: Option<String>,
    points: String,
    dots: Vec<RestoreDot<'a>>,
    /// "30 restore(s), slowest 26 s".
    note: String,
}

#[derive(Serialize)]
struct AxisTick {
    x: String,
    y: String,
    label: String,
}

#[derive(Serialize)]
struct RtoLine {
    x2: String,
    y: String,
    label_y: String,
    label: String,
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

/// "0.2 s", "42 s", "3m 20s", "1h".
fn short_secs(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.1} s")
    } else if v < 60.0 {
        format!("{v:.0} s")
    } else {
        human_secs(Some(v.round()))
    }
}

impl<'a> RtoChart<'a> {
    fn per_source(c: &'a Compliance) -> Vec<RtoChart<'a>> {
        let mut by_source: BTreeMap<&str, Vec<&RestorePoint>> = BTreeMap::new();
        for r in &c.restores {
            by_source.entry(&r.source).or_default().push(r);
        }
        by_source
            .into_iter()
            .map(|(source, mut points)| {
                points.sort_by_key(|r| r.at);
                let skip = points.len().saturating_sub(RESTORE_POINTS);
                Self::of(source, &points[skip..])
            })
            .collect()
    }

    fn of(source: &'a str, points: &[&'a RestorePoint]) -> RtoChart<'a> {
        let t0 = points.first().map(|r| r.at).unwrap_or_default();
        let t1 = points.last().map(|r| r.at).unwrap_or_default();
        let span = (t1 - t0).num_seconds().max(1) as f64;
        let slowest = points.iter().map(|r| r.seconds).fold(0.0, f64::max);
        let rto = points
            .iter()
            .filter_map(|r| r.rto_seconds)
            .fold(0.0, f64::max);
        // The RTO is drawn when it fits a scale the restores still read on.
        let rto_drawn = rto > 0.0 && rto <= slowest.max(1.0) * 4.0;
        let rto_above = (rto > 0.0 && !rto_drawn).then(|| {
            let share = 100.0 * slowest / rto;
            format!(
                "RTO {} is above this scale (the slowest took {} of it)",
                short_secs(rto),
                if share < 0.1 {
                    "under 0.1 %".to_string()
                } else {
                    format!("{share:.1} %")
                }
            )
        });
        let note = format!(
            "{} restore(s), slowest {}",
            points.len(),
            short_secs(slowest)
        );
        // Wide enough for the title and the note under it (10 px text,
        // about 5 px a character).
        let note_chars =
            note.chars().count() + rto_above.as_ref().map_or(0, |n| n.chars().count() + 5);
        let title_w = (source.chars().count() * CHAR_PX + 20).max(note_chars * 21 / 4 + 10) as f64;
        let (w, h, pad, left, top_y) = (title_w.max(520.0), 200.0, 28.0, 56.0, 40.0);
        let top = if rto_drawn { slowest.max(rto) } else { slowest }.max(1.0) * 1.15;
        let x = |t: DateTime<Utc>| {
            if points.len() == 1 {
                left + (w - left - pad) / 2.0
            } else {
                left + (w - left - pad) * ((t - t0).num_seconds() as f64 / span)
            }
        };
        let y = |v: f64| h - pad - (h - pad - top_y) * (v / top);
        let rto_line = rto_drawn.then(|| {
            let ry = y(rto);
            RtoLine {
                x2: format!("{:.1}", w - pad),
                y: format!("{ry:.1}"),
                label_y: format!("{:.1}", ry - 4.0),
                label: format!("RTO {}", short_secs(rto)),
            }
        });
        let ticks = [0.0, top / 2.0, top / 1.15]
            .iter()
            .map(|v| AxisTick {
                x: format!("{:.1}", left - 6.0),
                y: format!("{:.1}", y(*v) + 4.0),
                label: short_secs(*v),
            })
            .collect();
        let mut dates = vec![AxisTick {
            x: format!("{left:.1}"),
            y: format!("{:.1}", h - 10.0),
            label: t0.format("%m-%d").to_string(),
        }];
        if t1.date_naive() != t0.date_naive() {
            dates.push(AxisTick {
                x: format!("{:.1}", w - pad),
                y: format!("{:.1}", h - 10.0),
                label: t1.format("%m-%d").to_string(),
            });
        }
        RtoChart {
            source,
            width: format!("{w}"),
            height: format!("{h}"),
            pad: format!("{pad}"),
            top: format!("{top_y}"),
            axis_bottom: format!("{:.1}", h - pad),
            axis_right: format!("{:.1}", w - pad),
            ticks,
            dates,
            rto: rto_line,
            rto_above,
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
                    at: when(r.at),
                    seconds: format!("{:.1}", r.seconds),
                })
                .collect(),
            note,
        }
    }
}
