//! The restore-engine seam. An engine says which dump formats it restores
//! and which scratch URLs it takes, starts its ephemeral server (and says
//! when it is ready), creates and drops scratch databases, loads a dump,
//! and answers the few queries the shared sanity checks
//! ([`super::sanity`]) are made of. Nothing outside an engine's own module
//! matches on an engine: a new one is one more [`EngineKind`] in
//! [`super::registry`].
//!
//! Configuration-store snapshots (etcd, OpenBao/Vault raft) are not SQL
//! and have no scratch database: a [`SnapshotEngine`] restores a snapshot
//! into a scratch server of its own, starts it, and checks what it holds
//! against a [`SnapshotSpec`]. The session times both steps, applies the
//! timeout and the RTO and writes the one finding, as for databases.
//!
//! Physical base backups are a whole cluster, replayed from a WAL archive
//! to a point in time: a [`PhysicalEngine`] copies one into a scratch
//! cluster of its own, recovers it to a [`PitrSpec`]'s target, and opens
//! sessions on its databases for the same sanity checks as a dump.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use serde::Deserialize;

use crate::catalog::{Backup, Layout};
use crate::inspect::{Decoded, Format, Kind};

use super::facts::{PitrFacts, SnapshotFacts};
use super::input::{Input, InputError};
use super::scratch::{Instance, ScratchError};
use super::tools::{ToolError, ToolRun};

/// Whatever an engine's driver or tools report, with its cause kept.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Scratch(#[from] ScratchError),
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(transparent)]
    Input(#[from] InputError),
    /// The engine's own error (its driver, its URL syntax, its tools).
    #[error(transparent)]
    Engine(BoxError),
}

impl EngineError {
    pub fn engine(e: impl Into<BoxError>) -> EngineError {
        EngineError::Engine(e.into())
    }
}

/// How to reach a scratch server as its administrator.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// An ephemeral instance: a unix socket, trust/socket auth as admin.
    Socket {
        /// A socket directory or a socket file, as the engine uses it.
        path: PathBuf,
        /// The port that names the socket file, where the engine needs one.
        port: u16,
        admin: String,
    },
    /// A configured server: a URL (of one of the engine's
    /// [`EngineKind::url_schemes`]) with an administrative login that may
    /// create databases and logins.
    Url(String),
}

/// A scratch database created for one restore, and how to log into it as
/// its unprivileged owner.
#[derive(Clone, Debug)]
pub struct ScratchDb {
    pub name: String,
    /// Same as the name: one login per database, dropped with it.
    pub user: String,
    pub password: String,
    pub endpoint: Endpoint,
    /// When the login stops working or may be swept.
    pub expires: chrono::DateTime<chrono::Utc>,
}

/// An ephemeral server, up and accepting connections.
pub struct Started {
    pub instance: Instance,
    pub endpoint: Endpoint,
}

/// A restored table: the name evidence shows (`schema.table`, or just
/// `table` in the default schema) and the same quoted for SQL.
#[derive(Clone, Debug)]
pub struct Table {
    pub key: String,
    pub sql: String,
}

/// A connection to a restored scratch database as its own login: the
/// primitives the shared sanity checks are written over.
pub trait SqlSession: Send {
    /// The restored tables, in name order.
    fn tables(&mut self) -> Result<Vec<Table>, EngineError>;
    /// Exact rows (`count(*)`), not planner estimates.
    fn count_rows(&mut self, table: &Table) -> Result<u64, EngineError>;
    fn database_bytes(&mut self) -> Result<u64, EngineError>;
    /// The first column of the first row, as text; `None` for NULL or no row.
    fn first_value(&mut self, sql: &str) -> Result<Option<String>, EngineError>;
    /// An identifier quoted for this engine's SQL.
    fn ident(&self, name: &str) -> String;
    /// Whether a value as [`SqlSession::first_value`] returns it is true.
    fn is_true(&self, value: &str) -> bool;
    /// SQL for the newest value of `column` (quoted) in `table` (quoted), as text.
    fn newest_sql(&self, table: &str, column: &str) -> String;
    /// SQL for the age in seconds of that newest value, as a number.
    fn age_sql(&self, table: &str, column: &str) -> String;
}

/// One database engine the restore can use.
pub trait EngineKind: Sync {
    /// The name evidence and messages use (`engine = ...` in a config).
    fn name(&self) -> &'static str;
    /// Other names a config may use for it.
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }
    /// `scheme://` prefixes of the scratch URLs it takes; the first is the
    /// one messages show.
    fn url_schemes(&self) -> &'static [&'static str];
    /// The dump formats it restores as they are.
    fn formats(&self) -> &'static [Format];
    /// The format plain SQL is for this engine, if it loads plain SQL: a
    /// configured engine re-aims another engine's plain SQL to it.
    fn plain_sql(&self) -> Option<Format> {
        None
    }
    /// A backup's format from its layout alone (a dump directory).
    fn layout_format(&self, _layout: Layout) -> Option<Format> {
        None
    }
    /// The format a backup the inspector could not name is handed over as,
    /// by its file name (without compression suffix), so that the tool's
    /// own verdict on a damaged dump is the evidence.
    fn format_by_name(&self, _bare_name: &str) -> Option<Format> {
        None
    }

    /// Starts an ephemeral server in a new scratch dir and waits until it
    /// accepts connections.
    fn start(&self) -> Result<Started, EngineError>;
    /// Ok once the server accepts an administrative connection.
    fn ping(&self, endpoint: &Endpoint) -> Result<(), EngineError>;
    /// Creates a fresh database owned by a new unprivileged login, which
    /// stops working (PostgreSQL: `VALID UNTIL`) or may be swept (every
    /// engine: the expiry in its name) once `valid_for` has passed.
    fn create(&self, endpoint: &Endpoint, valid_for: Duration) -> Result<ScratchDb, EngineError>;
    fn drop_db(&self, db: &ScratchDb) -> Result<(), EngineError>;
    /// Drops databases and logins of dead backproof processes on a URL
    /// target; returns the databases' names.
    fn sweep(&self, endpoint: &Endpoint) -> Vec<String>;
    /// Loads the dump; Ok(run) even when the tool failed (that is a finding).
    fn load(
        &self,
        db: &ScratchDb,
        format: Format,
        input: Input<'_>,
        deadline: Instant,
    ) -> Result<ToolRun, EngineError>;
    /// A session on the restored database, as its own login.
    fn connect(&self, db: &ScratchDb) -> Result<Box<dyn SqlSession>, EngineError>;
    /// After a full-server dump: each of its databases (by its original
    /// name) and the scratch database it went into, in dump order; empty
    /// for a single-database dump.
    fn restored_databases(&self, _db: &ScratchDb) -> Result<Vec<(String, ScratchDb)>, EngineError> {
        Ok(Vec::new())
    }
    /// After a full-server dump: the roles created for it.
    fn created_roles(&self, _db: &ScratchDb) -> Vec<String> {
        Vec::new()
    }
}

/// What a snapshot restore is asked to find (the snapshot keys of
/// `[sources.restore]`), and where the operator keeps its secrets: a
/// file path or an environment variable's name, never the secret itself.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct SnapshotSpec {
    /// etcd: key prefixes that must hold at least one key.
    pub required_prefixes: Vec<String>,
    /// etcd: the restored member must hold at least this many keys.
    pub min_keys: Option<u64>,
    /// OpenBao/Vault: secrets engines that must be mounted (`secret/`).
    pub required_mounts: Vec<String>,
    /// OpenBao/Vault: paths that must read back (`secret/data/app/db`).
    pub required_paths: Vec<String>,
    /// OpenBao/Vault: the snapshot's unseal key shares, one per line or as
    /// `bao operator init -format=json` writes them (`unseal_keys_b64`,
    /// and `root_token` if no other token is given).
    pub unseal_keys_file: Option<PathBuf>,
    /// The same, in an environment variable of backproof's.
    pub unseal_keys_env: Option<String>,
    /// A token of the snapshot's cluster that may read the mounts and the
    /// required paths (a root token, or one with such a policy).
    pub root_token_file: Option<PathBuf>,
    pub root_token_env: Option<String>,
}

/// A snapshot restored into a scratch server of its own, started.
pub struct Restored {
    /// The server and its dir: stopped and removed when this drops.
    pub instance: Instance,
    /// The restore tool's run: a failed one (the tool refused the
    /// snapshot) is the finding, and there is nothing to check.
    pub run: ToolRun,
    /// Where the restored server listens (`http://127.0.0.1:PORT`).
    pub endpoint: String,
}

/// What the checks on a restored server found.
pub struct SnapshotCheck {
    pub facts: SnapshotFacts,
    /// Expectations it does not meet: a failed restore.
    pub problems: Vec<String>,
    /// What it holds, for a passing summary (`4 key(s) at revision 8`).
    pub holds: String,
}

/// One configuration store whose snapshots backproof restores.
pub trait SnapshotEngine: Sync {
    /// The name evidence and messages use (`engine = ...` in a config).
    fn name(&self) -> &'static str;
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }
    /// The snapshot formats it restores.
    fn formats(&self) -> &'static [Format];
    /// True when the format's own compression is part of it (a raft
    /// archive is a gzip'd tar): the tool gets the bytes as stored, not
    /// decoded.
    fn as_stored(&self) -> bool {
        false
    }
    /// What the spec must give before anything runs (the tools, the
    /// unseal keys): an error names the missing setting, and the restore
    /// is an `error`, no verdict on the snapshot.
    fn preflight(&self, spec: &SnapshotSpec) -> Result<(), EngineError>;
    /// Restores the snapshot into a new scratch server and starts it. `Ok`
    /// with a failed run when the tool refuses the snapshot; `Err` when
    /// the restore could not be tried (no verdict).
    fn restore(
        &self,
        input: Input<'_>,
        spec: &SnapshotSpec,
        deadline: Instant,
    ) -> Result<Restored, EngineError>;
    /// Checks the started server against the spec and against what the
    /// verification decoded from the snapshot (`expected`). `Err` when it
    /// cannot be judged (a sealed store, wrong keys): no verdict.
    fn check(
        &self,
        restored: &Restored,
        spec: &SnapshotSpec,
        expected: Option<&Decoded>,
        deadline: Instant,
    ) -> Result<SnapshotCheck, EngineError>;
}

/// Where a point-in-time restore stops replaying.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PitrTarget {
    /// The end of the archive (`target = "latest"`, the default).
    #[default]
    Latest,
    /// `recovery_target_time` (`target_time = "2026-11-20 03:00:00+00"`).
    Time(DateTime<Utc>),
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "{0:?} is not a time with a UTC offset: write it like \"2026-11-20 03:00:00+00\" (or RFC 3339, \"2026-11-20T03:00:00Z\")"
)]
pub struct TargetTimeError(pub String);

impl PitrTarget {
    /// A target time as PostgreSQL and people write it. The offset is
    /// required: without one the scratch server's time zone would decide.
    pub fn parse_time(text: &str) -> Result<PitrTarget, TargetTimeError> {
        parse_instant(text)
            .map(PitrTarget::Time)
            .ok_or_else(|| TargetTimeError(text.to_string()))
    }

    /// As evidence shows it and `recovery_target_time` takes it.
    pub fn describe(&self) -> String {
        match self {
            PitrTarget::Latest => "latest".to_string(),
            PitrTarget::Time(t) => t.format("%Y-%m-%d %H:%M:%S%.f+00").to_string(),
        }
    }
}

/// An instant in PostgreSQL's text form (`2026-11-20 03:00:00.5+00`,
/// `+05:30`, `+0000`) or RFC 3339; `None` without an offset.
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    let t = t
        .strip_suffix(" UTC")
        .or_else(|| t.strip_suffix('Z'))
        .map(|s| format!("{s}+00"))
        .unwrap_or_else(|| t.to_string());
    ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"]
        .iter()
        .find_map(|f| DateTime::parse_from_str(&t, f).ok())
        .map(|d| d.with_timezone(&Utc))
}

/// What a point-in-time restore is asked for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PitrSpec {
    pub target: PitrTarget,
    /// Where a target time came from when nobody named it (the window).
    pub target_from: Option<String>,
    /// The WAL archive to replay from, read-only; without one the cluster
    /// is recovered to the base backup's consistency point only.
    pub wal_archive: Option<PathBuf>,
}

/// A base backup recovered into a scratch cluster of its own.
pub struct Recovered {
    /// The cluster and its dir: stopped and removed when this drops.
    pub instance: Instance,
    /// The server's run: a failed one (it stopped before the target, a
    /// segment was missing) is the finding, and there is nothing to check.
    pub run: ToolRun,
    pub facts: PitrFacts,
    /// What the replay did not reach although the cluster came up (a gap
    /// in the archive it stopped at): a failed restore.
    pub problems: Vec<String>,
    pub endpoint: Endpoint,
}

/// One kind of physical backup backproof recovers to a point in time.
pub trait PhysicalEngine: Sync {
    /// The name evidence and messages use (`engine = ...` in a config).
    fn name(&self) -> &'static str;
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }
    /// Whether this backup is one of its base backups.
    fn recognises(&self, kind: Kind, backup: &Backup) -> bool;
    /// Copies the base backup at `path` (never touched) into a new scratch
    /// cluster, replays the archive to the target and waits until the
    /// cluster is promoted. `Ok` with a failed run when the server refuses
    /// (missing WAL, the target not reached); `Err` when the restore could
    /// not be tried (no verdict).
    fn recover(
        &self,
        path: &Path,
        spec: &PitrSpec,
        deadline: Instant,
    ) -> Result<Recovered, EngineError>;
    /// Sessions on every database of the recovered cluster as an
    /// unprivileged login that may read all data, in name order, and the
    /// name of the one assertions and the freshness column run in
    /// (`database`, else the only one besides `postgres`).
    fn sessions(
        &self,
        recovered: &Recovered,
        database: Option<&str>,
    ) -> Result<Sessions, EngineError>;
}

/// Sessions on a recovered cluster's databases.
pub struct Sessions {
    /// Where assertions and the freshness column run.
    pub main: String,
    /// Each database by name, in name order.
    pub parts: Vec<(String, Box<dyn SqlSession>)>,
}
