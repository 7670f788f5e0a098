//! Webhook notifications for the nightly job: a JSON summary posted on a
//! failure (and, if asked, on recovery or success), in a generic or a
//! Slack-compatible body, retried with backoff. A notification never
//! changes the run's exit code: it is sent after the run is recorded, and
//! a failure to send is a warning in the logs, its URL shown without the
//! path or query (a Slack webhook's path is its secret).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::finding::Status;
use crate::report::Report;

/// `[notify]` in backproof.toml.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    pub url: String,
    /// When to post: `failure` (exit 1 or 2), `recovery` (a passing run
    /// after one that did not), `success` (every passing run).
    #[serde(default = "default_on")]
    pub on: Vec<When>,
    #[serde(default)]
    pub body: Body,
}

impl NotifyConfig {
    /// `--notify URL` alone: failures and recoveries, the body by host.
    pub fn for_url(url: &str) -> NotifyConfig {
        NotifyConfig {
            url: url.to_string(),
            on: default_on(),
            body: Body::Auto,
        }
    }
}

fn default_on() -> Vec<When> {
    vec![When::Failure, When::Recovery]
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum When {
    Failure,
    Recovery,
    Success,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    /// Slack's body for hooks.slack.com, the generic one elsewhere.
    #[default]
    Auto,
    Generic,
    Slack,
}

/// Attempts and the waits between them: 1 s, then 2 s.
const ATTEMPTS: u32 = 3;
const FIRST_WAIT: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(10);
/// Failures listed in the body; the rest are counted.
const LISTED: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("webhook {url}: {reason} (after {attempts} attempt(s))")]
    Failed {
        url: String,
        reason: String,
        attempts: u32,
    },
}

/// Why this run is worth a notification, if it is. `previous` is the exit
/// code of the last finished run before this one, if any.
pub fn occasion(on: &[When], exit_code: i32, previous: Option<i32>) -> Option<When> {
    let wants = |w| on.contains(&w);
    if exit_code != 0 {
        return wants(When::Failure).then_some(When::Failure);
    }
    if previous.is_some_and(|p| p != 0) && wants(When::Recovery) {
        return Some(When::Recovery);
    }
    wants(When::Success).then_some(When::Success)
}

/// The body for `report`.
pub fn body(report: &Report, when: When, url: &str, kind: Body) -> Value {
    let bad: Vec<_> = report
        .findings
        .iter()
        .filter(|f| matches!(f.status, Status::Fail | Status::Error))
        .collect();
    let t = &report.summary.findings;
    let headline = match when {
        When::Failure => format!(
            "backproof {}: FAILED ({} fail, {} error of {} checks; exit {})",
            report.command,
            t.fail,
            t.error,
            report.findings.len(),
            report.summary.exit_code
        ),
        When::Recovery => format!(
            "backproof {}: recovered, every check passes",
            report.command
        ),
        When::Success => format!("backproof {}: every check passes", report.command),
    };
    let slack = match kind {
        Body::Slack => true,
        Body::Generic => false,
        Body::Auto => host(url).is_some_and(|h| h == "hooks.slack.com"),
    };
    if slack {
        let mut text = headline;
        for f in bad.iter().take(LISTED) {
            text += &format!(
                "\n• {} {} `{}`: {}",
                f.status.as_str().to_uppercase(),
                f.check.as_str(),
                f.subject,
                f.summary
            );
        }
        if bad.len() > LISTED {
            text += &format!("\n… and {} more", bad.len() - LISTED);
        }
        return json!({ "text": text });
    }
    json!({
        "tool": report.tool,
        "event": match when {
            When::Failure => "failure",
            When::Recovery => "recovery",
            When::Success => "success",
        },
        "message": headline,
        "command": report.command,
        "started_at": report.started_at,
        "finished_at": report.finished_at,
        "exit_code": report.summary.exit_code,
        "summary": report.summary,
        "failures": bad.iter().take(LISTED).map(|f| json!({
            "subject": f.subject,
            "check": f.check,
            "status": f.status,
            "summary": f.summary,
        })).collect::<Vec<_>>(),
        "more_failures": bad.len().saturating_sub(LISTED),
    })
}

/// Posts `body`, retrying connection failures, 429 and 5xx with backoff;
/// returns the attempts it took.
pub fn send(url: &str, body: &Value) -> Result<u32, NotifyError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let mut wait = FIRST_WAIT;
    let mut reason = String::new();
    for attempt in 1..=ATTEMPTS {
        match agent.post(url).send_json(body) {
            Ok(r) if r.status().is_success() => return Ok(attempt),
            Ok(r) => {
                let s = r.status();
                reason = format!("HTTP {s}");
                if !(s.is_server_error() || s.as_u16() == 429) {
                    return Err(failed(url, reason, attempt));
                }
            }
            Err(e) => reason = crate::redact::redact_text(&e.to_string()),
        }
        if attempt < ATTEMPTS {
            std::thread::sleep(wait);
            wait *= 2;
        }
    }
    Err(failed(url, reason, ATTEMPTS))
}

fn failed(url: &str, reason: String, attempts: u32) -> NotifyError {
    NotifyError::Failed {
        url: shown(url),
        reason,
        attempts,
    }
}

fn host(url: &str) -> Option<String> {
    url::Url::parse(url).ok()?.host_str().map(str::to_string)
}

/// A webhook URL as logs may show it: scheme, host and port only.
pub fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}/…",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "<unparsable webhook URL>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_recoveries_and_successes_are_told_apart() {
        let on = default_on();
        assert_eq!(occasion(&on, 1, Some(0)), Some(When::Failure));
        assert_eq!(occasion(&on, 2, None), Some(When::Failure));
        assert_eq!(occasion(&on, 0, Some(1)), Some(When::Recovery));
        assert_eq!(occasion(&on, 0, Some(0)), None);
        assert_eq!(occasion(&on, 0, None), None);
        let all = [When::Success];
        assert_eq!(occasion(&all, 0, Some(0)), Some(When::Success));
        assert_eq!(occasion(&all, 1, Some(0)), None);
    }

    #[test]
    fn a_webhook_url_is_shown_without_its_secret_path() {
        let u = "https://hooks.slack.com/services/T000/B000/XXXXSECRET?token=abc";
        assert_eq!(shown(u), "https://hooks.slack.com/…");
        assert_eq!(shown("http://127.0.0.1:8080/h"), "http://127.0.0.1:8080/…");
    }
}
