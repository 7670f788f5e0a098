//! The restore-engine seam. An engine says which dump formats it restores
//! and which scratch URLs it takes, starts its ephemeral server (and says
//! when it is ready), creates and drops scratch databases, loads a dump,
//! and answers the few queries the shared sanity checks
//! ([`super::sanity`]) are made of. Nothing outside an engine's own module
//! matches on an engine: a new one is one more [`EngineKind`] in
//! [`super::registry`].

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::catalog::Layout;
use crate::inspect::Format;

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
pub trait SqlSession {
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
