//! PostgreSQL restores: pg_restore for archives (custom, directory, tar),
//! psql for plain SQL, always as a NOSUPERUSER role that owns only its
//! scratch database; queries through the `postgres` driver (tokio-postgres'
//! blocking client). Ephemeral servers: initdb + postgres on a unix socket.

use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command};
use std::time::{Duration, Instant};

use postgres::config::Host;
use postgres::{Client, Config, NoTls, SimpleQueryMessage};
use rustix::process::Signal;

use crate::catalog::Layout;
use crate::inspect::Format;

use super::engine::{Endpoint, EngineError, EngineKind, ScratchDb, SqlSession, Started, Table};
use super::input::Input;
use super::scratch::{self, DB_PREFIX, Instance, RunAs};
use super::tools::{self, ToolRun, broken_pipe, copy_into, run_tools};

pub struct Postgres;

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error(
        "PostgreSQL server binaries (initdb, postgres) not found: neither `pg_config --bindir` nor /usr/lib/postgresql/*/bin has them; install the postgresql package or configure a scratch_url"
    )]
    NoServer,
    #[error("bad scratch_url: {0}")]
    BadUrl(#[source] postgres::Error),
    /// In the server's own words: `postgres::Error` alone says "db error".
    #[error("{}", server_words(.0))]
    Server(#[source] postgres::Error),
    /// As the driver words it (what CREATE DATABASE failures always showed).
    #[error("{0}")]
    Driver(#[source] postgres::Error),
    #[error("{name} not found (install postgresql-client)")]
    NoTool { name: &'static str },
}

impl From<PgError> for EngineError {
    fn from(e: PgError) -> Self {
        EngineError::engine(e)
    }
}

fn server_words(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

fn admin_config(endpoint: &Endpoint) -> Result<Config, PgError> {
    match endpoint {
        Endpoint::Socket { path, port, admin } => {
            let mut c = Config::new();
            c.host_path(path).port(*port).user(admin).dbname("postgres");
            Ok(c)
        }
        Endpoint::Url(url) => {
            let mut c: Config = url
                .replacen("postgresql://", "postgres://", 1)
                .parse()
                .map_err(PgError::BadUrl)?;
            if c.get_dbname().is_none() {
                c.dbname("postgres");
            }
            Ok(c)
        }
    }
}

fn connect(c: &Config) -> Result<Client, PgError> {
    let mut c = c.clone();
    c.connect_timeout(Duration::from_secs(10));
    c.application_name("backproof");
    c.connect(NoTls).map_err(PgError::Server)
}

/// The scratch database's own login (same host, its own role).
fn db_config(db: &ScratchDb) -> Result<Config, PgError> {
    let mut c = admin_config(&db.endpoint)?;
    c.user(&db.user).password(&db.password).dbname(&db.name);
    Ok(c)
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// PostgreSQL server binaries: `pg_config --bindir`, else the newest
/// /usr/lib/postgresql/*/bin.
fn pg_bindir() -> Option<PathBuf> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has(&d) {
            return Some(d);
        }
    }
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has(d))
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, d)| d)
}

/// A client tool (pg_restore, psql) from the server's bindir when there is
/// one (same major version), else from PATH.
fn tool(name: &'static str) -> Result<PathBuf, PgError> {
    pg_bindir()
        .map(|d| d.join(name))
        .filter(|p| p.is_file())
        .or_else(|| tools::which(name))
        .ok_or(PgError::NoTool { name })
}

/// libpq environment for the client tools, from the same config the
/// driver uses: the password never appears on a command line.
fn tool_command(program: &Path, db: &ScratchDb) -> Result<Command, PgError> {
    let c = db_config(db)?;
    let mut cmd = tools::client_command(program);
    // libpq takes the same lists of hosts and ports the URL gave.
    let hosts: Vec<String> = c
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(h) => h.clone(),
            Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    if !hosts.is_empty() {
        cmd.env("PGHOST", hosts.join(","));
    }
    let ports: Vec<String> = c.get_ports().iter().map(|p| p.to_string()).collect();
    if !ports.is_empty() {
        cmd.env("PGPORT", ports.join(","));
    }
    cmd.env("PGUSER", &db.user)
        .env("PGPASSWORD", &db.password)
        .env("PGDATABASE", &db.name)
        .env("PGAPPNAME", "backproof-restore")
        .env("PGCONNECT_TIMEOUT", "10");
    Ok(cmd)
}

/// Settings for a server whose data is about to be dropped: durability is
/// pointless, loading speed is all.
const LOAD_SETTINGS: [&str; 10] = [
    "listen_addresses=",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "wal_level=minimal",
    "max_wal_senders=0",
    "maintenance_work_mem=256MB",
    "max_wal_size=4GB",
    "checkpoint_timeout=1h",
    "autovacuum=off",
];

impl EngineKind for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["postgresql"]
    }

    fn url_schemes(&self) -> &'static [&'static str] {
        &["postgres://", "postgresql://"]
    }

    fn formats(&self) -> &'static [Format] {
        &[
            Format::PgCustom,
            Format::PgToc,
            Format::PgTar,
            Format::PgPlain,
            Format::PgCluster,
        ]
    }

    fn plain_sql(&self) -> Option<Format> {
        Some(Format::PgPlain)
    }

    fn layout_format(&self, layout: Layout) -> Option<Format> {
        (layout == Layout::PgDirectory).then_some(Format::PgToc)
    }

    fn format_by_name(&self, bare_name: &str) -> Option<Format> {
        if [".dump", ".backup", ".pgdump"]
            .iter()
            .any(|s| bare_name.ends_with(s))
        {
            Some(Format::PgCustom)
        } else if bare_name.ends_with(".sql") {
            Some(Format::PgPlain)
        } else {
            None
        }
    }

    /// initdb + postgres on a unix socket in the instance's dir.
    fn start(&self) -> Result<Started, EngineError> {
        let bin = pg_bindir().ok_or(PgError::NoServer)?;
        let run_as = RunAs::for_user("postgres")?;
        // SIGQUIT is an immediate shutdown.
        let mut inst = Instance::new(self.name(), run_as, Signal::QUIT)?;
        let dir = inst.dir().to_path_buf();
        let data = dir.join("data");
        const INITDB: [&str; 6] = [
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ];
        super::template::prepare(
            "postgres",
            &bin.join("postgres"),
            &INITDB,
            run_as,
            &data,
            || {
                let mut initdb = run_as.command(&bin.join("initdb"), Signal::KILL);
                initdb.arg("-D").arg(&data).args(INITDB).env("TZ", "UTC");
                scratch::run_setup(initdb, "initdb")
            },
        )?;
        let mut pg = run_as.command(&bin.join("postgres"), Signal::QUIT);
        pg.arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&dir)
            .args(["-p", "5432"]);
        for setting in LOAD_SETTINGS {
            pg.arg("-c").arg(setting);
        }
        inst.spawn(pg)?;
        let endpoint = Endpoint::Socket {
            path: dir,
            port: 5432,
            admin: "postgres".into(),
        };
        inst.wait_ready(|| self.ping(&endpoint))?;
        Ok(Started {
            instance: inst,
            endpoint,
        })
    }

    fn ping(&self, endpoint: &Endpoint) -> Result<(), EngineError> {
        let mut c = connect(&admin_config(endpoint)?)?;
        c.simple_query("select 1").map_err(PgError::Server)?;
        Ok(())
    }

    fn create(&self, endpoint: &Endpoint, valid_for: Duration) -> Result<ScratchDb, EngineError> {
        let mut admin = connect(&admin_config(endpoint)?)?;
        let (name, expires) = scratch::database_name(valid_for)?;
        let password = scratch::password()?;
        // NOSUPERUSER: restored SQL is untrusted; COPY ... TO PROGRAM, untrusted
        // languages and server file access all need more than this role has.
        // VALID UNTIL: should every cleanup miss it (SIGKILL, no later run),
        // the password stops working on its own.
        admin
            .batch_execute(&format!(
                "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD {} VALID UNTIL {}",
                ident(&name),
                literal(&password),
                literal(&expires.to_rfc3339())
            ))
            .map_err(PgError::Server)?;
        // template0: nothing a site added to template1 may clash with the dump.
        if let Err(e) = admin.batch_execute(&format!(
            "CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'",
            ident(&name),
            ident(&name)
        )) {
            let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {}", ident(&name)));
            return Err(PgError::Driver(e).into());
        }
        Ok(ScratchDb {
            user: name.clone(),
            name,
            password,
            endpoint: endpoint.clone(),
            expires,
        })
    }

    fn drop_db(&self, db: &ScratchDb) -> Result<(), EngineError> {
        let mut admin = connect(&admin_config(&db.endpoint)?)?;
        // A full-server dump's databases (named after this one) and the
        // roles made for it (marked with this database's name) go too.
        let (databases, roles) = cluster_leftovers(&mut admin, db);
        for d in databases.iter().chain(std::iter::once(&db.name)) {
            admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    ident(d)
                ))
                .map_err(PgError::Server)?;
        }
        for r in roles {
            admin
                .batch_execute(&format!("DROP ROLE IF EXISTS {}", ident(&r)))
                .map_err(PgError::Server)?;
        }
        admin
            .batch_execute(&format!("DROP ROLE IF EXISTS {}", ident(&db.user)))
            .map_err(PgError::Server)?;
        Ok(())
    }

    fn sweep(&self, endpoint: &Endpoint) -> Vec<String> {
        let mut swept = Vec::new();
        let Ok(mut admin) = admin_config(endpoint).and_then(|c| connect(&c)) else {
            return swept;
        };
        let pattern = literal(&format!("{}%", DB_PREFIX.replace('_', "\\_")));
        let names = |admin: &mut Client, sql: &str| -> Vec<String> {
            admin
                .query(sql, &[])
                .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect())
                .unwrap_or_default()
        };
        for d in names(
            &mut admin,
            &format!("SELECT datname::text FROM pg_database WHERE datname LIKE {pattern}"),
        )
        .into_iter()
        .filter(|n| scratch::left_by_dead_run(n))
        {
            if admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    ident(&d)
                ))
                .is_ok()
            {
                swept.push(d);
            }
        }
        for r in names(
            &mut admin,
            &format!("SELECT rolname::text FROM pg_roles WHERE rolname LIKE {pattern}"),
        )
        .into_iter()
        .filter(|n| scratch::left_by_dead_run(n))
        {
            let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {}", ident(&r)));
        }
        swept
    }

    fn load(
        &self,
        db: &ScratchDb,
        format: Format,
        input: Input<'_>,
        deadline: Instant,
    ) -> Result<ToolRun, EngineError> {
        if format == Format::PgCluster {
            let key = scratch::password()?;
            let mut cmd = tool_command(&tool("psql")?, db)?;
            cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"]);
            let reader = input.into_reader()?;
            let db = db.clone();
            return Ok(run_tools(
                "psql",
                vec![cmd],
                move |mut stdins, _| {
                    let out = stdins.pop().expect("one tool, one stdin");
                    let mut cluster =
                        Cluster::new(&db).map_err(|e| tools::Setup::io(e.to_string()))?;
                    cluster.feed(BufReader::with_capacity(256 * 1024, reader), out, &key)
                },
                deadline,
            )?);
        }
        if format == Format::PgPlain {
            let key = scratch::password()?;
            let mut cmd = tool_command(&tool("psql")?, db)?;
            cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"]);
            let reader = input.into_reader()?;
            return Ok(run_tools(
                "psql",
                vec![cmd],
                move |mut stdins, _| {
                    let out = stdins.pop().expect("one tool, one stdin");
                    feed_plain(BufReader::with_capacity(256 * 1024, reader), out, &key)
                },
                deadline,
            )?);
        }
        let mut cmd = tool_command(&tool("pg_restore")?, db)?;
        cmd.args(["--no-owner", "--no-privileges", "--exit-on-error"]);
        cmd.arg(format!("--dbname={}", db.name));
        cmd.arg(match format {
            Format::PgTar => "--format=tar",
            Format::PgToc => "--format=directory",
            _ => "--format=custom",
        });
        let run = match input {
            Input::Path(p) => {
                // Parallel jobs need a seekable archive: a file or directory,
                // never a stream (and pg_restore cannot do tar in parallel).
                if matches!(format, Format::PgCustom | Format::PgToc) {
                    cmd.args(["--jobs", "2"]);
                }
                cmd.arg(p);
                run_tools("pg_restore", vec![cmd], |_, _| Ok(()), deadline)
            }
            Input::Stream(r) => run_tools(
                "pg_restore",
                vec![cmd],
                move |mut stdins, _| {
                    let out = stdins.pop().expect("one tool, one stdin");
                    copy_into(r, out)
                },
                deadline,
            ),
        };
        Ok(run?)
    }

    fn connect(&self, db: &ScratchDb) -> Result<Box<dyn SqlSession>, EngineError> {
        Ok(Box::new(PgSession(connect(&db_config(db)?)?)))
    }

    fn restored_databases(&self, db: &ScratchDb) -> Result<Vec<(String, ScratchDb)>, EngineError> {
        let mut admin = connect(&admin_config(&db.endpoint)?)?;
        let rows = admin
            .query(
                "SELECT datname::text, shobj_description(oid, 'pg_database') FROM pg_database \
                 WHERE datname LIKE $1 ORDER BY oid",
                &[&like_children(&db.name)],
            )
            .map_err(PgError::Server)?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let (name, original): (String, Option<String>) = (r.get(0), r.get(1));
                Some((original?, ScratchDb { name, ..db.clone() }))
            })
            .collect())
    }

    fn created_roles(&self, db: &ScratchDb) -> Vec<String> {
        admin_config(&db.endpoint)
            .and_then(|c| connect(&c))
            .map(|mut admin| cluster_leftovers(&mut admin, db).1)
            .unwrap_or_default()
    }
}

/// Our own admin statement failed: the restore could not be set up.
fn setup_error(e: postgres::Error) -> io::Error {
    tools::Setup::io(PgError::Server(e).to_string())
}

/// `LIKE` pattern for the databases a full-server restore made for `name`.
fn like_children(name: &str) -> String {
    format!("{}\\_%", name.replace('_', "\\_"))
}

/// The databases and roles a full-server restore made for `db`.
fn cluster_leftovers(admin: &mut Client, db: &ScratchDb) -> (Vec<String>, Vec<String>) {
    let names = |admin: &mut Client, sql: &str, arg: &str| -> Vec<String> {
        admin
            .query(sql, &[&arg])
            .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect())
            .unwrap_or_default()
    };
    let databases = names(
        admin,
        "SELECT datname::text FROM pg_database WHERE datname LIKE $1",
        &like_children(&db.name),
    );
    let roles = names(
        admin,
        "SELECT rolname::text FROM pg_roles WHERE shobj_description(oid, 'pg_authid') = $1",
        &db.name,
    );
    (databases, roles)
}

/// Feeds a `pg_dumpall` into psql, section by section: each database of
/// the dump goes into a scratch database of its own (owned by the scratch
/// login, named after the scratch database, its original name in its
/// comment), roles are created bare, and nothing reaches psql that the
/// scratch login could not run or that would leave the sandbox.
///
/// Containment: psql runs as the NOSUPERUSER scratch login, so COPY ...
/// PROGRAM, server file access and untrusted languages are refused by the
/// server; the cluster-level statements (CREATE/ALTER ROLE, CREATE/ALTER
/// DATABASE, CREATE TABLESPACE, catalog updates) never reach it: the
/// databases and roles are made here as admin from their names alone, with
/// no attribute of the dump. psql meta-commands other than `\connect`
/// (rewritten to the scratch database) and `\restrict`/`\unrestrict` would
/// run in backproof's own client (`\!` a shell, `\o |cmd`, `\copy` files):
/// the sandbox refuses them.
struct Cluster {
    admin: Client,
    db: ScratchDb,
    /// On our own ephemeral server the dump's roles are created (bare);
    /// on a configured server no cluster-wide name is touched.
    create_roles: bool,
    next: usize,
}

impl Cluster {
    fn new(db: &ScratchDb) -> Result<Cluster, PgError> {
        Ok(Cluster {
            admin: connect(&admin_config(&db.endpoint)?)?,
            db: db.clone(),
            create_roles: matches!(db.endpoint, Endpoint::Socket { .. }),
            next: 0,
        })
    }

    /// A scratch database for the dump's database `original`.
    fn database(&mut self, original: &str) -> io::Result<String> {
        self.next += 1;
        let name = format!("{}_{}", self.db.name, self.next);
        // One statement per call: CREATE DATABASE refuses a transaction.
        for sql in [
            format!(
                "CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'",
                ident(&name),
                ident(&self.db.user)
            ),
            format!(
                "COMMENT ON DATABASE {} IS {}",
                ident(&name),
                literal(original)
            ),
        ] {
            self.admin.batch_execute(&sql).map_err(setup_error)?;
        }
        Ok(name)
    }

    /// A role of the dump, with no attribute at all (NOLOGIN, and none of
    /// SUPERUSER, REPLICATION, CREATEROLE, CREATEDB, BYPASSRLS), marked as
    /// this restore's so that dropping the scratch database drops it.
    fn role(&mut self, name: &str) -> io::Result<()> {
        if !self.create_roles {
            return Ok(());
        }
        let exists = self
            .admin
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
            .map_err(setup_error)?
            .is_some();
        if exists {
            return Ok(());
        }
        for sql in [
            format!(
                "CREATE ROLE {} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
                ident(name)
            ),
            format!(
                "COMMENT ON ROLE {} IS {}",
                ident(name),
                literal(&self.db.name)
            ),
        ] {
            self.admin.batch_execute(&sql).map_err(setup_error)?;
        }
        Ok(())
    }

    fn feed(&mut self, mut input: impl BufRead, out: ChildStdin, key: &str) -> io::Result<()> {
        let mut out = BufWriter::with_capacity(256 * 1024, out);
        restrict(&mut out, key)?;
        let mut line = Vec::with_capacity(64 * 1024);
        let mut in_copy = false;
        // A cut between two statements would load without an error: only
        // the trailer says the dump is whole.
        let mut complete = false;
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if in_copy {
                if line == b"\\.\n" || line == b"\\.\r\n" || line == b"\\." {
                    in_copy = false;
                }
                out.write_all(&line).map_err(broken_pipe)?;
                continue;
            }
            let l = trimmed(&line);
            if !l.is_empty() && l != b"--" {
                complete = l == CLUSTER_TRAILER.as_bytes();
            }
            if line.starts_with(b"COPY ") && l.ends_with(b"FROM stdin;") {
                in_copy = true;
            } else if let Some(rest) = l.strip_prefix(b"\\connect ") {
                let original = connect_target(&String::from_utf8_lossy(rest));
                let scratch = self.database(&original)?;
                // Only the feeder knows the key: it lifts the restriction
                // for its own \connect alone.
                out.write_all(
                    format!(
                        "\\unrestrict {key}\n\\connect {}\n\\restrict {key}\n",
                        ident(&scratch)
                    )
                    .as_bytes(),
                )
                .map_err(broken_pipe)?;
                continue;
            } else if l.starts_with(b"\\restrict ") || l.starts_with(b"\\unrestrict ") {
                // The dump's own keys give way to ours (see [`restrict`]).
                continue;
            } else if l.starts_with(b"\\") {
                let statement = String::from_utf8_lossy(l)
                    .chars()
                    .take(80)
                    .collect::<String>();
                return Err(tools::Refused::io(format!(
                    "the psql meta-command {statement:?}"
                )));
            } else if let Some(rest) = l.strip_prefix(b"CREATE ROLE ") {
                let name = String::from_utf8_lossy(rest.strip_suffix(b";").unwrap_or(rest));
                self.role(&unquote(name.trim()))?;
                continue;
            } else if skip_cluster(l) || skip_plain(&line) {
                continue;
            }
            out.write_all(&line).map_err(broken_pipe)?;
        }
        if !complete {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the dump ends before its \"{CLUSTER_TRAILER}\" trailer"),
            ));
        }
        out.flush().map_err(broken_pipe)
    }
}

/// The last line of a whole `pg_dumpall` (between `--` lines).
const CLUSTER_TRAILER: &str = "-- PostgreSQL database cluster dump complete";

/// Cluster-level statements of a `pg_dumpall`, which the feeder handles
/// itself (databases, roles) or which no scratch login may run.
fn skip_cluster(l: &[u8]) -> bool {
    const SKIP: [&[u8]; 8] = [
        b"ALTER ROLE ",
        b"CREATE DATABASE ",
        b"ALTER DATABASE ",
        b"DROP DATABASE ",
        b"DROP ROLE ",
        b"CREATE TABLESPACE ",
        b"UPDATE pg_catalog.pg_database ",
        b"SET default_tablespace = '",
    ];
    SKIP.iter().any(|p| l.starts_with(p)) && l.ends_with(b";")
}

/// The database a `\connect` names: `name`, `"quoted name"`, or
/// `-reuse-previous=on "dbname='name'"` as pg_dumpall writes odd names.
fn connect_target(rest: &str) -> String {
    let rest = rest.trim();
    if let Some(conn) = rest.strip_prefix("-reuse-previous=on ") {
        let conn = unquote(conn.trim());
        if let Some(v) = conn.strip_prefix("dbname=") {
            return v.trim_matches('\'').replace("\\'", "'");
        }
        return conn;
    }
    unquote(rest)
}

/// An identifier as written: `"a""b"` is `a"b`, a bare one is itself.
fn unquote(s: &str) -> String {
    match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => s.to_string(),
    }
}

struct PgSession(Client);

impl SqlSession for PgSession {
    fn tables(&mut self) -> Result<Vec<Table>, EngineError> {
        let rows = self
            .0
            .query(
                "SELECT n.nspname::text, c.relname::text FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE (c.relkind = 'p' OR (c.relkind = 'r' AND NOT c.relispartition)) \
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
                 ORDER BY 1, 2",
                &[],
            )
            .map_err(PgError::Server)?;
        Ok(rows
            .iter()
            .map(|row| {
                let (schema, table): (String, String) = (row.get(0), row.get(1));
                let sql = format!("{}.{}", ident(&schema), ident(&table));
                let key = if schema == "public" {
                    table
                } else {
                    format!("{schema}.{table}")
                };
                Table { key, sql }
            })
            .collect())
    }

    fn count_rows(&mut self, table: &Table) -> Result<u64, EngineError> {
        let n: i64 = self
            .0
            .query_one(&format!("SELECT count(*) FROM {}", table.sql), &[])
            .map_err(PgError::Server)?
            .get(0);
        Ok(n.max(0) as u64)
    }

    fn database_bytes(&mut self) -> Result<u64, EngineError> {
        let size: i64 = self
            .0
            .query_one("SELECT pg_database_size(current_database())", &[])
            .map_err(PgError::Server)?
            .get(0);
        Ok(size.max(0) as u64)
    }

    /// Simple query protocol, so that any type reads the same way.
    fn first_value(&mut self, sql: &str) -> Result<Option<String>, EngineError> {
        let msgs = self.0.simple_query(sql).map_err(PgError::Server)?;
        for m in msgs {
            if let SimpleQueryMessage::Row(r) = m {
                return Ok(r.get(0).map(str::to_string));
            }
        }
        Ok(None)
    }

    fn ident(&self, name: &str) -> String {
        ident(name)
    }

    fn is_true(&self, value: &str) -> bool {
        matches!(
            value.to_ascii_lowercase().as_str(),
            "t" | "true" | "1" | "on" | "yes"
        )
    }

    fn newest_sql(&self, table: &str, column: &str) -> String {
        format!("SELECT max({column})::text FROM {table}")
    }

    fn age_sql(&self, table: &str, column: &str) -> String {
        format!(
            "SELECT extract(epoch FROM now() - max({column})::timestamptz)::float8 FROM {table}"
        )
    }
}

/// Streams plain SQL into psql, leaving out what `pg_restore --no-owner
/// --no-privileges` leaves out: ownership and privilege statements, which
/// an unprivileged role cannot run (they name roles that do not exist
/// here). COPY data blocks pass untouched.
fn feed_plain(mut input: impl BufRead, out: ChildStdin, key: &str) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(256 * 1024, out);
    restrict(&mut out, key)?;
    let mut line = Vec::with_capacity(64 * 1024);
    let mut in_copy = false;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if in_copy {
            if line == b"\\.\n" || line == b"\\.\r\n" || line == b"\\." {
                in_copy = false;
            }
        } else if line.starts_with(b"COPY ") && trimmed(&line).ends_with(b"FROM stdin;") {
            in_copy = true;
        } else if skip_plain(&line) || is_restrict_line(&line) {
            continue;
        }
        out.write_all(&line).map_err(broken_pipe)?;
    }
    out.flush().map_err(broken_pipe)
}

/// Puts psql into restricted mode (psql 15.14+) under a random key only
/// the feeder knows: every meta-command of the dump, wherever it stands on
/// a line (`\!` a shell, `\o |cmd`, `\copy` client files, `\g |cmd`), is
/// then refused by psql itself. The dump's own `\restrict` lines are left
/// out: they would replace our key with one the dump knows.
fn restrict(out: &mut impl Write, key: &str) -> io::Result<()> {
    out.write_all(format!("\\restrict {key}\n").as_bytes())
        .map_err(broken_pipe)
}

fn is_restrict_line(line: &[u8]) -> bool {
    let l = trimmed(line);
    l.starts_with(b"\\restrict ") || l.starts_with(b"\\unrestrict ")
}

fn trimmed(line: &[u8]) -> &[u8] {
    let mut l = line;
    while let [rest @ .., b'\n' | b'\r' | b' '] = l {
        l = rest;
    }
    l
}

fn skip_plain(line: &[u8]) -> bool {
    let l = trimmed(line);
    (l.starts_with(b"ALTER ") && l.windows(10).any(|w| w == b" OWNER TO ") && l.ends_with(b";"))
        || l.starts_with(b"GRANT ")
        || l.starts_with(b"REVOKE ")
        || l.starts_with(b"ALTER DEFAULT PRIVILEGES ")
        || l.starts_with(b"SET SESSION AUTHORIZATION ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_filter_drops_ownership_but_not_data() {
        assert!(skip_plain(b"ALTER TABLE public.t OWNER TO postgres;\n"));
        assert!(skip_plain(b"GRANT ALL ON SCHEMA public TO app;\n"));
        assert!(!skip_plain(b"CREATE TABLE t (a int);\n"));
        assert!(!skip_plain(b"COPY (select 1) TO PROGRAM 'x';\n"));
    }
}
