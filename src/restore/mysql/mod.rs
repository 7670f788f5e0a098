//! MariaDB/MySQL restores: mysqldump / mariadb-dump SQL streamed into the
//! `mariadb` client (or `mysql`), split at table boundaries ([`split`]) and
//! replayed over two connections at once, as a user whose privileges end at
//! its scratch database (no FILE, no SUPER). Queries through the `mysql`
//! driver. Ephemeral servers: mariadb-install-db + mariadbd on a socket.

mod split;

use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder, Value};
use rustix::process::Signal;

use crate::inspect::Format;

use super::engine::{Endpoint, EngineError, EngineKind, ScratchDb, SqlSession, Started, Table};
use super::input::Input;
use super::scratch::{self, Instance, LOG_FILE, RunAs};
use super::tools::{self, ToolError, ToolRun, run_tools};

pub struct MariaDb;

/// Parallel client connections. Measured on a 215 MB dump: one client
/// 21.8 s, two 10.6 s; more would only fight over two cores.
const CONNECTIONS: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum MyError {
    #[error(
        "MariaDB server binaries missing: {0}; install mariadb-server or configure a scratch_url"
    )]
    NoServer(#[source] ToolError),
    #[error("{0} (install mariadb-client)")]
    NoClient(#[source] ToolError),
    #[error("bad scratch_url: {0}")]
    BadUrl(#[source] mysql::UrlError),
    #[error("{0}")]
    Driver(#[from] mysql::Error),
}

impl From<MyError> for EngineError {
    fn from(e: MyError) -> Self {
        EngineError::engine(e)
    }
}

fn admin_opts(endpoint: &Endpoint) -> Result<Opts, MyError> {
    match endpoint {
        Endpoint::Socket { path, admin, .. } => Ok(OptsBuilder::new()
            .socket(Some(path.to_string_lossy()))
            .user(Some(admin))
            .tcp_connect_timeout(Some(Duration::from_secs(10)))
            .into()),
        Endpoint::Url(url) => {
            Opts::from_url(&url.replacen("mariadb://", "mysql://", 1)).map_err(MyError::BadUrl)
        }
    }
}

fn db_opts(db: &ScratchDb) -> Result<Opts, MyError> {
    let o = admin_opts(&db.endpoint)?;
    Ok(OptsBuilder::from_opts(o)
        .user(Some(&db.user))
        .pass(Some(&db.password))
        .db_name(Some(&db.name))
        .into())
}

fn connect(o: Opts) -> Result<Conn, MyError> {
    Ok(Conn::new(o)?)
}

/// MariaDB's SQL dialect, shared by every engine that ends in a MariaDB
/// server (dump replays here, mariadb-backup directories beside).
pub(super) fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The first column of the first row, as text.
pub(super) fn first_text(c: &mut Conn, sql: &str) -> mysql::Result<Option<String>> {
    let row: Option<mysql::Row> = c.query_first(sql)?;
    Ok(row.and_then(|r| match r.as_ref(0) {
        Some(Value::NULL) | None => None,
        Some(Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        Some(Value::Int(i)) => Some(i.to_string()),
        Some(Value::UInt(i)) => Some(i.to_string()),
        Some(Value::Float(f)) => Some(f.to_string()),
        Some(Value::Double(f)) => Some(f.to_string()),
        Some(other) => Some(format!("{other:?}")),
    }))
}

pub(super) fn is_true(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "1" | "true" | "t" | "yes"
    )
}

pub(super) fn newest_sql(table: &str, column: &str) -> String {
    format!("SELECT CAST(MAX({column}) AS CHAR) FROM {table}")
}

pub(super) fn age_sql(table: &str, column: &str) -> String {
    format!("SELECT TIMESTAMPDIFF(SECOND, MAX({column}), NOW()) FROM {table}")
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// The hosts a scratch user is created for: the socket's `localhost` and
/// any host for TCP.
const USER_HOSTS: [&str; 2] = ["localhost", "%"];

impl EngineKind for MariaDb {
    fn name(&self) -> &'static str {
        "mariadb"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["mysql"]
    }

    fn url_schemes(&self) -> &'static [&'static str] {
        &["mysql://", "mariadb://"]
    }

    fn formats(&self) -> &'static [Format] {
        &[Format::MysqlDump]
    }

    fn plain_sql(&self) -> Option<Format> {
        Some(Format::MysqlDump)
    }

    fn format_by_name(&self, bare_name: &str) -> Option<Format> {
        bare_name.ends_with(".sql").then_some(Format::MysqlDump)
    }

    /// mariadb-install-db + mariadbd with its own datadir and socket, no
    /// networking, tuned for loading.
    fn start(&self) -> Result<Started, EngineError> {
        let install = tools::which_any(&["mariadb-install-db", "mysql_install_db"])
            .map_err(MyError::NoServer)?;
        let server = tools::which_any(&["mariadbd", "mysqld"]).map_err(MyError::NoServer)?;
        let run_as = RunAs::for_user("mysql")?;
        // Nothing worth flushing in a database about to be dropped.
        let mut inst = Instance::new(self.name(), run_as, Signal::KILL)?;
        let dir = inst.dir().to_path_buf();
        let socket = dir.join("mysqld.sock");
        let data = dir.join("data");
        const INSTALL: [&str; 4] = [
            "--no-defaults",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ];
        super::template::prepare("mariadb", &server, &INSTALL, run_as, &data, || {
            let mut c = run_as.command(&install, Signal::KILL);
            c.arg(INSTALL[0])
                .arg(format!("--datadir={}", data.display()))
                .args(&INSTALL[1..]);
            scratch::run_setup(c, "mariadb-install-db")
        })?;
        let mut d = run_as.command(&server, Signal::KILL);
        d.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
            .arg(format!("--log-error={}", dir.join(LOG_FILE).display()))
            .args([
                "--skip-networking",
                "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--innodb-buffer-pool-size=256M",
                "--innodb-log-file-size=256M",
                "--max-allowed-packet=1G",
                "--skip-name-resolve",
                "--default-time-zone=+00:00",
            ]);
        inst.spawn(d)?;
        let endpoint = Endpoint::Socket {
            path: socket,
            port: 0,
            admin: "root".into(),
        };
        inst.wait_ready(|| self.ping(&endpoint))?;
        Ok(Started {
            instance: inst,
            endpoint,
        })
    }

    fn ping(&self, endpoint: &Endpoint) -> Result<(), EngineError> {
        let mut c = connect(admin_opts(endpoint)?)?;
        c.query_drop("SELECT 1").map_err(MyError::Driver)?;
        Ok(())
    }

    fn create(&self, endpoint: &Endpoint, valid_for: Duration) -> Result<ScratchDb, EngineError> {
        let mut admin = connect(admin_opts(endpoint)?)?;
        // MariaDB has no login expiry finer than days: the expiry is in the
        // name, and every sweep drops an expired login, live run or not.
        let (name, expires) = scratch::database_name(valid_for)?;
        let password = scratch::password()?;
        let db = ScratchDb {
            user: name.clone(),
            name: name.clone(),
            password: password.clone(),
            endpoint: endpoint.clone(),
            expires,
        };
        let mut stmts = vec![format!(
            "CREATE DATABASE {} CHARACTER SET utf8mb4",
            ident(&name)
        )];
        for h in USER_HOSTS {
            // Privileges on this database only: no FILE (INTO OUTFILE, LOAD
            // DATA INFILE), no SUPER, nothing on other databases.
            stmts.push(format!(
                "CREATE USER {}@{} IDENTIFIED BY {}",
                literal(&name),
                literal(h),
                literal(&password)
            ));
            stmts.push(format!(
                "GRANT ALL PRIVILEGES ON {}.* TO {}@{}",
                ident(&name),
                literal(&name),
                literal(h)
            ));
        }
        for s in stmts {
            if let Err(e) = admin.query_drop(&s) {
                let _ = self.drop_db(&db);
                return Err(MyError::Driver(e).into());
            }
        }
        Ok(db)
    }

    fn drop_db(&self, db: &ScratchDb) -> Result<(), EngineError> {
        let mut admin = connect(admin_opts(&db.endpoint)?)?;
        // A killed client leaves its statement running in the server, and
        // DROP DATABASE would wait for its locks: end those sessions first.
        let sessions: Vec<u64> = admin
            .query(format!(
                "SELECT id FROM information_schema.processlist WHERE user = {}",
                literal(&db.user)
            ))
            .unwrap_or_default();
        for id in sessions {
            let _ = admin.query_drop(format!("KILL {id}"));
        }
        // A full-server dump's databases, named after this one, go too.
        let mut databases: Vec<String> = admin
            .exec(
                "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE ?",
                (like_children(&db.name),),
            )
            .unwrap_or_default();
        databases.push(db.name.clone());
        for d in databases {
            admin
                .query_drop(format!("DROP DATABASE IF EXISTS {}", ident(&d)))
                .map_err(MyError::Driver)?;
        }
        for h in USER_HOSTS {
            admin
                .query_drop(format!(
                    "DROP USER IF EXISTS {}@{}",
                    literal(&db.user),
                    literal(h)
                ))
                .map_err(MyError::Driver)?;
        }
        Ok(())
    }

    fn sweep(&self, endpoint: &Endpoint) -> Vec<String> {
        let mut swept = Vec::new();
        let Ok(mut admin) = admin_opts(endpoint).and_then(connect) else {
            return swept;
        };
        let dbs: Vec<String> = admin
            .query("SHOW DATABASES LIKE 'backproof\\_scratch\\_%'")
            .unwrap_or_default();
        for d in dbs.into_iter().filter(|n| scratch::left_by_dead_run(n)) {
            if admin
                .query_drop(format!("DROP DATABASE IF EXISTS {}", ident(&d)))
                .is_ok()
            {
                swept.push(d);
            }
        }
        let users: Vec<(String, String)> = admin
            .query("SELECT User, Host FROM mysql.user WHERE User LIKE 'backproof\\_scratch\\_%'")
            .unwrap_or_default();
        for (u, h) in users
            .into_iter()
            .filter(|(u, _)| scratch::left_by_dead_run(u))
        {
            let _ = admin.query_drop(format!(
                "DROP USER IF EXISTS {}@{}",
                literal(&u),
                literal(&h)
            ));
        }
        swept
    }

    fn load(
        &self,
        db: &ScratchDb,
        _format: Format,
        input: Input<'_>,
        deadline: Instant,
    ) -> Result<ToolRun, EngineError> {
        let client = tools::which_any(&["mariadb", "mysql"]).map_err(MyError::NoClient)?;
        let opts = db_opts(db)?;
        let mut cmds = Vec::new();
        for _ in 0..CONNECTIONS {
            let mut c = tools::client_command(&client);
            c.env("MYSQL_PWD", &db.password).arg("--no-defaults");
            c.arg(format!("--user={}", db.user));
            if let Some(sock) = opts.get_socket() {
                c.arg(format!("--socket={sock}"));
            } else {
                c.arg(format!("--host={}", opts.get_ip_or_hostname()))
                    .arg(format!("--port={}", opts.get_tcp_port()))
                    .arg("--protocol=TCP");
            }
            c.args(["--max-allowed-packet=1G", "--batch"]).arg(&db.name);
            cmds.push(c);
        }
        let tool = client
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "mariadb".into());
        let mut reader = BufReader::with_capacity(256 * 1024, input.into_reader()?);
        let probe = Probe { opts, conn: None };
        // `--all-databases` / `--databases`: each database into a scratch
        // database of its own, over one connection (the `USE` switches
        // must stay in order with the statements they scope).
        // A read error here shows again, as the feed's, where it is judged.
        let server_dump = reader.fill_buf().is_ok_and(|head| {
            contains(head, b"\n-- Current Database: ") || head.starts_with(b"CREATE DATABASE ")
        });
        if server_dump {
            cmds.truncate(1);
            let dump = ServerDump {
                inner: reader,
                admin: connect(admin_opts(&db.endpoint)?)?,
                db: db.clone(),
                mapped: Vec::new(),
                line: Vec::new(),
                pos: 0,
                complete: false,
            };
            return Ok(run_tools(
                &tool,
                cmds,
                move |stdins, exited| split::split_feed(dump, stdins, exited, probe),
                deadline,
            )?);
        }
        Ok(run_tools(
            &tool,
            cmds,
            move |stdins, exited| split::split_feed(reader, stdins, exited, probe),
            deadline,
        )?)
    }

    fn connect(&self, db: &ScratchDb) -> Result<Box<dyn SqlSession>, EngineError> {
        Ok(Box::new(MySession(connect(db_opts(db)?)?)))
    }

    fn restored_databases(&self, db: &ScratchDb) -> Result<Vec<(String, ScratchDb)>, EngineError> {
        let mut admin = connect(admin_opts(&db.endpoint)?)?;
        let rows: Vec<(String, String)> = admin
            .exec(
                "SELECT schema_name, schema_comment FROM information_schema.schemata \
                 WHERE schema_name LIKE ? \
                 ORDER BY CAST(SUBSTRING_INDEX(schema_name, '_', -1) AS UNSIGNED)",
                (like_children(&db.name),),
            )
            .map_err(MyError::Driver)?;
        Ok(rows
            .into_iter()
            .map(|(name, original)| (original, ScratchDb { name, ..db.clone() }))
            .collect())
    }
}

/// `LIKE` pattern for the databases a full-server restore made for `name`.
fn like_children(name: &str) -> String {
    format!("{}\\_%", name.replace('_', "\\_"))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The first backquoted identifier of a line (`CREATE DATABASE /*!32312 IF
/// NOT EXISTS*/ `a``b` ...`, `USE `a``b`;`), unquoted.
fn quoted_name(line: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(line);
    let start = text.find('`')? + 1;
    let mut name = String::new();
    let mut chars = text[start..].chars().peekable();
    while let Some(c) = chars.next() {
        if c == '`' {
            if chars.peek() == Some(&'`') {
                chars.next();
            } else {
                return Some(name);
            }
        }
        name.push(c);
    }
    None
}

/// A `--all-databases` (or `--databases`) dump as the scratch login may
/// run it: `CREATE DATABASE x` creates a scratch database of ours instead
/// (named after the scratch database, `x` in its comment, all privileges on
/// it and nothing else for the scratch login), `USE x` switches to it, and
/// `DROP DATABASE` never reaches the server. The `mysql` system schema
/// becomes plain tables in its own scratch database: no account or grant of
/// the dump ever takes effect (no FLUSH PRIVILEGES is possible without
/// RELOAD, which the scratch login lacks).
struct ServerDump<R> {
    inner: R,
    admin: Conn,
    db: ScratchDb,
    /// (original, scratch) in the order the dump named them.
    mapped: Vec<(String, String)>,
    line: Vec<u8>,
    pos: usize,
    /// Whether the last non-blank line so far is the closing trailer: a
    /// cut between two statements would load without an error.
    complete: bool,
}

impl<R: BufRead> ServerDump<R> {
    fn scratch_for(&mut self, original: &str) -> std::io::Result<String> {
        if let Some((_, s)) = self.mapped.iter().find(|(o, _)| o == original) {
            return Ok(s.clone());
        }
        let name = format!("{}_{}", self.db.name, self.mapped.len() + 1);
        let mut stmts = vec![format!(
            "CREATE DATABASE {} CHARACTER SET utf8mb4 COMMENT {}",
            ident(&name),
            literal(original)
        )];
        for h in USER_HOSTS {
            stmts.push(format!(
                "GRANT ALL PRIVILEGES ON {}.* TO {}@{}",
                ident(&name),
                literal(&self.db.user),
                literal(h)
            ));
        }
        for sql in stmts {
            self.admin
                .query_drop(&sql)
                .map_err(|e| tools::Setup::io(MyError::Driver(e).to_string()))?;
        }
        self.mapped.push((original.to_string(), name.clone()));
        Ok(name)
    }

    /// The next line as the scratch server gets it (empty at the end).
    fn next_line(&mut self) -> std::io::Result<()> {
        loop {
            self.line.clear();
            self.pos = 0;
            if self.inner.read_until(b'\n', &mut self.line)? == 0 {
                if !self.complete {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the dump ends before its \"-- Dump completed\" trailer",
                    ));
                }
                return Ok(());
            }
            let l = &self.line;
            if !l.trim_ascii().is_empty() {
                self.complete = l.starts_with(b"-- Dump completed");
            }
            if l.starts_with(b"CREATE DATABASE ") {
                if let Some(name) = quoted_name(l) {
                    self.scratch_for(&name)?;
                }
                continue;
            }
            if l.starts_with(b"DROP DATABASE ") {
                continue;
            }
            if l.starts_with(b"USE `")
                && let Some(name) = quoted_name(l)
            {
                let scratch = self.scratch_for(&name)?;
                self.line = format!("USE {};\n", ident(&scratch)).into_bytes();
            }
            return Ok(());
        }
    }
}

impl<R: BufRead> std::io::Read for ServerDump<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for ServerDump<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.pos >= self.line.len() {
            self.next_line()?;
        }
        Ok(&self.line[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos += amt;
    }
}

/// The scratch user's own driver connection, asking whether a table
/// exists yet.
struct Probe {
    opts: Opts,
    conn: Option<Conn>,
}

impl split::TableProbe for Probe {
    fn wait_for(&mut self, table: &str, lane_exited: &AtomicBool) -> bool {
        if self.conn.is_none() {
            self.conn = connect(self.opts.clone()).ok();
        }
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        let sql = format!(
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = {}",
            literal(table)
        );
        let until = Instant::now() + Duration::from_secs(600);
        while Instant::now() < until && !lane_exited.load(Ordering::SeqCst) {
            match conn.query_first::<u64, _>(&sql) {
                Ok(Some(n)) if n > 0 => return true,
                Ok(_) => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => return false,
            }
        }
        false
    }
}

struct MySession(Conn);

impl SqlSession for MySession {
    fn tables(&mut self) -> Result<Vec<Table>, EngineError> {
        let names: Vec<String> = self
            .0
            .query(
                "SELECT table_name FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1",
            )
            .map_err(MyError::Driver)?;
        Ok(names
            .into_iter()
            .map(|t| Table {
                sql: ident(&t),
                key: t,
            })
            .collect())
    }

    fn count_rows(&mut self, table: &Table) -> Result<u64, EngineError> {
        let n: Option<u64> = self
            .0
            .query_first(format!("SELECT COUNT(*) FROM {}", table.sql))
            .map_err(MyError::Driver)?;
        Ok(n.unwrap_or(0))
    }

    fn database_bytes(&mut self) -> Result<u64, EngineError> {
        let size: Option<u64> = self
            .0
            .query_first(
                "SELECT CAST(COALESCE(SUM(data_length + index_length), 0) AS UNSIGNED) \
                 FROM information_schema.tables WHERE table_schema = DATABASE()",
            )
            .map_err(MyError::Driver)?;
        Ok(size.unwrap_or(0))
    }

    fn first_value(&mut self, sql: &str) -> Result<Option<String>, EngineError> {
        Ok(first_text(&mut self.0, sql).map_err(MyError::Driver)?)
    }

    fn ident(&self, name: &str) -> String {
        ident(name)
    }

    fn is_true(&self, value: &str) -> bool {
        is_true(value)
    }

    fn newest_sql(&self, table: &str, column: &str) -> String {
        newest_sql(table, column)
    }

    fn age_sql(&self, table: &str, column: &str) -> String {
        age_sql(table, column)
    }
}
