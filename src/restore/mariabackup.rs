//! mariadb-backup / xtrabackup directories: a physical copy of a server,
//! restored the way an operator would. The backup is copied into a private
//! scratch dir (the store is read-only, and `--prepare` rewrites files in
//! place), prepared there with `mariadb-backup --prepare`, and a scratch
//! `mariadbd` is started on the prepared copy: on a unix socket in that dir,
//! without networking, as the mysql user when we are root. The shared
//! sanity checks then run over every user schema it holds.
//!
//! Each restore has its own server (the data *is* the server), so
//! [`EngineKind::start`] only checks the tools; the server lives from
//! [`EngineKind::load`] to [`EngineKind::drop_db`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder};
use rustix::process::Signal;

use crate::catalog::Layout;
use crate::inspect::Format;

use super::engine::{Endpoint, EngineError, EngineKind, ScratchDb, SqlSession, Started, Table};
use super::input::Input;
use super::mysql::{self as mysql_dialect, ident};
use super::scratch::{self, Instance, LOG_FILE, RunAs};
use super::tools::{self, ToolError, ToolRun, run_tools};

pub struct MariaBackup;

#[derive(Debug, thiserror::Error)]
pub enum MbError {
    #[error("mariadb-backup or mariadbd missing: {0}; install mariadb-backup and mariadb-server")]
    NoTools(#[source] ToolError),
    #[error("a mariadb-backup restore runs on its own private server: scratch_url cannot be used")]
    NoUrl,
    #[error("a mariadb-backup restore needs the backup as a directory")]
    NotADirectory,
    #[error("copying the backup to {path}: {source}")]
    Copy {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "an incremental backup restores only on top of its full backup: restore the chain, not this directory alone"
    )]
    Incremental,
    #[error("no restored server for {0}")]
    NoServer(String),
    #[error("{0}")]
    Driver(#[from] mysql::Error),
}

impl From<MbError> for EngineError {
    fn from(e: MbError) -> Self {
        EngineError::engine(e)
    }
}

/// The servers running on prepared copies, by scratch name.
static SERVERS: Mutex<BTreeMap<String, Instance>> = Mutex::new(BTreeMap::new());

/// Schemas every server has: not the backup's data.
const SYSTEM_SCHEMAS: &str = "'mysql','information_schema','performance_schema','sys'";

fn socket_of(dir: &Path) -> PathBuf {
    dir.join("mysqld.sock")
}

fn opts(socket: &Path) -> Opts {
    OptsBuilder::new()
        .socket(Some(socket.to_string_lossy()))
        .user(Some("root"))
        .tcp_connect_timeout(Some(Duration::from_secs(10)))
        .into()
}

/// A copy the server's user owns, directories and files alike.
fn copy_tree(from: &Path, to: &Path, run_as: RunAs) -> Result<(), EngineError> {
    for e in walkdir::WalkDir::new(from).follow_links(false) {
        let e = e.map_err(|e| MbError::Copy {
            path: to.to_path_buf(),
            source: e.into(),
        })?;
        let rel = e.path().strip_prefix(from).expect("under the root");
        let dst = to.join(rel);
        let io = |source| MbError::Copy {
            path: dst.clone(),
            source,
        };
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dst).map_err(io)?;
        } else if e.file_type().is_file() {
            std::fs::copy(e.path(), &dst).map_err(io)?;
        } else {
            continue;
        }
        run_as.chown(&dst)?;
    }
    Ok(())
}

impl EngineKind for MariaBackup {
    fn name(&self) -> &'static str {
        "mariadb-backup"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["mariabackup", "xtrabackup"]
    }

    fn url_schemes(&self) -> &'static [&'static str] {
        &[]
    }

    fn formats(&self) -> &'static [Format] {
        &[Format::MariadbBackup]
    }

    fn layout_format(&self, layout: Layout) -> Option<Format> {
        (layout == Layout::MariadbBackup).then_some(Format::MariadbBackup)
    }

    fn start(&self) -> Result<Started, EngineError> {
        tools::which_any(&["mariadb-backup", "mariabackup"]).map_err(MbError::NoTools)?;
        tools::which_any(&["mariadbd", "mysqld"]).map_err(MbError::NoTools)?;
        let run_as = RunAs::for_user("mysql")?;
        let instance = Instance::new(self.name(), run_as, Signal::KILL)?;
        let endpoint = Endpoint::Socket {
            path: instance.dir().to_path_buf(),
            port: 0,
            admin: "root".into(),
        };
        Ok(Started { instance, endpoint })
    }

    fn ping(&self, endpoint: &Endpoint) -> Result<(), EngineError> {
        match endpoint {
            Endpoint::Socket { .. } => Ok(()),
            Endpoint::Url(_) => Err(MbError::NoUrl.into()),
        }
    }

    fn create(&self, endpoint: &Endpoint, valid_for: Duration) -> Result<ScratchDb, EngineError> {
        if let Endpoint::Url(_) = endpoint {
            return Err(MbError::NoUrl.into());
        }
        let (name, expires) = scratch::database_name(valid_for)?;
        Ok(ScratchDb {
            user: name.clone(),
            name,
            password: String::new(),
            endpoint: endpoint.clone(),
            expires,
        })
    }

    fn drop_db(&self, db: &ScratchDb) -> Result<(), EngineError> {
        let inst = SERVERS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&db.name);
        if let Some(mut inst) = inst {
            inst.stop();
        }
        Ok(())
    }

    fn sweep(&self, _endpoint: &Endpoint) -> Vec<String> {
        // Every copy lives in an instance dir, which the dir sweep removes.
        Vec::new()
    }

    fn load(
        &self,
        db: &ScratchDb,
        _format: Format,
        input: Input<'_>,
        deadline: Instant,
    ) -> Result<ToolRun, EngineError> {
        let Input::Path(backup) = input else {
            return Err(MbError::NotADirectory.into());
        };
        // Prepared alone, an incremental fails for want of its base: that
        // would read as a broken backup when it is only half of one.
        let checkpoints =
            std::fs::read_to_string(backup.join("xtrabackup_checkpoints")).unwrap_or_default();
        if checkpoints.lines().any(|l| {
            l.split_once('=')
                .is_some_and(|(k, v)| k.trim() == "backup_type" && v.trim() == "incremental")
        }) {
            return Err(MbError::Incremental.into());
        }
        let prepare =
            tools::which_any(&["mariadb-backup", "mariabackup"]).map_err(MbError::NoTools)?;
        let server = tools::which_any(&["mariadbd", "mysqld"]).map_err(MbError::NoTools)?;
        let run_as = RunAs::for_user("mysql")?;
        let mut inst = Instance::new(self.name(), run_as, Signal::KILL)?;
        let dir = inst.dir().to_path_buf();
        let data = dir.join("data");
        copy_tree(&backup, &data, run_as)?;

        let mut p = run_as.command(&prepare, Signal::KILL);
        p.arg("--no-defaults")
            .arg("--prepare")
            .arg(format!("--target-dir={}", data.display()));
        let run = run_tools(
            "mariadb-backup --prepare",
            vec![p],
            |_stdins, _| Ok(()),
            deadline,
        )?;
        if !run.ok {
            return Ok(with_error_first(run));
        }

        let socket = socket_of(&dir);
        let mut d = run_as.command(&server, Signal::KILL);
        d.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
            .arg(format!("--log-error={}", dir.join(LOG_FILE).display()))
            // The backup's own accounts are not ours to know: the socket is
            // private (0700 dir) and there is no network.
            .args([
                "--skip-networking",
                "--skip-grant-tables",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=128M",
                "--skip-name-resolve",
                "--default-time-zone=+00:00",
            ]);
        inst.spawn(d)?;
        let ready = inst.wait_ready(|| Conn::new(opts(&socket)).map(drop));
        let checked = match ready {
            Ok(()) => Ok(check_tables(&socket)?),
            Err(e) => Err(e),
        };
        let run = match checked {
            Ok(problems) if problems.is_empty() => ToolRun {
                tool: "mariadb-backup --prepare, mariadbd".into(),
                ok: true,
                status: "exit status: 0".into(),
                ..run
            },
            // The server itself says the restored data is damaged: that is
            // the backup's verdict, not a failure to judge it.
            Ok(problems) => ToolRun {
                tool: "CHECK TABLE".into(),
                ok: false,
                status: "the restored server reports corrupt tables".into(),
                stderr: problems.join("\n"),
                ..ToolRun::default()
            },
            Err(e) => ToolRun {
                tool: "mariadbd".into(),
                ok: false,
                status: "did not start on the prepared copy".into(),
                stderr: e.to_string(),
                ..ToolRun::default()
            },
        };
        SERVERS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(db.name.clone(), inst);
        Ok(run)
    }

    fn connect(&self, db: &ScratchDb) -> Result<Box<dyn SqlSession>, EngineError> {
        let socket = SERVERS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&db.name)
            .map(|i| socket_of(i.dir()))
            .ok_or_else(|| MbError::NoServer(db.name.clone()))?;
        Ok(Box::new(Session(
            Conn::new(opts(&socket)).map_err(MbError::Driver)?,
        )))
    }
}

/// mariadb-backup opens with a version banner and writes `Error: …`, which
/// the shared first-error finder does not look for: put that line first so
/// the finding says why the prepare failed.
fn with_error_first(mut run: ToolRun) -> ToolRun {
    let marked = |l: &str| l.contains("ERROR") || l.contains("error:") || l.contains("FATAL");
    if !run.stderr.lines().any(marked)
        && let Some(line) = run
            .stderr
            .lines()
            .find(|l| l.to_ascii_lowercase().contains("error"))
    {
        run.stderr = format!("ERROR: {}\n{}", line.trim(), run.stderr);
    }
    run
}

/// `CHECK TABLE` on every user table of the restored server: a page the
/// prepare never touched is read here. Returns the server's complaints.
fn check_tables(socket: &Path) -> Result<Vec<String>, EngineError> {
    let mut session = Session(Conn::new(opts(socket)).map_err(MbError::Driver)?);
    let mut problems = Vec::new();
    for t in session.tables()? {
        let rows: Result<Vec<(String, String, String, String)>, _> =
            session.0.query(format!("CHECK TABLE {}", t.sql));
        match rows {
            // ER_TABLE_CORRUPT and the like: the server refuses the table.
            Err(mysql::Error::MySqlError(e)) => problems.push(format!("{}: {}", t.key, e.message)),
            Err(e) => return Err(MbError::Driver(e).into()),
            Ok(rows) => problems.extend(
                rows.into_iter()
                    .filter(|(_, _, kind, _)| kind.eq_ignore_ascii_case("error"))
                    .map(|(_, _, _, text)| format!("{}: {text}", t.key)),
            ),
        }
    }
    Ok(problems)
}

/// The restored server, all of its user schemas: tables are `schema.table`.
struct Session(Conn);

impl SqlSession for Session {
    fn tables(&mut self) -> Result<Vec<Table>, EngineError> {
        let rows: Vec<(String, String)> = self
            .0
            .query(format!(
                "SELECT table_schema, table_name FROM information_schema.tables \
                 WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ({SYSTEM_SCHEMAS}) \
                 ORDER BY 1, 2"
            ))
            .map_err(MbError::Driver)?;
        Ok(rows
            .into_iter()
            .map(|(s, t)| Table {
                sql: format!("{}.{}", ident(&s), ident(&t)),
                key: format!("{s}.{t}"),
            })
            .collect())
    }

    fn count_rows(&mut self, table: &Table) -> Result<u64, EngineError> {
        let n: Option<u64> = self
            .0
            .query_first(format!("SELECT COUNT(*) FROM {}", table.sql))
            .map_err(MbError::Driver)?;
        Ok(n.unwrap_or(0))
    }

    fn database_bytes(&mut self) -> Result<u64, EngineError> {
        let size: Option<u64> = self
            .0
            .query_first(format!(
                "SELECT CAST(COALESCE(SUM(data_length + index_length), 0) AS UNSIGNED) \
                 FROM information_schema.tables WHERE table_schema NOT IN ({SYSTEM_SCHEMAS})"
            ))
            .map_err(MbError::Driver)?;
        Ok(size.unwrap_or(0))
    }

    fn first_value(&mut self, sql: &str) -> Result<Option<String>, EngineError> {
        Ok(mysql_dialect::first_text(&mut self.0, sql).map_err(MbError::Driver)?)
    }

    fn ident(&self, name: &str) -> String {
        ident(name)
    }

    fn is_true(&self, value: &str) -> bool {
        mysql_dialect::is_true(value)
    }

    fn newest_sql(&self, table: &str, column: &str) -> String {
        mysql_dialect::newest_sql(table, column)
    }

    fn age_sql(&self, table: &str, column: &str) -> String {
        mysql_dialect::age_sql(table, column)
    }
}
