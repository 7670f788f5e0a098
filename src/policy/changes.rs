//! The promise "a snapshot before every change": each change in a change
//! log (a deploy log, a Consul or Vault audit log) has a verified snapshot
//! of the source taken at most `within` before it, and not after it.
//!
//! Two change-log formats, told apart by content (the first line that is
//! neither blank nor a `#` comment):
//!
//! - text or CSV: one change per line, a timestamp first (RFC 3339, or
//!   `YYYY-MM-DD HH:MM:SS[.fff]` read as UTC), then a description after a
//!   space, tab, comma, `;` or `|`; an optional CSV header line whose first
//!   field is `time`, `timestamp`, `date`, `datetime`, `when` or `at`;
//! - JSON lines: one object per line with its time in `time`, `timestamp`,
//!   `@timestamp`, `created_at` or `payload.timestamp` (an RFC 3339 string).
//!   Audit-log entries that change nothing are set aside and counted, never
//!   judged: reads (`operation` or `method` read, list, get, head, options,
//!   also under `request` / `payload.request`) and the second half of an
//!   entry already counted (Vault's `"type": "response"`, Consul's
//!   `"stage": "OperationComplete"`).
//!
//! A line that cannot be read is an error naming the file and line: a
//! change log half understood would be half judged.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Value, json};

use super::{Observed, RemedyIf, SourceView, human, select};
use crate::finding::{Check, Finding, Status};

/// One change event.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// 1-based line in the change log.
    pub line: usize,
    pub at: DateTime<Utc>,
    pub description: String,
}

/// What a change log held.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeLog {
    pub format: LogFormat,
    pub changes: Vec<Change>,
    /// Audit entries that read rather than change (or repeat an entry).
    pub set_aside: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    JsonLines,
}

impl LogFormat {
    fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::JsonLines => "json lines",
        }
    }
}

/// A change log that cannot be read: the promise cannot be judged.
#[derive(Debug, thiserror::Error)]
pub enum ChangeLogError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {problem}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        problem: LineProblem,
    },
}

/// Why one line of a change log cannot be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LineProblem {
    #[error("not UTF-8")]
    NotUtf8,
    #[error("no timestamp at the start of the line (RFC 3339 or YYYY-MM-DD HH:MM:SS): {0:?}")]
    NoTimestamp(String),
    #[error("not a JSON object ({0}); the log is JSON lines from its first entry on")]
    NotJson(String),
    #[error("no time field (time, timestamp, @timestamp, created_at or payload.timestamp)")]
    NoTimeField,
    #[error("{field} is not an RFC 3339 time: {value}")]
    BadTime { field: &'static str, value: String },
}

/// Reads and parses a change log.
pub fn load(path: &Path) -> Result<ChangeLog, ChangeLogError> {
    let bytes = std::fs::read(path).map_err(|source| ChangeLogError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&bytes).map_err(|(line, problem)| ChangeLogError::Line {
        path: path.to_path_buf(),
        line,
        problem,
    })
}

/// Parses a change log's bytes; an error carries its 1-based line.
pub fn parse(bytes: &[u8]) -> Result<ChangeLog, (usize, LineProblem)> {
    let mut format = None;
    let mut log = ChangeLog {
        format: LogFormat::Text,
        changes: Vec::new(),
        set_aside: 0,
    };
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line_no = i + 1;
        let text = std::str::from_utf8(raw).map_err(|_| (line_no, LineProblem::NotUtf8))?;
        let text = text.trim_start_matches('\u{feff}').trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let first = format.is_none();
        let f = *format.get_or_insert(if text.starts_with('{') {
            LogFormat::JsonLines
        } else {
            LogFormat::Text
        });
        log.format = f;
        match f {
            LogFormat::Text => {
                if first && is_header(text) {
                    continue;
                }
                let (at, description) = text_line(text)
                    .ok_or_else(|| (line_no, LineProblem::NoTimestamp(clip(text))))?;
                log.changes.push(Change {
                    line: line_no,
                    at,
                    description,
                });
            }
            LogFormat::JsonLines => match json_line(text).map_err(|p| (line_no, p))? {
                Some((at, description)) => log.changes.push(Change {
                    line: line_no,
                    at,
                    description,
                }),
                None => log.set_aside += 1,
            },
        }
    }
    Ok(log)
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

const HEADERS: [&str; 6] = ["time", "timestamp", "date", "datetime", "when", "at"];

fn is_header(text: &str) -> bool {
    let field = text
        .split([',', ';', '\t', '|'])
        .next()
        .unwrap_or("")
        .trim()
        .trim_matches('"')
        .to_ascii_lowercase();
    HEADERS.contains(&field.as_str())
}

/// An RFC 3339 time, or `YYYY-MM-DD[T ]HH:MM:SS[.fff]` without a zone (UTC).
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    None
}

/// A text line: the timestamp at its start, the rest its description.
fn text_line(text: &str) -> Option<(DateTime<Utc>, String)> {
    let quoted = text.starts_with('"');
    let body = text.strip_prefix('"').unwrap_or(text);
    let b = body.as_bytes();
    // The date, its T or space, then the time and any fraction or offset.
    if b.len() < 19 || !(b[10] == b'T' || b[10] == b' ' || b[10] == b't') {
        return None;
    }
    let end = 11
        + body[11..]
            .find(|c: char| !(c.is_ascii_digit() || ":.+-Zz".contains(c)))
            .unwrap_or(body.len() - 11);
    let at = parse_time(&body[..end])?;
    let mut rest = &body[end..];
    if quoted {
        rest = rest.strip_prefix('"')?;
    }
    let description = rest.trim_start_matches([' ', '\t', ',', ';', '|']).trim();
    let description = description
        .strip_prefix('"')
        .and_then(|d| d.strip_suffix('"'))
        .unwrap_or(description);
    Some((at, description.to_string()))
}

fn path<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(v, |v, k| v.get(k))
}

/// A JSON line: `Some` a change, `None` an entry set aside.
fn json_line(text: &str) -> Result<Option<(DateTime<Utc>, String)>, LineProblem> {
    let v: Value = serde_json::from_str(text).map_err(|e| LineProblem::NotJson(e.to_string()))?;
    if !v.is_object() {
        return Err(LineProblem::NotJson("a JSON value, not an object".into()));
    }
    const TIMES: [(&str, &[&str]); 5] = [
        ("time", &["time"]),
        ("timestamp", &["timestamp"]),
        ("@timestamp", &["@timestamp"]),
        ("created_at", &["created_at"]),
        ("payload.timestamp", &["payload", "timestamp"]),
    ];
    let (field, value) = TIMES
        .iter()
        .find_map(|(f, keys)| Some((*f, path(&v, keys)?)))
        .ok_or(LineProblem::NoTimeField)?;
    let at = value
        .as_str()
        .and_then(parse_time)
        .ok_or_else(|| LineProblem::BadTime {
            field,
            value: clip(&value.to_string()),
        })?;
    let str_at = |keys: &[&str]| path(&v, keys).and_then(Value::as_str);
    // The second half of an entry already counted.
    if str_at(&["type"]) == Some("response")
        || str_at(&["stage"]) == Some("OperationComplete")
        || str_at(&["payload", "stage"]) == Some("OperationComplete")
    {
        return Ok(None);
    }
    let operation = [
        &["operation"][..],
        &["method"],
        &["request", "operation"],
        &["payload", "request", "operation"],
    ]
    .iter()
    .find_map(|k| str_at(k));
    if operation.is_some_and(|o| {
        ["read", "list", "get", "head", "options"].contains(&o.to_ascii_lowercase().as_str())
    }) {
        return Ok(None);
    }
    let what = [
        &["description"][..],
        &["message"],
        &["msg"],
        &["summary"],
        &["change"],
    ]
    .iter()
    .find_map(|k| str_at(k))
    .map(str::to_string)
    .or_else(|| {
        let target = [
            &["request", "path"][..],
            &["payload", "request", "endpoint"],
            &["path"],
            &["endpoint"],
        ]
        .iter()
        .find_map(|k| str_at(k))?;
        Some(format!("{} {target}", operation.unwrap_or("change")))
    })
    .unwrap_or_else(|| clip(text));
    Ok(Some((at, what)))
}

/// Evidence lists stop here; the counts stay whole.
///
/// A snapshot counts when its integrity and structure verdict is pass or
/// warn (usable, e.g. not covered by a manifest); a sampled-out snapshot
/// carries its last full read's verdict, so it counts as it did then.
const LISTED: usize = 500;

fn counts(o: &Observed) -> bool {
    matches!(o.verdict, Some(Status::Pass | Status::Warn))
}

/// Judges every change in the window against the source's snapshots.
#[allow(clippy::too_many_arguments)]
pub(super) fn snapshot_before_change(
    name: &str,
    source: &str,
    view: &SourceView,
    pattern: &Option<String>,
    changes: Option<&Path>,
    within: Duration,
    since: Option<Duration>,
    now: DateTime<Utc>,
) -> Finding {
    let base = |status, summary: String| {
        Finding::new(name, Check::SnapshotBeforeChange, status, summary)
            .with("source", source)
            .with("change_log", changes.map(|p| p.display().to_string()))
            .with("within_seconds", within.as_secs())
            .with("since_seconds", since.map(|s| s.as_secs()))
            .with("policy", name)
    };
    let Some(path) = changes else {
        return base(Status::Error, "no change log named".into()).remedy(
            "Name the change log: `changes = \"…\"` on the check, or on the source in the config.",
        );
    };
    let log = match load(path) {
        Ok(log) => log,
        Err(e) => {
            return base(Status::Error, format!("change log cannot be read: {e}")).remedy(
                "Fix or point at the change log: every line must carry its time (see the README).",
            );
        }
    };
    let window = chrono::Duration::from_std(within).unwrap_or(chrono::Duration::MAX);
    let from = since.map(|s| now - chrono::Duration::from_std(s).unwrap_or(chrono::Duration::MAX));
    let in_window: Vec<&Change> = log
        .changes
        .iter()
        .filter(|c| from.is_none_or(|f| c.at >= f))
        .collect();
    let snaps = select(&view.backups, pattern);
    let good: Vec<&Observed> = snaps.iter().copied().filter(|o| counts(o)).collect();
    let rejected: Vec<Value> = snaps
        .iter()
        .filter(|o| o.verdict.is_some_and(|v| v >= Status::Fail))
        .map(|o| json!({"subject": o.subject, "timestamp": o.timestamp.to_rfc3339()}))
        .collect();
    let since_text = since
        .map(|s| format!(" in the last {}", humantime::format_duration(s)))
        .unwrap_or_default();
    let base = |status, summary: String| {
        base(status, summary)
            .with("format", log.format.as_str())
            .with("changes", in_window.len())
            .with("changes_in_log", log.changes.len())
            .with("set_aside", log.set_aside)
            .with("snapshots_counted", good.len())
            .with(
                "counted",
                "only snapshots whose integrity and structure checks passed: read this run, or, sampled out (--sample), when last read in full",
            )
            .with("not_counted_failed_verification", rejected.clone())
    };
    if in_window.is_empty() {
        let newest = log.changes.iter().map(|c| c.at).max();
        let summary = match newest {
            Some(t) => format!(
                "no change{since_text}: nothing to judge (the newest of the log's {} change(s) is {})",
                log.changes.len(),
                t.to_rfc3339()
            ),
            None => "the change log holds no change: nothing to judge".to_string(),
        };
        return base(Status::Pass, summary).with("newest_change", newest.map(|t| t.to_rfc3339()));
    }

    let mut matched = Vec::new();
    let mut failing = Vec::new();
    let mut unproven = Vec::new();
    let mut first_failure: Option<String> = None;
    for c in &in_window {
        let before = |o: &&Observed| o.timestamp <= c.at;
        let inside = |o: &&Observed| before(o) && c.at - o.timestamp <= window;
        let change = json!({
            "line": c.line,
            "time": c.at.to_rfc3339(),
            "description": c.description,
        });
        if let Some(s) = good.iter().copied().rfind(inside) {
            matched.push(json!({
                "change": change,
                "snapshot": s.subject,
                "snapshot_timestamp": s.timestamp.to_rfc3339(),
                "before_seconds": (c.at - s.timestamp).num_seconds(),
            }));
            continue;
        }
        if let Some(s) = snaps
            .iter()
            .copied()
            .filter(inside)
            .rfind(|o| o.verdict.is_none())
        {
            unproven.push(json!({"change": change, "snapshot": s.subject}));
            continue;
        }
        let nearest = good.iter().copied().rfind(before);
        let corrupt: Vec<&str> = snaps
            .iter()
            .copied()
            .filter(inside)
            .map(|o| o.subject.as_str())
            .collect();
        let after = snaps
            .iter()
            .copied()
            .filter(|o| counts(o))
            .find(|o| o.timestamp > c.at);
        let mut why = match nearest {
            Some(n) => format!(
                "nearest verified snapshot before it is {} ({} before)",
                n.subject,
                human(c.at - n.timestamp)
            ),
            None => "no verified snapshot before it at all".to_string(),
        };
        if !corrupt.is_empty() {
            why += &format!("; {} in the window failed verification", corrupt.join(", "));
        }
        if let Some(a) = after {
            why += &format!(
                "; {} is {} after it and does not count",
                a.subject,
                human(a.timestamp - c.at)
            );
        }
        first_failure.get_or_insert_with(|| {
            format!(
                "line {} at {} {:?}: {why}",
                c.line,
                c.at.to_rfc3339(),
                c.description
            )
        });
        failing.push(json!({
            "change": change,
            "nearest_before": nearest.map(|n| json!({
                "subject": n.subject,
                "timestamp": n.timestamp.to_rfc3339(),
                "age_seconds": (c.at - n.timestamp).num_seconds(),
            })),
            "failed_verification_in_window": corrupt,
            "after": after.map(|a| a.subject.as_str()),
        }));
    }
    let within_text = humantime::format_duration(within);
    let total = in_window.len();
    let (status, summary) = if let Some(first) = &first_failure {
        let more = if failing.len() > 1 {
            format!(" (and {} more)", failing.len() - 1)
        } else {
            String::new()
        };
        (
            Status::Fail,
            format!(
                "{} of {total} change(s){since_text} without a verified snapshot at most {within_text} before: {first}{more}",
                failing.len()
            ),
        )
    } else if !unproven.is_empty() {
        (
            Status::Error,
            format!(
                "{} of {total} change(s){since_text} have before them only snapshots with no verification result (e.g. {}): verify them to judge",
                unproven.len(),
                unproven[0]["snapshot"].as_str().unwrap_or("")
            ),
        )
    } else {
        (
            Status::Pass,
            format!(
                "every one of {total} change(s){since_text} has a verified snapshot at most {within_text} before it"
            ),
        )
    };
    let listed = |v: &mut Vec<Value>| {
        let n = v.len();
        v.truncate(LISTED);
        n
    };
    let (n_match, n_fail, n_unproven) = (
        listed(&mut matched),
        listed(&mut failing),
        listed(&mut unproven),
    );
    base(status, summary)
        .with("matched", matched)
        .with("matched_count", n_match)
        .with("failing", failing)
        .with("failing_count", n_fail)
        .with("not_verified", unproven)
        .with("not_verified_count", n_unproven)
        .with("listed_at_most", LISTED)
        .remedy_if(
            status,
            "Take a snapshot (`consul snapshot save`, `bao operator raft snapshot save`, `etcdctl snapshot save`) before every change, and keep it where backproof reads it; a snapshot that fails verification is no way back.",
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap()
    }

    #[test]
    fn text_lines_in_their_forms() {
        let log = parse(
            b"# deploys\n\
              2026-11-20T10:00:00Z deploy lms v2.3\n\
              2026-11-20 11:30:00,\"upgrade consul\"\n\
              \"2026-11-20T12:00:00+01:00\";rollback\n\
              2026-11-20T12:30:00.250Z\tschema change\r\n\n",
        )
        .unwrap();
        assert_eq!(log.format, LogFormat::Text);
        let got: Vec<_> = log
            .changes
            .iter()
            .map(|c| (c.line, c.at, c.description.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (2, t("2026-11-20T10:00:00Z"), "deploy lms v2.3"),
                (3, t("2026-11-20T11:30:00Z"), "upgrade consul"),
                (4, t("2026-11-20T11:00:00Z"), "rollback"),
                (5, t("2026-11-20T12:30:00.250Z"), "schema change"),
            ]
        );
    }

    #[test]
    fn csv_header_only_first() {
        let log = parse(b"time,description\n2026-11-20 10:00:00,deploy\n").unwrap();
        assert_eq!(log.changes.len(), 1);
        let e = parse(b"2026-11-20 10:00:00,deploy\ntime,description\n").unwrap_err();
        assert_eq!(e.0, 2);
    }

    #[test]
    fn unreadable_lines_name_their_line() {
        let e = parse(b"2026-11-20T10:00:00Z ok\nyesterday deploy\n").unwrap_err();
        assert_eq!(e.0, 2);
        assert!(matches!(e.1, LineProblem::NoTimestamp(_)));
        let e = parse(b"2026-11-20T10:00:00Z ok\n\xff\n").unwrap_err();
        assert_eq!(e, (2, LineProblem::NotUtf8));
        let e = parse(b"2026-13-20T10:00:00Z month 13\n").unwrap_err();
        assert_eq!(e.0, 1);
        let e = parse(b"{\"time\":\"2026-11-20T10:00:00Z\"}\nplain line\n").unwrap_err();
        assert_eq!(e.0, 2);
        assert!(matches!(e.1, LineProblem::NotJson(_)));
        let e = parse(b"{\"when\":\"x\"}\n").unwrap_err();
        assert_eq!(e, (1, LineProblem::NoTimeField));
        let e = parse(b"{\"time\":1700000000}\n").unwrap_err();
        assert!(
            matches!(e.1, LineProblem::BadTime { field: "time", .. }),
            "{e:?}"
        );
    }

    #[test]
    fn audit_logs_judge_changes_not_reads() {
        let log = parse(
            br#"{"time":"2026-11-20T10:00:00.123456Z","type":"request","request":{"operation":"update","path":"secret/data/lms"}}
{"time":"2026-11-20T10:00:00.200000Z","type":"response","request":{"operation":"update","path":"secret/data/lms"}}
{"time":"2026-11-20T10:05:00Z","type":"request","request":{"operation":"read","path":"secret/data/lms"}}
{"created_at":"2026-11-20T11:00:00Z","payload":{"stage":"OperationStart","request":{"operation":"PUT","endpoint":"/v1/kv/lms/config"}}}
{"created_at":"2026-11-20T11:00:01Z","payload":{"stage":"OperationComplete","request":{"operation":"PUT","endpoint":"/v1/kv/lms/config"}}}
{"timestamp":"2026-11-20 12:00:00","message":"deploy lms v2.4"}
"#,
        )
        .unwrap();
        assert_eq!(log.format, LogFormat::JsonLines);
        assert_eq!(log.set_aside, 3);
        let got: Vec<_> = log
            .changes
            .iter()
            .map(|c| (c.line, c.description.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "update secret/data/lms"),
                (4, "PUT /v1/kv/lms/config"),
                (6, "deploy lms v2.4"),
            ]
        );
    }

    fn snap(hour: u32, minute: u32, verdict: Option<Status>) -> Observed {
        let timestamp = t(&format!("2026-11-20T{hour:02}:{minute:02}:00Z"));
        let key = format!("consul-2026-11-20T{hour:02}{minute:02}.snap");
        Observed {
            subject: format!("consul/{key}"),
            key,
            timestamp,
            size: 1159,
            verdict,
            encryption: None,
        }
    }

    fn judge(backups: Vec<Observed>, log: &str, since: Option<Duration>) -> Finding {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deploys.log");
        std::fs::write(&path, log).unwrap();
        let view = SourceView {
            backups,
            ..SourceView::default()
        };
        snapshot_before_change(
            "consul before change",
            "consul",
            &view,
            &None,
            Some(&path),
            Duration::from_secs(3600),
            since,
            t("2026-11-21T00:00:00Z"),
        )
    }

    const LOG: &str = "2026-11-20T10:00:00Z deploy lms v2.3\n2026-11-20T14:00:00Z upgrade consul\n";

    #[test]
    fn every_change_covered_passes_with_its_snapshot() {
        let ok = Some(Status::Pass);
        let f = judge(
            vec![
                snap(9, 0, ok),
                snap(9, 30, ok),
                snap(13, 15, Some(Status::Warn)),
            ],
            LOG,
            None,
        );
        assert_eq!(f.status, Status::Pass, "{}", f.summary);
        assert_eq!(f.evidence["changes"], 2);
        assert_eq!(
            f.evidence["matched"][0]["snapshot"],
            "consul/consul-2026-11-20T0930.snap"
        );
        assert_eq!(f.evidence["matched"][1]["before_seconds"], 45 * 60);
    }

    #[test]
    fn a_change_without_a_snapshot_fails_naming_it() {
        let ok = Some(Status::Pass);
        // 14:00 has only a snapshot 2 h before it, and one 5 minutes after.
        let f = judge(
            vec![snap(9, 30, ok), snap(12, 0, ok), snap(14, 5, ok)],
            LOG,
            None,
        );
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary.contains("1 of 2")
                && f.summary.contains("line 2")
                && f.summary.contains("upgrade consul")
                && f.summary
                    .contains("consul-2026-11-20T1200.snap (2h before)")
                && f.summary
                    .contains("T1405.snap is 5m after it and does not count"),
            "{}",
            f.summary
        );
        assert_eq!(f.evidence["failing"][0]["change"]["line"], 2);
        assert_eq!(
            f.evidence["failing"][0]["nearest_before"]["age_seconds"],
            7200
        );
    }

    #[test]
    fn a_corrupt_snapshot_is_no_snapshot() {
        let f = judge(
            vec![
                snap(9, 30, Some(Status::Pass)),
                snap(13, 30, Some(Status::Fail)),
            ],
            LOG,
            None,
        );
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.summary
                .contains("T1330.snap in the window failed verification"),
            "{}",
            f.summary
        );
        assert_eq!(
            f.evidence["not_counted_failed_verification"][0]["subject"],
            "consul/consul-2026-11-20T1330.snap"
        );
    }

    #[test]
    fn unverified_snapshots_leave_it_unjudged_and_since_narrows() {
        let f = judge(
            vec![snap(9, 30, Some(Status::Pass)), snap(13, 30, None)],
            LOG,
            None,
        );
        assert_eq!(f.status, Status::Error, "{}", f.summary);
        // Only the last 12 h: the 10:00 change is out of the window.
        let f = judge(
            vec![snap(13, 30, Some(Status::Pass))],
            LOG,
            Some(Duration::from_secs(12 * 3600)),
        );
        assert_eq!(f.status, Status::Pass, "{}", f.summary);
        assert_eq!(
            (
                f.evidence["changes"].clone(),
                f.evidence["changes_in_log"].clone()
            ),
            (json!(1), json!(2))
        );
        let f = judge(vec![], LOG, Some(Duration::from_secs(3600)));
        assert_eq!(f.status, Status::Pass);
        assert!(
            f.summary.starts_with("no change in the last 1h"),
            "{}",
            f.summary
        );
    }

    #[test]
    fn a_missing_or_broken_log_is_an_error() {
        let view = SourceView::default();
        let f = snapshot_before_change(
            "c",
            "consul",
            &view,
            &None,
            Some(Path::new("/nonexistent/deploys.log")),
            Duration::from_secs(60),
            None,
            Utc::now(),
        );
        assert_eq!(f.status, Status::Error);
        assert!(
            f.summary.contains("/nonexistent/deploys.log"),
            "{}",
            f.summary
        );
        let f = judge(vec![], "2026-11-20T10:00:00Z ok\nsoon: deploy\n", None);
        assert_eq!(f.status, Status::Error);
        assert!(
            f.summary.contains("deploys.log:2: no timestamp"),
            "{}",
            f.summary
        );
    }
}
