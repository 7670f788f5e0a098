//! History: every run appended to a store (a SQLite file by default, or a
//! PostgreSQL database a team shares), each record chained to the previous
//! one by hash so that an edited or deleted record is detectable by
//! `backproof history verify`.
//!
//! A run is stored as the JSON report it produced (the evidence, verbatim)
//! and, for queries, exploded into finding and backup rows; `verify` checks
//! both the chain and that the rows still say what the JSON says.

mod anchor;
mod prune;

pub use prune::Pruned;
mod db;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::Connection;

pub use db::DbError;
use db::{Db, Sql};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::finding::{Check, Status};
use crate::fleet::FleetMark;
use crate::redact::redact;
use crate::report::{self, Report};
use crate::restore::RestoreFacts;

/// `prev_hash` of the first run.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The history could not be read or written: the run's evidence is not
/// safe, so the command exits 2.
#[derive(Debug, thiserror::Error)]
#[error("history {location}: {problem}")]
pub struct HistoryError {
    /// Redacted: never a password.
    pub location: String,
    #[source]
    pub problem: Problem,
}

#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The history existed (its anchor says so) but the file is gone or
    /// empty: recreating it would silently discard the evidence.
    #[error(
        "it held run {} (hash {}) but is now {state}: refusing to start a new history in its place; restore it from a backup, or remove {} to start a new one deliberately",
        .anchor.run_id, .anchor.hash, .anchor_path.display()
    )]
    Vanished {
        state: &'static str,
        anchor: anchor::Anchor,
        anchor_path: PathBuf,
    },
    #[error("its anchor {} cannot be read or written: {source}", path.display())]
    Anchor {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `history prune` of a chain that does not verify: pruning would hide
    /// the edit.
    #[error("its chain does not verify, so nothing was pruned: {}", .problems.join("; "))]
    Tampered { problems: Vec<String> },
    /// A stored record that does not decode: named, with the cause.
    #[error("{what}: {source}")]
    Record {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn record_error(what: String, e: impl std::error::Error + Send + Sync + 'static) -> Problem {
    Problem::Record {
        what,
        source: Box::new(e),
    }
}

pub struct History {
    db: RefCell<Db>,
    /// Redacted, for messages.
    location: String,
    /// As given, for the anchor file.
    path: PathBuf,
    /// The anchor as it was when the history was opened.
    anchored: Option<anchor::Anchor>,
}

/// The stored run, as read back.
#[derive(Debug, Clone, Serialize)]
pub struct StoredRun {
    pub id: i64,
    pub started_at: DateTime<Utc>,
    pub command: String,
    pub exit_code: i32,
    pub hash: String,
    /// The run's findings and backups, decoded once from the stored report.
    pub findings: Vec<crate::finding::Finding>,
    pub backups: Vec<StoredBackup>,
    /// Set when a signal cut the run short (it then holds no verdict).
    pub interrupted: Option<crate::report::Interrupted>,
    /// The locations the run read and, for `run`, their config names.
    pub sources: Vec<String>,
    pub source_names: BTreeMap<String, String>,
}

/// A backup as an earlier run's report recorded it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredBackup {
    pub subject: String,
    #[serde(default = "unknown_kind")]
    pub kind: String,
    #[serde(default)]
    pub timestamp: String,
    #[serde(default)]
    pub size: u64,
}

fn unknown_kind() -> String {
    "?".to_string()
}

/// The parts of a stored report later stages read.
#[derive(Deserialize)]
struct StoredReport {
    #[serde(default)]
    findings: Vec<crate::finding::Finding>,
    #[serde(default)]
    backups: Vec<StoredBackup>,
    #[serde(default)]
    interrupted: Option<crate::report::Interrupted>,
    #[serde(default)]
    sources: Vec<String>,
    #[serde(default)]
    source_names: BTreeMap<String, String>,
}

/// A shard's run of a fleet run, as the history holds it.
pub struct StoredShard {
    pub run_id: i64,
    pub report: Report,
}

/// What became of a fleet run's judgement.
pub enum Judged {
    /// Judged now, and appended.
    Now(Report),
    /// Judged complete by an earlier run: that record.
    Before(Report),
    /// Shards are still to report.
    NotYet,
}

fn decode_report(id: &Sql, stored: &Sql) -> Result<Report, Problem> {
    let what = || format!("run {}", id.int());
    let json = unpack_report(&stored.text()).map_err(|e| record_error(what(), e))?;
    serde_json::from_str(&json).map_err(|e| record_error(what(), e))
}

/// A test restore of an earlier run.
#[derive(Debug, Clone)]
pub struct PastRestore {
    /// When its run started.
    pub at: DateTime<Utc>,
    pub subject: String,
    pub status: Status,
    pub summary: String,
    pub facts: RestoreFacts,
}

impl PastRestore {
    pub fn seen(&self) -> crate::policy::RestoreSeen {
        crate::policy::RestoreSeen::of(
            self.at,
            &self.subject,
            self.status,
            &self.summary,
            &self.facts,
        )
    }
}

/// Outcome of `history verify`.
#[derive(Debug, Serialize)]
pub struct ChainCheck {
    pub location: String,
    pub runs: usize,
    /// Runs pruned to their links (`history prune`), sealed by a checkpoint.
    pub pruned: usize,
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
    id          BIGINT PRIMARY KEY,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    command     TEXT NOT NULL,
    exit_code   BIGINT NOT NULL,
    report      TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS findings (
    run_id      BIGINT NOT NULL REFERENCES runs(id),
    seq         BIGINT NOT NULL,
    subject     TEXT NOT NULL,
    check_name  TEXT NOT NULL,
    status      TEXT NOT NULL,
    summary     TEXT NOT NULL,
    evidence    TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS pruned_runs (
    id          BIGINT PRIMARY KEY,
    started_at  TEXT NOT NULL,
    command     TEXT NOT NULL,
    exit_code   BIGINT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    id            BIGINT PRIMARY KEY,
    through_run   BIGINT NOT NULL,
    pruned_before TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    digest        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS findings_subject ON findings(subject, check_name);
CREATE TABLE IF NOT EXISTS fleet_runs (
    run_id      BIGINT PRIMARY KEY,
    run_group   TEXT NOT NULL,
    shard       BIGINT NOT NULL,
    shards      BIGINT NOT NULL,
    complete    BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS fleet_runs_group ON fleet_runs(run_group);
CREATE TABLE IF NOT EXISTS backups (
    run_id      BIGINT NOT NULL REFERENCES runs(id),
    seq         BIGINT NOT NULL,
    subject     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    timestamp   TEXT NOT NULL,
    size        BIGINT NOT NULL,
    bytes_read  BIGINT NOT NULL,
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
    /// Opens (creating if needed) the store at `location`: a file path, or
    /// a `postgres://` URL naming a database backproof may create tables in.
    pub fn open(location: &Path) -> Result<History, HistoryError> {
        let loc = location.display().to_string();
        let err = |problem: Problem| HistoryError {
            location: redact(&loc),
            problem,
        };
        let anchor_error = |source| {
            err(Problem::Anchor {
                path: anchor::path_for(location),
                source,
            })
        };
        let anchored = anchor::read(location).map_err(anchor_error)?;
        if !is_url(&loc) {
            // SQLite would happily make a new, empty history out of a
            // missing or emptied file; the anchor says one was here.
            let size = std::fs::metadata(location).map(|m| m.len()).ok();
            if let (Some(a), None | Some(0)) = (&anchored, size) {
                return Err(err(Problem::Vanished {
                    state: if size.is_none() { "missing" } else { "empty" },
                    anchor: a.clone(),
                    anchor_path: anchor::path_for(location),
                }));
            }
        }
        let mut db = if is_url(&loc) {
            let client = postgres::Client::connect(&loc, postgres::NoTls)
                .map_err(|e| err(DbError::from(e).into()))?;
            Db::Postgres(Box::new(client), HashMap::new())
        } else {
            if let Some(dir) = location.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| err(e.into()))?;
            }
            let conn = Connection::open(location).map_err(|e| err(DbError::from(e).into()))?;
            conn.busy_timeout(std::time::Duration::from_secs(30))
                .map_err(|e| err(DbError::from(e).into()))?;
            Db::Sqlite(conn)
        };
        if db.is_postgres() {
            // Two first runs racing to create the tables would collide.
            // Each statement is its own transaction: as one, `CREATE INDEX
            // IF NOT EXISTS` would hold its table's lock while a shard's
            // append, holding the runs lock, waits for it (a deadlock).
            db.batch("SELECT pg_advisory_lock(7362)")
                .and_then(|_| {
                    SCHEMA
                        .split_terminator(';')
                        .filter(|s| !s.trim().is_empty())
                        .try_for_each(|statement| db.batch(statement))
                })
                .and_then(|_| db.batch("SELECT pg_advisory_unlock(7362)"))
        } else {
            db.batch(SCHEMA)
        }
        .map_err(|e| err(e.into()))?;
        Ok(History {
            db: RefCell::new(db),
            location: redact(&loc),
            path: location.to_path_buf(),
            anchored,
        })
    }

    fn err(&self, problem: impl Into<Problem>) -> HistoryError {
        HistoryError {
            location: self.location.clone(),
            problem: problem.into(),
        }
    }

    fn query(&self, sql: &str, params: &[Sql]) -> Result<Vec<Vec<Sql>>, HistoryError> {
        self.db
            .borrow_mut()
            .query(sql, params)
            .map_err(|e| self.err(e))
    }

    /// Appends a run in one transaction; returns its id and chain hash.
    pub fn append(&mut self, report: &Report) -> Result<(i64, String), HistoryError> {
        let db = self.db.get_mut();
        // Take the write lock before reading the chain head, so two
        // concurrent appends queue instead of chaining to the same head
        // (SQLite: IMMEDIATE; PostgreSQL: a table lock other appends wait on).
        let begin = if db.is_postgres() {
            "BEGIN; LOCK TABLE runs IN SHARE ROW EXCLUSIVE MODE"
        } else {
            "BEGIN IMMEDIATE"
        };
        let out = db
            .batch(begin)
            .and_then(|_| insert_run(db, report))
            .and_then(|out| db.batch("COMMIT").map(|_| out));
        match out {
            Ok((run_id, hash)) => {
                self.anchor_at(run_id, &hash)?;
                Ok((run_id, hash))
            }
            Err(e) => {
                let _ = db.batch("ROLLBACK");
                Err(self.err(e))
            }
        }
    }

    fn anchor_at(&mut self, run_id: i64, hash: &str) -> Result<(), HistoryError> {
        let a = anchor::Anchor {
            run_id,
            hash: hash.to_string(),
        };
        anchor::write(&self.path, &a).map_err(|source| {
            self.err(Problem::Anchor {
                path: anchor::path_for(&self.path),
                source,
            })
        })?;
        self.anchored = Some(a);
        Ok(())
    }

    /// Judges fleet run `group` under the write lock, so shards finishing
    /// together judge it once: `judge` gets every shard run recorded for
    /// the group and returns the fleet run's record, which is appended in
    /// the same transaction; `None` leaves the group waiting. A group
    /// already judged complete is not judged again.
    pub fn judge_fleet(
        &mut self,
        group: &str,
        judge: impl FnOnce(Vec<StoredShard>) -> Option<Report>,
    ) -> Result<Judged, HistoryError> {
        let db = self.db.get_mut();
        let begin = if db.is_postgres() {
            "BEGIN; LOCK TABLE runs IN SHARE ROW EXCLUSIVE MODE"
        } else {
            "BEGIN IMMEDIATE"
        };
        let out = db
            .batch(begin)
            .map_err(Problem::from)
            .and_then(|_| {
                let done = db.query(
                    "SELECT f.run_id, r.report FROM fleet_runs f JOIN runs r ON r.id = f.run_id
                      WHERE f.run_group = ?1 AND f.shard < 0 AND f.complete = 1
                      ORDER BY f.run_id DESC LIMIT 1",
                    &[group.into()],
                )?;
                if let Some(row) = done.first() {
                    return Ok((Judged::Before(decode_report(&row[0], &row[1])?), None));
                }
                let rows = db.query(
                    "SELECT f.run_id, r.report FROM fleet_runs f JOIN runs r ON r.id = f.run_id
                      WHERE f.run_group = ?1 AND f.shard >= 0 ORDER BY f.run_id",
                    &[group.into()],
                )?;
                let shards = rows
                    .iter()
                    .map(|row| {
                        Ok(StoredShard {
                            run_id: row[0].int(),
                            report: decode_report(&row[0], &row[1])?,
                        })
                    })
                    .collect::<Result<Vec<_>, Problem>>()?;
                match judge(shards) {
                    Some(report) => {
                        let appended = insert_run(db, &report)?;
                        Ok((Judged::Now(report), Some(appended)))
                    }
                    None => Ok((Judged::NotYet, None)),
                }
            })
            .and_then(|out| db.batch("COMMIT").map(|_| out).map_err(Problem::from));
        match out {
            Ok((judged, appended)) => {
                if let Some((run_id, hash)) = appended {
                    self.anchor_at(run_id, &hash)?;
                }
                Ok(judged)
            }
            Err(e) => {
                let _ = db.batch("ROLLBACK");
                Err(self.err(e))
            }
        }
    }

    /// The exit code of the newest run of `command` that finished (an
    /// interrupted one says nothing about the backups).
    pub fn last_exit_code(&self, command: &str) -> Result<Option<i32>, HistoryError> {
        let rows = self.query(
            "SELECT exit_code FROM runs WHERE command = ?1 AND exit_code < 128 ORDER BY id DESC LIMIT 1",
            &[command.into()],
        )?;
        Ok(rows.first().map(|r| r[0].int() as i32))
    }

    /// Runs started at or after `since`, oldest first.
    /// A fleet run is one run here: its shards' records are parts of it,
    /// and of its judgements only the newest counts (a complete one after
    /// an `error` one that named a missing shard).
    pub fn runs_since(&self, since: DateTime<Utc>) -> Result<Vec<StoredRun>, HistoryError> {
        let rows = self.query(
            "SELECT id, started_at, command, exit_code, hash, report FROM runs
              WHERE command <> ?1 ORDER BY id",
            &[crate::fleet::SHARD_COMMAND.into()],
        )?;
        let finals = self.query(
            "SELECT run_id, run_group FROM fleet_runs WHERE shard < 0",
            &[],
        )?;
        let mut newest: HashMap<String, i64> = HashMap::new();
        for r in &finals {
            let e = newest.entry(r[1].text()).or_insert(r[0].int());
            *e = (*e).max(r[0].int());
        }
        let superseded: std::collections::HashSet<i64> = finals
            .iter()
            .filter(|r| newest.get(&r[1].text()) != Some(&r[0].int()))
            .map(|r| r[0].int())
            .collect();
        let mut out = Vec::new();
        for row in rows {
            let id = row[0].int();
            if superseded.contains(&id) {
                continue;
            }
            let started_at = DateTime::parse_from_rfc3339(&row[1].text())
                .map_err(|e| self.err(record_error(format!("run {id}: bad started_at"), e)))?
                .with_timezone(&Utc);
            if started_at < since {
                continue;
            }
            let json = unpack_report(&row[5].text())
                .map_err(|e| self.err(record_error(format!("run {id}"), e)))?;
            let report: StoredReport = serde_json::from_str(&json)
                .map_err(|e| self.err(record_error(format!("run {id}"), e)))?;
            out.push(StoredRun {
                id,
                started_at,
                command: row[2].text(),
                exit_code: row[3].int() as i32,
                hash: row[4].text(),
                findings: report.findings,
                backups: report.backups,
                interrupted: report.interrupted,
                sources: report.sources,
                source_names: report.source_names,
            });
        }
        Ok(out)
    }

    /// The verification ledger: each backup's latest full read.
    pub fn ledger(&self) -> Result<crate::ledger::Ledger, HistoryError> {
        use crate::finding::Status;
        let run_ids: Vec<i64> = self
            .query("SELECT id FROM runs WHERE command = 'run' ORDER BY id", &[])?
            .iter()
            .map(|r| r[0].int())
            .collect();
        let concat = if self.db.borrow().is_postgres() {
            "string_agg(f.status, ',')"
        } else {
            "group_concat(f.status)"
        };
        let rows = self.query(
            &format!(
                "SELECT b.subject, b.run_id, r.started_at, b.size,
                        (SELECT {concat} FROM findings f
                          WHERE f.run_id = b.run_id AND f.subject = b.subject
                            AND f.check_name IN ('integrity', 'structure'))
                   FROM backups b JOIN runs r ON r.id = b.run_id
                  WHERE b.run_id = (SELECT max(run_id) FROM backups b2 WHERE b2.subject = b.subject)"
            ),
            &[],
        )?;
        let mut ledger = crate::ledger::Ledger::new();
        for row in rows {
            let run_id = row[1].int();
            let result = row[4]
                .text()
                .split(',')
                .map(|s| match s {
                    "pass" => Status::Pass,
                    "warn" => Status::Warn,
                    "fail" => Status::Fail,
                    _ => Status::Error,
                })
                .max()
                .unwrap_or(Status::Error);
            let verified_at = DateTime::parse_from_rfc3339(&row[2].text())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| self.err(record_error(format!("run {run_id}"), e)))?;
            ledger.insert(
                row[0].text(),
                crate::ledger::LedgerEntry {
                    run_id,
                    verified_at,
                    size: row[3].int() as u64,
                    result,
                    runs_ago: run_ids.iter().filter(|&&id| id > run_id).count(),
                },
            );
        }
        Ok(ledger)
    }

    /// Every recorded test restore, newest run first, with its facts typed.
    pub fn restores(&self) -> Result<Vec<PastRestore>, HistoryError> {
        let rows = self.query(
            "SELECT r.started_at, f.subject, f.status, f.summary, f.evidence
               FROM findings f JOIN runs r ON r.id = f.run_id
              WHERE f.check_name = ?1 AND r.command <> ?2 ORDER BY f.run_id DESC, f.seq",
            &[
                Check::Restore.as_str().into(),
                crate::fleet::SHARD_COMMAND.into(),
            ],
        )?;
        let mut out = Vec::new();
        for r in &rows {
            let evidence: serde_json::Map<String, Value> =
                serde_json::from_str(&r[4].text()).unwrap_or_default();
            // A restore promise's judgement is stored under the same check
            // but is not itself a restore.
            let Some(facts) = RestoreFacts::from_evidence(&evidence).filter(|f| f.is_restore())
            else {
                continue;
            };
            out.push(PastRestore {
                at: DateTime::parse_from_rfc3339(&r[0].text())
                    .map_err(|e| self.err(record_error("bad started_at".into(), e)))?
                    .with_timezone(&Utc),
                subject: r[1].text(),
                status: serde_json::from_value(Value::String(r[2].text())).unwrap_or(Status::Error),
                summary: r[3].text(),
                facts,
            });
        }
        Ok(out)
    }

    /// Whether some run of the chain has this hash (a head an auditor kept
    /// from an earlier report).
    pub fn contains_hash(&self, hash: &str) -> Result<bool, HistoryError> {
        let hash: Sql = hash.to_ascii_lowercase().into();
        let rows = self.query(
            "SELECT (SELECT count(*) FROM runs WHERE hash = ?1) + (SELECT count(*) FROM pruned_runs WHERE hash = ?1)",
            &[hash],
        )?;
        Ok(rows.first().is_some_and(|r| r[0].int() > 0))
    }

    /// Hash of the newest run, or the genesis hash for an empty history.
    pub fn head(&self) -> Result<String, HistoryError> {
        Ok(self
            .query("SELECT hash FROM runs ORDER BY id DESC LIMIT 1", &[])?
            .first()
            .map(|r| r[0].text())
            .unwrap_or_else(|| GENESIS.to_string()))
    }

    /// Recomputes the chain and compares the exploded rows with each run's
    /// stored report. Every discrepancy is listed, not just the first.
    pub fn verify(&self) -> Result<ChainCheck, HistoryError> {
        let mut problems = Vec::new();
        let runs = self.query(
            "SELECT id, report, prev_hash, hash FROM runs ORDER BY id",
            &[],
        )?;
        let mut prev = GENESIS.to_string();
        let mut last_id = 0;
        // Pruned runs: their links only, sealed by the newest checkpoint.
        let links = self.query(
            "SELECT id, prev_hash, hash FROM pruned_runs ORDER BY id",
            &[],
        )?;
        for l in &links {
            let (id, prev_hash, hash) = (l[0].int(), l[1].text(), l[2].text());
            if id != last_id + 1 {
                problems.push(format!(
                    "pruned run(s) {}..{} missing before pruned run {id}: records were deleted",
                    last_id + 1,
                    id - 1
                ));
            }
            if prev_hash != prev {
                problems.push(format!("pruned run {id}: previous-hash link broken"));
            }
            prev = hash;
            last_id = id;
        }
        let checkpoint = self.query(
            "SELECT through_run, digest FROM checkpoints ORDER BY id DESC LIMIT 1",
            &[],
        )?;
        match (checkpoint.first(), links.is_empty()) {
            (None, false) => problems.push(
                "runs were pruned but no checkpoint seals them: the checkpoint was deleted".into(),
            ),
            (Some(c), true) => problems.push(format!(
                "a checkpoint covers runs 1..{} but their links are gone: they were deleted",
                c[0].int()
            )),
            (Some(c), false)
                if c[0].int() != last_id || c[1].text() != prune::links_digest(&links) =>
            {
                problems.push(
                    "the checkpoint does not match the pruned runs' links: they or it were edited"
                        .into(),
                )
            }
            _ => {}
        }
        for row in &runs {
            let (id, stored, prev_hash, hash) =
                (row[0].int(), row[1].text(), row[2].text(), row[3].text());
            let json = match unpack_report(&stored) {
                Ok(j) => j,
                Err(e) => {
                    problems.push(format!(
                        "run {id}: stored report cannot be decoded ({e}): the record was edited"
                    ));
                    String::new()
                }
            };
            if id != last_id + 1 {
                problems.push(format!(
                    "run(s) {}..{} missing before run {id}: records were deleted",
                    last_id + 1,
                    id - 1
                ));
            }
            if prev_hash != prev {
                problems.push(format!(
                    "run {id}: previous-hash link broken (a record before it was edited or deleted)"
                ));
            }
            if chain_hash(&prev_hash, &json) != hash {
                problems.push(format!(
                    "run {id}: stored report does not match its hash: the record was edited"
                ));
            }
            match serde_json::from_str::<Value>(&json) {
                Ok(report) => problems.extend(self.compare_rows(id, &report)?),
                Err(e) => problems.push(format!("run {id}: stored report is not JSON: {e}")),
            }
            prev = hash;
            last_id = id;
        }
        let orphans = self.query(
            "SELECT count(*) FROM findings WHERE run_id NOT IN (SELECT id FROM runs)",
            &[],
        )?[0][0]
            .int();
        if orphans > 0 {
            problems.push(format!(
                "{orphans} finding row(s) belong to no run: a run record was deleted"
            ));
        }
        // The newest run this machine recorded must still be there, as it was.
        if let Some(a) = &self.anchored {
            let found = runs.iter().find(|r| r[0].int() == a.run_id);
            match found {
                None => problems.push(format!(
                    "run {} (hash {}), the newest this machine recorded, is missing: the newest record(s) were deleted",
                    a.run_id, a.hash
                )),
                Some(r) if r[3].text() != a.hash => problems.push(format!(
                    "run {} does not have the hash {} this machine recorded for it: the record was replaced",
                    a.run_id, a.hash
                )),
                _ => {}
            }
        }
        Ok(ChainCheck {
            location: self.location.clone(),
            runs: runs.len(),
            pruned: links.len(),
            head: prev,
            problems,
        })
    }

    fn compare_rows(&self, id: i64, report: &Value) -> Result<Vec<String>, HistoryError> {
        let mut problems = Vec::new();
        let expected = report["findings"].as_array().cloned().unwrap_or_default();
        let rows = self.query(
            "SELECT seq, subject, check_name, status, summary, evidence FROM findings WHERE run_id = ?1 ORDER BY seq",
            &[id.into()],
        )?;
        if rows.len() != expected.len() {
            problems.push(format!(
                "run {id}: {} finding row(s) stored, its report has {}",
                rows.len(),
                expected.len()
            ));
        }
        for row in rows {
            let seq = row[0].int();
            let (subject, check, status, summary) =
                (row[1].text(), row[2].text(), row[3].text(), row[4].text());
            let Some(f) = expected.get(seq as usize) else {
                continue;
            };
            let evidence_json: Value = serde_json::from_str(&row[5].text()).unwrap_or(Value::Null);
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
        // The fleet index says what the chained record says: a row added,
        // removed or edited would hide a shard or fake a judgement.
        let want = serde_json::from_value::<Option<FleetMark>>(report["fleet"].clone())
            .ok()
            .flatten()
            .map(|m| fleet_row(&m));
        let have: Vec<FleetRow> = self
            .query(
                "SELECT run_group, shard, shards, complete FROM fleet_runs WHERE run_id = ?1",
                &[id.into()],
            )?
            .iter()
            .map(|r| (r[0].text(), r[1].int(), r[2].int(), r[3].int() != 0))
            .collect();
        if have.first() != want.as_ref() {
            problems.push(format!(
                "run {id}: its fleet index row does not match its record: it was added, removed or edited"
            ));
        }
        Ok(problems)
    }
}

/// A history named by URL rather than by path.
pub fn is_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// Whether anything was ever recorded at `location` (a URL is asked).
pub fn exists(location: &Path) -> bool {
    is_url(&location.to_string_lossy()) || location.exists()
}

/// How a report is stored: zstd, then base64, behind this prefix (a run of
/// 1,000 backups: 1.6 MB of JSON becomes about 110 kB). The chain hash is
/// over the JSON itself, so storage changes no hash; records written
/// before, plain JSON, read as they are.
const PACKED: &str = "zstd+base64:";

/// The stored form of a report's JSON (see [`unpack_report`]).
pub fn pack_report(json: &str) -> String {
    use base64::Engine;
    // Compressing bytes in memory cannot fail; should it, plain JSON is
    // stored, which reads back the same.
    match zstd::bulk::compress(json.as_bytes(), 3) {
        Ok(z) => format!(
            "{PACKED}{}",
            base64::engine::general_purpose::STANDARD.encode(z)
        ),
        Err(_) => json.to_string(),
    }
}

/// The report JSON of a stored record (packed or plain); also for tests
/// and auditors reading the history's tables directly.
pub fn unpack_report(stored: &str) -> Result<String, std::io::Error> {
    use base64::Engine;
    let Some(b64) = stored.strip_prefix(PACKED) else {
        return Ok(stored.to_string());
    };
    let z = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(std::io::Error::other)?;
    // A record edited into a decompression bomb stops at 1 GiB.
    let mut out = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(zstd::stream::read::Decoder::new(&z[..])?, 1 << 30),
        &mut out,
    )?;
    String::from_utf8(out).map_err(std::io::Error::other)
}

/// A fleet record's index row: group, shard (-1 for the judgement), shard
/// count, judged complete.
type FleetRow = (String, i64, i64, bool);

fn fleet_row(mark: &FleetMark) -> FleetRow {
    match mark {
        FleetMark::Shard(p) => (p.group.clone(), i64::from(p.shard), i64::from(p.of), false),
        FleetMark::Final(s) => (s.group.clone(), -1, i64::from(s.shards), s.complete()),
    }
}

/// Inside the caller's transaction, with the runs table locked.
fn insert_run(db: &mut Db, report: &Report) -> Result<(i64, String), DbError> {
    let json = report::json::render(report);
    let last = db.query("SELECT id, hash FROM runs ORDER BY id DESC LIMIT 1", &[])?;
    let (id, prev) = match last.first() {
        Some(r) => (r[0].int() + 1, r[1].text()),
        None => (1, GENESIS.to_string()),
    };
    let hash = chain_hash(&prev, &json);
    // Ids are assigned here, not by a sequence: a gap must mean a deletion.
    db.execute(
        "INSERT INTO runs (id, started_at, finished_at, command, exit_code, report, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        &[
            id.into(),
            report.started_at.to_rfc3339().into(),
            report.finished_at.to_rfc3339().into(),
            report.command.as_str().into(),
            i64::from(report.exit_code()).into(),
            pack_report(&json).into(),
            prev.into(),
            hash.as_str().into(),
        ],
    )?;
    if let Some(mark) = &report.fleet {
        let (group, shard, shards, complete) = fleet_row(mark);
        db.execute(
            "INSERT INTO fleet_runs (run_id, run_group, shard, shards, complete)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            &[
                id.into(),
                group.into(),
                shard.into(),
                shards.into(),
                i64::from(complete).into(),
            ],
        )?;
    }
    for (seq, f) in report.findings.iter().enumerate() {
        db.execute(
            "INSERT INTO findings (run_id, seq, subject, check_name, status, summary, evidence)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            &[
                id.into(),
                (seq as i64).into(),
                f.subject.as_str().into(),
                f.check.as_str().into(),
                f.status.as_str().into(),
                f.summary.as_str().into(),
                Value::Object(f.evidence.clone()).to_string().into(),
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
        db.execute(
            "INSERT INTO backups (run_id, seq, subject, kind, timestamp, size, bytes_read, sha256)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            &[
                id.into(),
                (seq as i64).into(),
                b.subject.as_str().into(),
                b.kind.to_string().into(),
                b.timestamp.to_rfc3339().into(),
                (b.size as i64).into(),
                (b.bytes_read as i64).into(),
                sha.into(),
            ],
        )?;
    }
    Ok((id, hash))
}
