//! Webhook notifications of the nightly run (issue 14, item 4), against a
//! local HTTP server the test starts: the body, the retry after a 5xx, the
//! recovery, the Slack body, and a webhook that cannot be reached leaving
//! the exit code alone and its secret path out of the logs.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use common::*;

/// Answers each POST with the next status of `script` (then 200), keeping
/// each request's path and body.
struct Hook {
    url: String,
    seen: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Hook {
    fn start(script: Vec<u16>) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/services/T0/B0/SECRETTOKEN",
            listener.local_addr().unwrap()
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut script = script.into_iter();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                reader.read_line(&mut first).unwrap();
                let mut len = 0;
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    if h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
                log.lock()
                    .unwrap()
                    .push((path, serde_json::from_slice(&body).unwrap()));
                let status = script.next().unwrap_or(200);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Hook { url, seen }
    }

    fn bodies(&self) -> Vec<Value> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }
}

fn config(dir: &Path, source: &Path, notify: &str) -> std::path::PathBuf {
    let cfg = dir.join("backproof.toml");
    fs::write(
        &cfg,
        format!(
            "[report]\ndir = \"{}\"\nformats = [\"json\"]\n\n[[sources]]\nname = \"pg\"\npath = \"{}\"\n{notify}",
            dir.join("reports").display(),
            source.display()
        ),
    )
    .unwrap();
    cfg
}

fn run(cfg: &Path, history: &Path, extra: &[&str]) -> (i32, String) {
    let o = bin()
        .args(["run", "--no-progress", "--config"])
        .arg(cfg)
        .arg("--history")
        .arg(history)
        .args(extra)
        .output()
        .unwrap();
    (code(&o), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn a_failed_run_is_posted_retried_after_a_5xx_and_a_recovery_follows() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad");
    fs::create_dir(&bad).unwrap();
    let dump = corpus().join("clean/postgres/appdb-2026-11-20T0300.dump");
    let bytes = fs::read(&dump).unwrap();
    fs::write(
        bad.join("appdb-2026-11-20T0300.dump"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    let hook = Hook::start(vec![503]);
    let history = tmp.path().join("h.sqlite");
    let cfg = config(
        tmp.path(),
        &bad,
        &format!("\n[notify]\nurl = \"{}\"\nbody = \"generic\"\n", hook.url),
    );
    let (code, stderr) = run(&cfg, &history, &[]);
    assert_eq!(code, 1, "{stderr}");
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 2, "one 503, then the retry: {bodies:#?}");
    assert_eq!(bodies[0], bodies[1]);
    let b = &bodies[1];
    assert_eq!(b["event"], "failure");
    assert_eq!(b["exit_code"], 1);
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .starts_with("backproof run: FAILED"),
        "{b:#}"
    );
    let failures = b["failures"].as_array().unwrap();
    assert!(
        failures.iter().any(|f| f["status"] == "fail"
            && f["subject"]
                .as_str()
                .unwrap()
                .ends_with("appdb-2026-11-20T0300.dump")),
        "{b:#}"
    );

    // Fixed: the next run passes, and says so once (a recovery).
    fs::write(bad.join("appdb-2026-11-20T0300.dump"), &bytes).unwrap();
    let (code, stderr) = run(&cfg, &history, &["--log-level", "info"]);
    assert_eq!(code, 0, "{stderr}");
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 3, "{bodies:#?}");
    assert_eq!(bodies[2]["event"], "recovery");
    assert!(stderr.contains("notification sent"), "{stderr}");
    assert!(
        !stderr.contains("SECRETTOKEN"),
        "the webhook's path leaked: {stderr}"
    );
    // Passing again: nothing to tell.
    let (code, _) = run(&cfg, &history, &[]);
    assert_eq!(code, 0);
    assert_eq!(hook.bodies().len(), 3);
}

#[test]
fn slack_gets_its_body_and_an_unreachable_webhook_changes_no_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad");
    fs::create_dir(&bad).unwrap();
    fs::write(
        bad.join("appdb-2026-11-20T0300.sql"),
        "-- PostgreSQL database dump\nCREATE TABLE t (x int);\n",
    )
    .unwrap();
    let hook = Hook::start(vec![]);
    let history = tmp.path().join("h.sqlite");
    let cfg = config(
        tmp.path(),
        &bad,
        "\n[notify]\nurl = \"http://unused.invalid/x\"\nbody = \"slack\"\n",
    );
    // --notify overrides the config's URL and keeps its body.
    let (code, stderr) = run(&cfg, &history, &["--notify", &hook.url]);
    assert_eq!(code, 1, "{stderr}");
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 1);
    let text = bodies[0]["text"].as_str().unwrap();
    assert!(text.starts_with("backproof run: FAILED"), "{text}");
    assert!(text.contains("• FAIL structure"), "{text}");

    // Nothing listens on port 1: three attempts, a warning, exit code kept.
    let (code, stderr) = run(
        &cfg,
        &history,
        &["--notify", "http://127.0.0.1:1/services/T0/B0/SECRETTOKEN"],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("notification not sent: webhook http://127.0.0.1:1/…")
            && stderr.contains("after 3 attempt(s)"),
        "{stderr}"
    );
    assert!(!stderr.contains("SECRETTOKEN"), "{stderr}");
}
