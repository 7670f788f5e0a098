//! History: every run appended to a store (a SQLite file by default), each
//! record chained to the previous one by hash so that an edited or deleted
//! record is detectable by `backproof history verify`.
//!
//! A run is stored as the JSON report it produced (the evidence, verbatim)
//! and, for queries, exploded into finding and backup rows; `verify` checks
//! both the chain and that the rows still say what the JSON says.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::report::{self, Report};

/// `prev_hash` of the first run.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, thiserror::Error)]
#[error("history {location}: {message}")]
pub struct HistoryError {
    pub location: String,
    pub message: String,
}

pub struct History {
    conn: Connection,
    location: String,
}

/// The stored run, as read back.
#[derive(Debug, Clone, Serialize)]
pub struct StoredRun {
    pub id: i64,
    pub started_at: DateTime<Utc>,
    pub command: String,
    pub exit_code: i32,
    pub hash: String,
    pub report: Value,
}

/// Outcome of `history verify`.
#[derive(Debug, Serialize)]
pub struct ChainCheck {
    pub location: String,
    pub runs: usize,
    /// Hash of the newest run: state it in exported reports, keep it apart.
    pub head: String,
    pub problems: Vec<String>,
}

/// `$BACKPROOF_HISTORY`, else `$XDG_DATA_HOME/backproof/history.sqlite`,
/// else `~/.local/share/backproof/history.sqlite`.
pub fn default_location() -> PathBuf {
    if let Some(p) = std::env::var_os("BACKPROOF_HISTORY") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("backproof/history.sqlite")
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    command     TEXT NOT NULL,
    exit_code   INTEGER NOT NULL,
    report      TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS findings (
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    seq         INTEGER NOT NULL,
    subject     TEXT NOT NULL,
    check_name  TEXT NOT NULL,
    status      TEXT NOT NULL,
    summary     TEXT NOT NULL,
    evidence    TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX IF NOT EXISTS findings_subject ON findings(subject, check_name);
CREATE TABLE IF NOT EXISTS backups (
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    seq         INTEGER NOT NULL,
    subject     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    timestamp   TEXT NOT NULL,
    size        INTEGER NOT NULL,
    bytes_read  INTEGER NOT NULL,
    sha256      TEXT,
    PRIMARY KEY (run_id, seq)
);
";

fn chain_hash(prev: &str, report_json: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(report_json.as_bytes());
    hex::encode(h.finalize())
}

impl History {
    /// Opens (creating if needed) the store at `location`: a file path.
    pub fn open(location: &Path) -> Result<History, HistoryError> {
        let loc = location.display().to_string();
        let err = |m: String| HistoryError {
            location: loc.clone(),
            message: m,
        };
        if loc.starts_with("postgres://") || loc.starts_with("postgresql://") {
            return Err(err(
                "a PostgreSQL history is not supported by this version; use a SQLite file path"
                    .into(),
            ));
        }
        if let Some(dir) = location.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        let conn = Connection::open(location).map_err(|e| err(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .and_then(|_| conn.execute_batch(SCHEMA))
            .map_err(|e| err(e.to_string()))?;
        Ok(History {
            conn,
            location: loc,
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> HistoryError {
        HistoryError {
            location: self.location.clone(),
            message: e.to_string(),
        }
    }

    /// Appends a run in one transaction; returns its id and chain hash.
    pub fn append(&mut self, report: &Report) -> Result<(i64, String), HistoryError> {
        let location = self.location.clone();
        let err = |e: rusqlite::Error| HistoryError {
            location: location.clone(),
            message: e.to_string(),
        };
        // IMMEDIATE: take the write lock before reading the chain head, so
        // two concurrent appends queue (busy timeout) instead of one failing
        // on a read-to-write upgrade, and never chain to the same head.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let out = insert_run(&tx, report).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(out)
    }

    /// Runs started at or after `since`, oldest first.
    pub fn runs_since(&self, since: DateTime<Utc>) -> Result<Vec<StoredRun>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, started_at, command, exit_code, hash, report FROM runs ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i32>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, started, command, exit_code, hash, report) = row.map_err(|e| self.err(e))?;
            let started_at = DateTime::parse_from_rfc3339(&started)
                .map_err(|e| self.err(format!("run {id}: bad started_at: {e}")))?
                .with_timezone(&Utc);
            if started_at < since {
                continue;
            }
            let report: Value =
                serde_json::from_str(&report).map_err(|e| self.err(format!("run {id}: {e}")))?;
            out.push(StoredRun {
                id,
                started_at,
                command,
                exit_code,
                hash,
                report,
            });
        }
        Ok(out)
    }

    /// The verification ledger: each backup's latest full read.
    pub fn ledger(&self) -> Result<crate::ledger::Ledger, HistoryError> {
        use crate::finding::Status;
        let run_ids: Vec<i64> = self
            .conn
            .prepare("SELECT id FROM runs WHERE command = 'run' ORDER BY id")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| self.err(e))?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT b.subject, b.run_id, r.started_at, b.size,
                        (SELECT group_concat(f.status) FROM findings f
                          WHERE f.run_id = b.run_id AND f.subject = b.subject
                            AND f.check_name IN ('integrity', 'structure'))
                   FROM backups b JOIN runs r ON r.id = b.run_id
                  WHERE b.run_id = (SELECT max(run_id) FROM backups b2 WHERE b2.subject = b.subject)",
            )
            .map_err(|e| self.err(e))?;
        let rows: Vec<(String, i64, String, i64, Option<String>)> = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        let mut ledger = crate::ledger::Ledger::new();
        for (subject, run_id, started, size, statuses) in rows {
            let result = statuses
                .unwrap_or_default()
                .split(',')
                .map(|s| match s {
                    "pass" => Status::Pass,
                    "warn" => Status::Warn,
                    "fail" => Status::Fail,
                    _ => Status::Error,
                })
                .max()
                .unwrap_or(Status::Error);
            let verified_at = DateTime::parse_from_rfc3339(&started)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| self.err(format!("run {run_id}: {e}")))?;
            ledger.insert(
                subject,
                crate::ledger::LedgerEntry {
                    run_id,
                    verified_at,
                    size: size as u64,
                    result,
                    runs_ago: run_ids.iter().filter(|&&id| id > run_id).count(),
                },
            );
        }
        Ok(ledger)
    }

    /// Hash of the newest run, or the genesis hash for an empty history.
    pub fn head(&self) -> Result<String, HistoryError> {
        Ok(self
            .conn
            .query_row("SELECT hash FROM runs ORDER BY id DESC LIMIT 1", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))?
            .unwrap_or_else(|| GENESIS.to_string()))
    }

    /// Recomputes the chain and compares the exploded rows with each run's
    /// stored report. Every discrepancy is listed, not just the first.
    pub fn verify(&self) -> Result<ChainCheck, HistoryError> {
        let mut problems = Vec::new();
        let mut stmt = self
            .conn
            .prepare("SELECT id, report, prev_hash, hash FROM runs ORDER BY id")
            .map_err(|e| self.err(e))?;
        let runs: Vec<(i64, String, String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        let mut prev = GENESIS.to_string();
        let mut last_id = 0;
        for (id, json, prev_hash, hash) in &runs {
            if *id != last_id + 1 {
                problems.push(format!(
                    "run(s) {}..{} missing before run {id}: records were deleted",
                    last_id + 1,
                    id - 1
                ));
            }
            if *prev_hash != prev {
                problems.push(format!(
                    "run {id}: previous-hash link broken (a record before it was edited or deleted)"
                ));
            }
            if chain_hash(prev_hash, json) != *hash {
                problems.push(format!(
                    "run {id}: stored report does not match its hash: the record was edited"
                ));
            }
            match serde_json::from_str::<Value>(json) {
                Ok(report) => problems.extend(self.compare_rows(*id, &report)?),
                Err(e) => problems.push(format!("run {id}: stored report is not JSON: {e}")),
            }
            prev = hash.clone();
            last_id = *id;
        }
        let orphans: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM findings WHERE run_id NOT IN (SELECT id FROM runs)",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        if orphans > 0 {
            problems.push(format!(
                "{orphans} finding row(s) belong to no run: a run record was deleted"
            ));
        }
        Ok(ChainCheck {
            location: self.location.clone(),
            runs: runs.len(),
            head: prev,
            problems,
        })
    }

    fn compare_rows(&self, id: i64, report: &Value) -> Result<Vec<String>, HistoryError> {
        let mut problems = Vec::new();
        let expected = report["findings"].as_array().cloned().unwrap_or_default();
        let mut stmt = self
            .conn
            .prepare("SELECT seq, subject, check_name, status, summary, evidence FROM findings WHERE run_id = ?1 ORDER BY seq")
            .map_err(|e| self.err(e))?;
        let rows: Vec<(i64, String, String, String, String, String)> = stmt
            .query_map([id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        if rows.len() != expected.len() {
            problems.push(format!(
                "run {id}: {} finding row(s) stored, its report has {}",
                rows.len(),
                expected.len()
            ));
        }
        for (seq, subject, check, status, summary, evidence) in rows {
            let Some(f) = expected.get(seq as usize) else {
                continue;
            };
            let evidence_json: Value = serde_json::from_str(&evidence).unwrap_or(Value::Null);
            let want_evidence = f
                .get("evidence")
                .cloned()
                .unwrap_or_else(|| Value::Object(Default::default()));
            if f["subject"] != subject.as_str()
                || f["check"] != check.as_str()
                || f["status"] != status.as_str()
                || f["summary"] != summary.as_str()
                || evidence_json != want_evidence
            {
                problems.push(format!(
                    "run {id}: finding {seq} ({check} {subject}) was edited"
                ));
            }
        }
        Ok(problems)
    }
}

fn insert_run(tx: &rusqlite::Transaction<'_>, report: &Report) -> rusqlite::Result<(i64, String)> {
    let json = report::json::render(report);
    let prev: String = tx
        .query_row("SELECT hash FROM runs ORDER BY id DESC LIMIT 1", [], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or_else(|| GENESIS.to_string());
    let hash = chain_hash(&prev, &json);
    tx.execute(
        "INSERT INTO runs (started_at, finished_at, command, exit_code, report, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            report.started_at.to_rfc3339(),
            report.finished_at.to_rfc3339(),
            report.command,
            report.exit_code(),
            json,
            prev,
            hash
        ],
    )?;
    let id = tx.last_insert_rowid();
    for (seq, f) in report.findings.iter().enumerate() {
        tx.execute(
            "INSERT INTO findings (run_id, seq, subject, check_name, status, summary, evidence)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                id,
                seq as i64,
                f.subject,
                f.check.as_str(),
                f.status.as_str(),
                f.summary,
                Value::Object(f.evidence.clone()).to_string()
            ],
        )?;
    }
    for (seq, b) in report.backups.iter().enumerate() {
        let sha = b
            .digests
            .values()
            .next()
            .and_then(|d| d.get(&crate::digest::Algorithm::Sha256))
            .cloned();
        tx.execute(
            "INSERT INTO backups (run_id, seq, subject, kind, timestamp, size, bytes_read, sha256)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                id,
                seq as i64,
                b.subject,
                b.kind.to_string(),
                b.timestamp.to_rfc3339(),
                b.size as i64,
                b.bytes_read as i64,
                sha
            ],
        )?;
    }
    Ok((id, hash))
}
