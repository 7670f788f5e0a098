//! Test restores: a dump is restored for real into a scratch database, the
//! result is checked (tables, exact row counts, size, the user's
//! expectations), timed against the promised recovery time, and everything
//! created for it is removed again.
//!
//! Two seams: where the scratch database lives ([`scratch`]: an ephemeral
//! instance backproof starts, or a configured server URL) and which engine
//! restores it (the [`EngineOps`] trait: [`postgres`] and [`mysql`]).
//! Restored SQL is untrusted input: it always runs as an unprivileged role
//! that owns nothing but its scratch database.

pub mod facts;
mod mysql;
mod postgres;
pub mod scratch;

pub use facts::RestoreFacts;

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::catalog::{Backup, Layout};
use crate::finding::{Check, Finding, Status};
use crate::inspect::{Compression, Format, Kind};
use crate::source::Storage;

use scratch::{Endpoint, Instance};

/// Tool stderr kept as evidence: the last bytes, where the error is.
const STDERR_TAIL: usize = 4096;
/// Without an RTO or an explicit timeout, a restore still may not run forever
/// (pg_restore loops forever on some damaged tar archives).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// A table that lost more than this share of its rows since the previous
/// restore of the same source fails.
const DEFAULT_MAX_ROW_DROP: f64 = 0.5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Engine {
    #[serde(rename = "postgres", alias = "postgresql")]
    Postgres,
    #[serde(rename = "mariadb", alias = "mysql")]
    MariaDb,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::MariaDb => "mariadb",
        }
    }

    fn ops(self) -> &'static dyn EngineOps {
        match self {
            Engine::Postgres => &postgres::Postgres,
            Engine::MariaDb => &mysql::MariaDb,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Which {
    /// Only the newest restorable backup of the source (nightly cost).
    #[default]
    Newest,
    All,
}

/// `[sources.restore]`: how to restore a source and what the result must
/// look like.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreSpec {
    /// Default: from the dump kind (PostgreSQL formats, or mysqldump SQL).
    pub engine: Option<Engine>,
    /// A server where backproof may create and drop its own databases;
    /// without it an ephemeral instance is started.
    pub scratch_url: Option<String>,
    /// Promised recovery time: a restore (load plus sanity) over it fails.
    #[serde(default, with = "humantime_serde")]
    pub rto: Option<Duration>,
    /// Restore timeout; default twice the RTO, else 6 h.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub which: Which,
    #[serde(default)]
    pub required_tables: Vec<String>,
    #[serde(default)]
    pub min_rows: BTreeMap<String, u64>,
    /// SQL that must return true (first column of the first row).
    #[serde(default)]
    pub assertions: Vec<String>,
    /// `table.column`: the newest value and its age go into the evidence.
    pub freshness_column: Option<String>,
    /// Share of rows a table may lose against the previous restore.
    pub max_row_drop: Option<f64>,
}

impl RestoreSpec {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(c) = &self.freshness_column
            && c.split('.').count() < 2
        {
            return Err(format!("freshness_column {c:?} must be \"table.column\""));
        }
        if let Some(d) = self.max_row_drop
            && !(0.0..=1.0).contains(&d)
        {
            return Err(format!("max_row_drop {d} must be between 0 and 1"));
        }
        if let Some(u) = &self.scratch_url
            && !(u.starts_with("postgres://")
                || u.starts_with("postgresql://")
                || u.starts_with("mysql://")
                || u.starts_with("mariadb://"))
        {
            return Err(format!(
                "scratch_url must be a postgres:// or mysql:// URL, not {:?}",
                redact(u)
            ));
        }
        Ok(())
    }
}

/// Command-line overrides, applied on top of each source's spec.
#[derive(Clone, Debug, Default)]
pub struct RestoreOverrides {
    pub scratch_url: Option<String>,
    pub rto: Option<Duration>,
    pub timeout: Option<Duration>,
}

/// Everything a restore learnt about the restored database.
#[derive(Debug, Default)]
struct Facts {
    /// Row count per table (`schema.table`, or just `table` in the default
    /// schema), exact (`count(*)`), not planner estimates.
    rows: BTreeMap<String, u64>,
    database_bytes: u64,
    /// (sql, Ok(true/false) or the error).
    assertions: Vec<(String, Result<bool, String>)>,
    /// (newest value as text, its age in seconds), or why it could not be
    /// read (the column is not there: a finding about the data).
    freshness: Option<Result<Newest, String>>,
}

/// The newest value of the freshness column (as text) and its age in seconds.
type Newest = (Option<String>, Option<f64>);

/// A scratch database created for one restore, and how to log into it as
/// its unprivileged owner.
#[derive(Clone, Debug)]
pub struct ScratchDb {
    pub name: String,
    /// Same as the name: one login per database, dropped with it.
    pub user: String,
    pub password: String,
    pub endpoint: Endpoint,
}

/// What feeds a restore tool.
enum Input<'a> {
    /// A local file or directory the tool may open itself (seekable: a
    /// custom dump restores with parallel jobs).
    Path(PathBuf),
    /// Decoded bytes, streamed into the tool's stdin.
    Stream(Box<dyn Read + Send + 'a>),
}

/// The engine seam: PostgreSQL and MariaDB/MySQL.
trait EngineOps: Sync {
    /// Creates a fresh database owned by a new unprivileged login.
    fn create(&self, endpoint: &Endpoint) -> Result<ScratchDb, String>;
    fn drop_db(&self, db: &ScratchDb) -> Result<(), String>;
    /// Drops databases and logins of dead backproof processes on a URL
    /// target; returns their names.
    fn sweep(&self, endpoint: &Endpoint) -> Vec<String>;
    /// Loads the dump; Ok(run) even when the tool failed (that is a finding).
    fn load(
        &self,
        db: &ScratchDb,
        format: Format,
        input: Input<'_>,
        deadline: Instant,
    ) -> Result<ToolRun, String>;
    fn facts(&self, db: &ScratchDb, spec: &RestoreSpec) -> Result<Facts, String>;
}

/// One invocation's restores: ephemeral instances are started on first use
/// and shared by every restore of the run, then stopped by [`finish`] (or
/// by Drop, or by the interrupt handler).
///
/// [`finish`]: RestoreSession::finish
pub struct RestoreSession {
    overrides: RestoreOverrides,
    instances: BTreeMap<&'static str, Result<Instance, String>>,
    swept_dirs: bool,
    swept_urls: std::collections::BTreeSet<String>,
}

impl RestoreSession {
    pub fn new(overrides: RestoreOverrides) -> Self {
        RestoreSession {
            overrides,
            instances: BTreeMap::new(),
            swept_dirs: false,
            swept_urls: Default::default(),
        }
    }

    /// Stops every instance of this session and removes its files.
    pub fn finish(&mut self) {
        for (_, i) in std::mem::take(&mut self.instances) {
            if let Ok(mut i) = i {
                i.stop();
            }
        }
    }

    /// The endpoint for an engine: the configured URL, else the session's
    /// ephemeral instance (started now if needed). Returns the start time
    /// when this call started it.
    fn endpoint(&mut self, engine: Engine, url: Option<&str>) -> Result<(Endpoint, f64), String> {
        if !self.swept_dirs {
            self.swept_dirs = true;
            for d in scratch::sweep_dirs() {
                eprintln!("backproof: swept the leftovers of a crashed run: {d}");
            }
        }
        if let Some(url) = url {
            let endpoint = Endpoint::Url(url.to_string());
            if self.swept_urls.insert(url.to_string()) {
                for d in engine.ops().sweep(&endpoint) {
                    eprintln!(
                        "backproof: dropped the scratch database {d} of a crashed run on {}",
                        redact(url)
                    );
                }
            }
            return Ok((endpoint, 0.0));
        }
        let mut fresh = false;
        let inst = self.instances.entry(engine.name()).or_insert_with(|| {
            fresh = true;
            match engine {
                Engine::Postgres => Instance::start_postgres(),
                Engine::MariaDb => Instance::start_mariadb(),
            }
        });
        match inst {
            Ok(i) => Ok((
                i.endpoint.clone(),
                if fresh { i.start_seconds } else { 0.0 },
            )),
            Err(e) => Err(e.clone()),
        }
    }

    /// Restores one backup and checks the result; always one finding.
    /// `previous_rows` are the row counts of the previous restore of the
    /// same source, when the history has them.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        &mut self,
        source: &dyn Storage,
        backup: &Backup,
        kind: Kind,
        spec: &RestoreSpec,
        source_name: &str,
        previous_rows: Option<&Map<String, Value>>,
    ) -> Finding {
        let subject = source.subject(&backup.key);
        let Some((engine, format)) = restorable(kind, backup, spec.engine) else {
            return Finding::new(
                subject,
                Check::Restore,
                Status::Error,
                format!("not restorable: {kind} is not a database dump backproof can restore"),
            );
        };
        let url = self
            .overrides
            .scratch_url
            .clone()
            .or(spec.scratch_url.clone());
        let url = url.as_deref();
        let rto = self.overrides.rto.or(spec.rto);
        let timeout = self
            .overrides
            .timeout
            .or(spec.timeout)
            .or(rto.map(|r| r * 2))
            .unwrap_or(DEFAULT_TIMEOUT);
        let base = |status, summary: String| {
            Finding::new(&subject, Check::Restore, status, summary)
                .with("engine", engine.name())
                .with("source", source_name)
                .with(
                    "target",
                    url.map(redact).unwrap_or_else(|| "ephemeral".to_string()),
                )
        };
        let (endpoint, start_seconds) = match self.endpoint(engine, url) {
            Ok(e) => e,
            Err(e) => {
                return base(Status::Error, format!("no scratch {} server: {e}", engine.name()))
                    .remedy("Install the server package (postgresql / mariadb-server) where backproof runs, or configure a scratch_url.");
            }
        };
        let ops = engine.ops();
        let db = match ops.create(&endpoint) {
            Ok(db) => db,
            Err(e) => {
                return base(
                    Status::Error,
                    format!("cannot create a scratch database: {e}"),
                )
                .remedy("The scratch login must be allowed to create databases and roles/users.");
            }
        };
        // Dropped on every path out, including an interrupt.
        let guard = DbGuard::new(ops, db.clone());
        let mut f = base(Status::Pass, String::new())
            .with("database", db.name.clone())
            .with("scratch_start_seconds", round3(start_seconds))
            .with("timeout_seconds", timeout.as_secs_f64());
        if let Some(r) = rto {
            f = f.with("rto_seconds", r.as_secs_f64());
        }
        let started = Instant::now();
        // `_staged` holds a staged copy until the restore is done.
        let (input, _staged) = match open_input(source, backup, kind, format) {
            Ok(i) => i,
            Err(e) => {
                drop(guard);
                return f.tap_status(Status::Error, format!("cannot read the dump: {e}"));
            }
        };
        let run = ops.load(&db, format, input, started + timeout);
        let restore_seconds = started.elapsed().as_secs_f64();
        f = f.with("restore_seconds", round3(restore_seconds));
        let run = match run {
            Ok(r) => r,
            Err(e) => {
                drop(guard);
                return f
                    .tap_status(Status::Error, format!("the restore could not run: {e}"))
                    .remedy("Install the client tools (postgresql-client / mariadb-client).");
            }
        };
        f = f.with("tool", run.tool.clone());
        if !run.stderr.is_empty() {
            f = f.with("tool_stderr", run.stderr.clone());
        }
        if run.timed_out {
            drop(guard);
            return f
                .tap_status(
                    Status::Fail,
                    format!(
                        "restore killed after {:.0}s: over its timeout",
                        timeout.as_secs_f64()
                    ),
                )
                .remedy("The dump restores too slowly for its RTO (or the restore tool hangs on damaged data): investigate, or raise the RTO/--restore-timeout.");
        }
        if let Some(e) = &run.input_error {
            drop(guard);
            return f
                .with("input_error", e.clone())
                .tap_status(Status::Fail, format!("the dump could not be read to its end: {e}"))
                .remedy("The backup is damaged: restore from an earlier backup or a copy, and fix the backup job.");
        }
        if !run.ok {
            drop(guard);
            let first = first_error(&run.stderr);
            return f
                .tap_status(
                    Status::Fail,
                    format!("{} failed ({}): {first}", run.tool, run.status),
                )
                .remedy("The dump does not restore: read tool_stderr, restore from an earlier backup or a copy, and fix the backup job.");
        }
        let sanity_started = Instant::now();
        let facts = ops.facts(&db, spec);
        let sanity_seconds = sanity_started.elapsed().as_secs_f64();
        drop(guard);
        f = f.with("sanity_seconds", round3(sanity_seconds));
        let facts = match facts {
            Ok(facts) => facts,
            Err(e) => {
                return f.tap_status(
                    Status::Error,
                    format!("restored, but the sanity queries could not run: {e}"),
                );
            }
        };
        let problems = judge(&facts, spec, previous_rows, &mut f);
        let total = restore_seconds + sanity_seconds;
        let mut problems = problems;
        if let Some(r) = rto
            && total > r.as_secs_f64()
        {
            problems.push(format!(
                "restore took {total:.1}s, over the RTO of {}",
                humantime::format_duration(r)
            ));
        }
        let tables = facts.rows.len();
        let rows: u64 = facts.rows.values().sum();
        if problems.is_empty() && tables == 0 {
            // Nothing was required, so not a failure; but a backup of no
            // tables is rarely what anyone meant to keep.
            f.tap_status(
                Status::Warn,
                format!("restored in {total:.1}s, but it holds no tables"),
            )
            .remedy("Set required_tables for this source if it must hold data, or check that the backup job dumps the right database.")
        } else if problems.is_empty() {
            f.tap_status(
                Status::Pass,
                format!("restored in {total:.1}s: {tables} table(s), {rows} row(s)"),
            )
        } else {
            f.with("problems", problems.clone())
                .tap_status(Status::Fail, format!("restored, but {}", problems.join("; ")))
                .remedy("The restored data does not meet its expectations: check the backup job and the source database.")
        }
    }
}

impl Drop for RestoreSession {
    fn drop(&mut self) {
        self.finish();
    }
}

trait TapStatus {
    fn tap_status(self, status: Status, summary: String) -> Self;
}

impl TapStatus for Finding {
    fn tap_status(mut self, status: Status, summary: String) -> Self {
        self.status = status;
        self.summary = summary;
        self
    }
}

/// Drops a scratch database (and its login) when the restore is done,
/// however it ends; registered with the interrupt handler meanwhile.
struct DbGuard {
    ops: &'static dyn EngineOps,
    db: ScratchDb,
    token: u64,
}

impl DbGuard {
    fn new(ops: &'static dyn EngineOps, db: ScratchDb) -> DbGuard {
        let (o, d) = (ops, db.clone());
        let token = scratch::on_interrupt(Box::new(move || {
            let _ = o.drop_db(&d);
        }));
        DbGuard { ops, db, token }
    }
}

impl Drop for DbGuard {
    fn drop(&mut self) {
        if scratch::interrupted() {
            return;
        }
        if let Err(e) = self.ops.drop_db(&self.db) {
            eprintln!(
                "backproof: could not drop scratch database {}: {e}",
                self.db.name
            );
        }
        scratch::done(self.token);
    }
}

/// True for backups [`RestoreSession::restore`] can restore.
pub fn is_restorable(kind: Kind, backup: &Backup, engine: Option<Engine>) -> bool {
    restorable(kind, backup, engine).is_some()
}

/// Which engine restores this backup, and as what format. A dump too
/// damaged to be recognised (an empty file) is still handed to the tool its
/// name suggests, so that the tool's own verdict is the evidence.
fn restorable(kind: Kind, backup: &Backup, engine: Option<Engine>) -> Option<(Engine, Format)> {
    let name = backup.key.rsplit('/').next().unwrap_or(&backup.key);
    let format = match (kind.format, backup.layout) {
        (_, Layout::PgDirectory) => Format::PgToc,
        (Format::Unknown, _) => {
            let bare = name.trim_end_matches(".gz").trim_end_matches(".zst");
            if bare.ends_with(".dump") || bare.ends_with(".backup") || bare.ends_with(".pgdump") {
                Format::PgCustom
            } else if bare.ends_with(".sql") {
                match engine {
                    Some(Engine::MariaDb) => Format::MysqlDump,
                    _ => Format::PgPlain,
                }
            } else {
                return None;
            }
        }
        (f, _) => f,
    };
    let natural = match format {
        Format::PgCustom | Format::PgToc | Format::PgTar | Format::PgPlain => Engine::Postgres,
        Format::MysqlDump => Engine::MariaDb,
        _ => return None,
    };
    // A configured engine can only re-aim plain SQL: a pg_dump archive is
    // PostgreSQL's whatever the config says.
    match (format, engine) {
        (Format::PgPlain, Some(Engine::MariaDb)) => Some((Engine::MariaDb, Format::MysqlDump)),
        (Format::MysqlDump, Some(Engine::Postgres)) => Some((Engine::Postgres, Format::PgPlain)),
        _ => Some((natural, format)),
    }
}

fn open_input<'a>(
    source: &'a dyn Storage,
    backup: &'a Backup,
    kind: Kind,
    format: Format,
) -> Result<(Input<'a>, Option<tempfile::TempDir>), String> {
    let local = source.local_path(&backup.key);
    if format == Format::PgToc {
        // pg_restore reads a directory dump's files by name, so one from an
        // object store is staged (the one format that cannot be streamed).
        return match local {
            Some(p) => Ok((Input::Path(p), None)),
            None => stage_directory(source, backup).map(|d| {
                let path = d.path().join("dump");
                (Input::Path(path), Some(d))
            }),
        };
    }
    if matches!(format, Format::PgCustom | Format::PgTar)
        && kind.compression.is_none()
        && let Some(p) = local
    {
        return Ok((Input::Path(p), None));
    }
    let member = backup.members.first().ok_or("the backup has no files")?;
    let opened = source.open(member).map_err(|e| e.to_string())?;
    let reader = opened.reader;
    let decoded: Box<dyn Read + Send + 'a> = match kind.compression {
        None => reader,
        Some(Compression::Gzip) => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Some(Compression::Zstd) => {
            Box::new(zstd::stream::read::Decoder::new(reader).map_err(|e| format!("zstd: {e}"))?)
        }
    };
    Ok((Input::Stream(decoded), None))
}

/// Copies a directory-format dump's files into a scratch dir (named like
/// the instances' dirs, so a crashed run's copy is swept too), removed when
/// the returned guard drops.
fn stage_directory(source: &dyn Storage, backup: &Backup) -> Result<tempfile::TempDir, String> {
    let dir = tempfile::Builder::new()
        .prefix(&format!(
            "{}{}-stage-",
            scratch::DIR_PREFIX,
            std::process::id()
        ))
        .tempdir()
        .map_err(|e| format!("cannot create a staging dir: {e}"))?;
    let root = dir.path().join("dump");
    let copy = || -> Result<(), String> {
        std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
        for m in &backup.members {
            let rel = m
                .key
                .strip_prefix(&format!("{}/", backup.key))
                .unwrap_or(m.file_name());
            if rel.split('/').any(|c| c == ".." || c.is_empty()) {
                return Err(format!("refusing to stage a member named {:?}", m.key));
            }
            let path = root.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            let mut out =
                std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut opened = source.open(m).map_err(|e| format!("{}: {e}", m.key))?;
            io::copy(&mut opened.reader, &mut out).map_err(|e| format!("{}: {e}", m.key))?;
        }
        Ok(())
    };
    copy().map(|()| dir)
}

/// Checks facts against the spec; adds the evidence; returns the problems.
fn judge(
    facts: &Facts,
    spec: &RestoreSpec,
    previous: Option<&Map<String, Value>>,
    f: &mut Finding,
) -> Vec<String> {
    let mut problems = Vec::new();
    let rows: Map<String, Value> = facts
        .rows
        .iter()
        .map(|(t, n)| (t.clone(), json!(n)))
        .collect();
    f.evidence.insert("row_counts".into(), Value::Object(rows));
    f.evidence
        .insert("table_count".into(), json!(facts.rows.len()));
    f.evidence
        .insert("database_bytes".into(), json!(facts.database_bytes));
    let count = |t: &str| lookup(&facts.rows, t);
    for t in &spec.required_tables {
        if count(t).is_none() {
            problems.push(format!("required table {t} is missing"));
        }
    }
    for (t, min) in &spec.min_rows {
        match count(t) {
            Some(n) if n < *min => problems.push(format!("{t} has {n} row(s), fewer than {min}")),
            None => problems.push(format!("table {t} (min_rows) is missing")),
            _ => {}
        }
    }
    if !spec.assertions.is_empty() {
        let mut out = Vec::new();
        for (sql, r) in &facts.assertions {
            let (result, problem) = match r {
                Ok(true) => (json!(true), None),
                Ok(false) => (json!(false), Some(format!("assertion failed: {sql}"))),
                Err(e) => (
                    json!(e),
                    Some(format!("assertion could not run: {sql}: {e}")),
                ),
            };
            out.push(json!({"sql": sql, "result": result}));
            problems.extend(problem);
        }
        f.evidence.insert("assertions".into(), Value::Array(out));
    }
    match (&spec.freshness_column, &facts.freshness) {
        (Some(col), Some(Ok((newest, age)))) => {
            f.evidence.insert(
                "freshness".into(),
                json!({"column": col, "newest": newest, "age_seconds": age}),
            );
        }
        (Some(_), Some(Err(e))) => problems.push(e.clone()),
        _ => {}
    }
    if let Some(prev) = previous {
        let max_drop = spec.max_row_drop.unwrap_or(DEFAULT_MAX_ROW_DROP);
        for (t, before) in prev {
            let Some(before) = before.as_u64() else {
                continue;
            };
            let now = facts.rows.get(t).copied().unwrap_or(0);
            if before > 0 && (before.saturating_sub(now)) as f64 / before as f64 > max_drop {
                problems.push(format!(
                    "{t} has {now} row(s), down from {before} at the previous restore"
                ));
            }
        }
        f.evidence
            .insert("previous_row_counts".into(), Value::Object(prev.clone()));
    }
    problems
}

/// A table by the name the user gave: exact, or unqualified in any schema.
fn lookup(rows: &BTreeMap<String, u64>, name: &str) -> Option<u64> {
    rows.get(name).copied().or_else(|| {
        rows.iter()
            .find(|(k, _)| k.rsplit('.').next() == Some(name))
            .map(|(_, n)| *n)
    })
}

/// A URL without its password, for evidence and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The last few KiB of a tool's output, as text.
pub(crate) fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(STDERR_TAIL);
    String::from_utf8_lossy(&bytes[start..]).trim().to_string()
}

/// The line a human wants from a tool's stderr: the first error.
fn first_error(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.contains("ERROR") || l.contains("error:") || l.contains("FATAL"))
        .or_else(|| stderr.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("no message")
        .trim()
        .chars()
        .take(300)
        .collect()
}

// ---------------------------------------------------------------------------
// Running the restore tools
// ---------------------------------------------------------------------------

/// How a restore tool (or a set of parallel ones) ended.
#[derive(Debug, Default)]
pub struct ToolRun {
    pub tool: String,
    pub ok: bool,
    pub status: String,
    /// Tail of stderr of the tool that failed (or of all, if none did).
    pub stderr: String,
    pub timed_out: bool,
    /// Reading or decoding the dump failed (the tool saw a cut stream).
    pub input_error: Option<String>,
}

/// Runs `cmds` (each in its own process group) with their stdin fed by
/// `feed`, which also sees which tools have exited (to order work). Kills
/// every tool when one fails, the feeder fails or the deadline passes.
fn run_tools<F>(
    tool: &str,
    cmds: Vec<Command>,
    feed: F,
    deadline: Instant,
) -> Result<ToolRun, String>
where
    F: FnOnce(Vec<ChildStdin>, &[AtomicBool]) -> io::Result<()> + Send,
{
    let mut children: Vec<Child> = Vec::new();
    let kill_all = |children: &mut Vec<Child>| {
        for c in children.iter() {
            if let Some(p) = rustix::process::Pid::from_raw(c.id() as i32) {
                let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
            }
        }
        for c in children.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    };
    for mut c in cmds {
        c.process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        match c.spawn() {
            Ok(child) => children.push(child),
            Err(e) => {
                kill_all(&mut children);
                return Err(format!("cannot run {tool}: {e}"));
            }
        }
    }
    let n = children.len();
    let exited: Vec<AtomicBool> = (0..n).map(|_| AtomicBool::new(false)).collect();
    let stdins: Vec<ChildStdin> = children.iter_mut().filter_map(|c| c.stdin.take()).collect();
    let stderrs: Vec<_> = children
        .iter_mut()
        .filter_map(|c| c.stderr.take())
        .collect();
    let mut run = ToolRun {
        tool: tool.to_string(),
        ok: true,
        status: "exit status: 0".into(),
        ..Default::default()
    };
    thread::scope(|s| {
        let tails: Vec<_> = stderrs
            .into_iter()
            .map(|mut e| {
                s.spawn(move || {
                    let mut keep: Vec<u8> = Vec::new();
                    let mut buf = [0u8; 8192];
                    while let Ok(k) = e.read(&mut buf) {
                        if k == 0 {
                            break;
                        }
                        keep.extend_from_slice(&buf[..k]);
                        if keep.len() > 4 * STDERR_TAIL {
                            keep.drain(..keep.len() - STDERR_TAIL);
                        }
                    }
                    tail(&keep)
                })
            })
            .collect();
        let exited = &exited[..];
        let mut feeder = Some(s.spawn(move || feed(stdins, exited)));
        let feeder_done = |f: &Option<thread::ScopedJoinHandle<'_, io::Result<()>>>| {
            f.as_ref().is_none_or(|h| h.is_finished())
        };
        let mut statuses: Vec<Option<std::process::ExitStatus>> = vec![None; n];
        let mut failed: Option<usize> = None;
        // Notes the tools that exited; true once one failed or all are done.
        let reap = |children: &mut Vec<std::process::Child>,
                    statuses: &mut Vec<Option<std::process::ExitStatus>>,
                    failed: &mut Option<usize>| {
            for (i, c) in children.iter_mut().enumerate() {
                if statuses[i].is_none()
                    && let Ok(Some(st)) = c.try_wait()
                {
                    statuses[i] = Some(st);
                    exited[i].store(true, Ordering::SeqCst);
                    if !st.success() && failed.is_none() {
                        *failed = Some(i);
                    }
                }
            }
            failed.is_some() || statuses.iter().all(|s| s.is_some())
        };
        loop {
            if reap(&mut children, &mut statuses, &mut failed) {
                break;
            }
            if feeder_done(&feeder) {
                // End of input: a clean one lets the tools finish on their
                // own; a broken one must not be mistaken for a short dump.
                break;
            }
            if Instant::now() >= deadline {
                run.timed_out = true;
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        // Wait for the tools after a clean end of input, else kill them.
        let feed_result = if feeder_done(&feeder) {
            feeder.take().map(|h| h.join())
        } else {
            None
        };
        let input_failed =
            matches!(&feed_result, Some(Ok(Err(e))) if e.kind() != io::ErrorKind::BrokenPipe);
        if let Some(Ok(Err(e))) = &feed_result
            && input_failed
        {
            run.input_error = Some(e.to_string());
        }
        if failed.is_none() && !run.timed_out && !input_failed {
            // Input done: wait for the remaining tools up to the deadline.
            loop {
                if reap(&mut children, &mut statuses, &mut failed) {
                    break;
                }
                if Instant::now() >= deadline {
                    run.timed_out = true;
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        kill_all(&mut children);
        if let Some(h) = feeder.take() {
            // The pipes are closed now, so the feeder returns promptly.
            let _ = h.join();
        }
        let tails: Vec<String> = tails
            .into_iter()
            .map(|t| t.join().unwrap_or_default())
            .collect();
        if let Some(i) = failed {
            run.ok = false;
            run.status = statuses[i].map(|s| s.to_string()).unwrap_or_default();
            run.stderr = tails[i].clone();
        } else {
            run.ok = !run.timed_out && run.input_error.is_none();
            run.stderr = tails
                .iter()
                .filter(|t| !t.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join("\n");
        }
    });
    Ok(run)
}

/// Copies `input` into one tool's stdin.
fn copy_into(mut input: impl Read, mut out: ChildStdin) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let k = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..k]).map_err(broken_pipe)?;
    }
    Ok(())
}

/// A write error towards a tool means the tool stopped reading: its exit
/// status and stderr are the evidence, not this error.
fn broken_pipe(e: io::Error) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, e.to_string())
}
