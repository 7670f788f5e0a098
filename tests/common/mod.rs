//! Shared helpers: run the real binary, read its JSON report.

#![allow(dead_code)]

pub mod pg_history;
pub mod seaweed;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The binary, with its history kept out of the user's home: one throwaway
/// SQLite file per test process (tests that inspect history pass --history).
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_backproof"));
    let history = std::env::temp_dir().join(format!(
        "backproof-test-history-{}.sqlite",
        std::process::id()
    ));
    c.env("BACKPROOF_HISTORY", history);
    c
}

/// The corpus made by fixtures/make.sh: the committed one, or a freshly made
/// one when BACKPROOF_CORPUS points at it (the test script does both).
pub fn corpus() -> PathBuf {
    match std::env::var_os("BACKPROOF_CORPUS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/corpus"),
    }
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("backproof runs")
}

pub fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

/// `verify --format json` on the paths; returns (exit code, report).
pub fn verify_json(paths: &[&Path]) -> (i32, Value) {
    let mut cmd = bin();
    cmd.arg("verify").arg("--format").arg("json");
    cmd.args(paths);
    let o = cmd.output().expect("backproof runs");
    let report: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (code(&o), report)
}

pub fn findings(report: &Value) -> &Vec<Value> {
    report["findings"].as_array().expect("findings array")
}

/// Findings as "status check subject" lines, for readable assertion failures.
pub fn describe(report: &Value) -> String {
    findings(report)
        .iter()
        .map(|f| {
            format!(
                "{} {} {}: {}",
                f["status"], f["check"], f["subject"], f["summary"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Scratch dirs under `tmp`: of backproof process `pid`, or of any.
pub fn scratch_dirs_of(tmp: &Path, pid: Option<u32>) -> Vec<PathBuf> {
    let prefix = match pid {
        Some(pid) => format!("backproof-scratch-{pid}-"),
        None => "backproof-scratch-".to_string(),
    };
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&prefix)
        })
        .collect()
}

/// The scratch dir under `tmp` of backproof process `pid` whose
/// PostgreSQL server has said it is ready (`postmaster.pid`), waited for
/// up to a minute.
pub fn ready_postgres_scratch(tmp: &Path, pid: u32) -> PathBuf {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        assert!(
            std::time::Instant::now() < until,
            "the scratch server never came up"
        );
        let ready = scratch_dirs_of(tmp, Some(pid)).into_iter().find(|d| {
            std::fs::read_to_string(d.join("data/postmaster.pid"))
                .map(|t| t.contains("ready"))
                .unwrap_or(false)
        });
        if let Some(d) = ready {
            return d;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}
