//! PostgreSQL restores: pg_restore for archives (custom, directory, tar),
//! psql for plain SQL, always as a NOSUPERUSER role that owns only its
//! scratch database; sanity queries through the `postgres` driver
//! (tokio-postgres' blocking client).

use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::process::{ChildStdin, Command};
use std::time::{Duration, Instant};

use postgres::config::Host;
use postgres::{Client, Config, NoTls, SimpleQueryMessage};

use super::scratch::{self, DB_PREFIX, Endpoint};
use super::{EngineOps, Facts, Input, RestoreSpec, ScratchDb, ToolRun, run_tools};
use crate::inspect::Format;

pub struct Postgres;

fn admin_config(endpoint: &Endpoint) -> Result<Config, String> {
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
                .map_err(|e| format!("bad scratch_url: {e}"))?;
            if c.get_dbname().is_none() {
                c.dbname("postgres");
            }
            Ok(c)
        }
    }
}

fn connect(c: &Config) -> Result<Client, String> {
    let mut c = c.clone();
    c.connect_timeout(Duration::from_secs(10));
    c.application_name("backproof");
    c.connect(NoTls).map_err(pg_err)
}

/// The server's own words: `postgres::Error` alone says just "db error".
fn pg_err(e: postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

/// The scratch database's own login (same host, its own role).
fn db_config(db: &ScratchDb) -> Result<Config, String> {
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

pub fn ping(endpoint: &Endpoint) -> Result<(), String> {
    let mut c = connect(&admin_config(endpoint)?)?;
    c.simple_query("select 1").map_err(pg_err)?;
    Ok(())
}

/// A client tool (pg_restore, psql) from the server's bindir when there is
/// one (same major version), else from PATH.
fn tool(name: &str) -> Result<std::path::PathBuf, String> {
    scratch::pg_bindir()
        .map(|d| d.join(name))
        .filter(|p| p.is_file())
        .or_else(|| scratch::which(name))
        .ok_or_else(|| format!("{name} not found (install postgresql-client)"))
}

/// libpq environment for the client tools, from the same config the
/// driver uses: the password never appears on a command line.
fn tool_command(program: &std::path::Path, db: &ScratchDb) -> Result<Command, String> {
    let c = db_config(db)?;
    let mut cmd = Command::new(program);
    cmd.env_clear();
    for var in ["PATH", "LANG", "LC_ALL", "TZ"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
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

impl EngineOps for Postgres {
    fn create(&self, endpoint: &Endpoint) -> Result<ScratchDb, String> {
        let mut admin = connect(&admin_config(endpoint)?)?;
        let name = scratch::database_name();
        let password = scratch::random_suffix() + &scratch::random_suffix();
        // NOSUPERUSER: restored SQL is untrusted; COPY ... TO PROGRAM, untrusted
        // languages and server file access all need more than this role has.
        admin
            .batch_execute(&format!(
                "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD {}",
                ident(&name),
                literal(&password)
            ))
            .map_err(pg_err)?;
        // template0: nothing a site added to template1 may clash with the dump.
        if let Err(e) = admin.batch_execute(&format!(
            "CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'",
            ident(&name),
            ident(&name)
        )) {
            let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {}", ident(&name)));
            return Err(e.to_string());
        }
        Ok(ScratchDb {
            user: name.clone(),
            name,
            password,
            endpoint: endpoint.clone(),
        })
    }

    fn drop_db(&self, db: &ScratchDb) -> Result<(), String> {
        let mut admin = connect(&admin_config(&db.endpoint)?)?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                ident(&db.name)
            ))
            .map_err(pg_err)?;
        admin
            .batch_execute(&format!("DROP ROLE IF EXISTS {}", ident(&db.user)))
            .map_err(pg_err)
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
        let dead = |n: &String| {
            scratch::owner_pid(n, DB_PREFIX)
                .is_some_and(|p| p != std::process::id() && !scratch::pid_alive(p))
        };
        for d in names(
            &mut admin,
            &format!("SELECT datname::text FROM pg_database WHERE datname LIKE {pattern}"),
        )
        .into_iter()
        .filter(dead)
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
        .filter(dead)
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
    ) -> Result<ToolRun, String> {
        if format == Format::PgPlain {
            let mut cmd = tool_command(&tool("psql")?, db)?;
            cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"]);
            let reader = match input {
                Input::Stream(r) => r,
                Input::Path(p) => {
                    Box::new(std::fs::File::open(&p).map_err(|e| format!("{}: {e}", p.display()))?)
                }
            };
            return run_tools(
                "psql",
                vec![cmd],
                move |mut stdins, _| {
                    let out = stdins.pop().expect("one tool, one stdin");
                    feed_plain(BufReader::with_capacity(256 * 1024, reader), out)
                },
                deadline,
            );
        }
        let mut cmd = tool_command(&tool("pg_restore")?, db)?;
        cmd.args(["--no-owner", "--no-privileges", "--exit-on-error"]);
        cmd.arg(format!("--dbname={}", db.name));
        cmd.arg(match format {
            Format::PgTar => "--format=tar",
            Format::PgToc => "--format=directory",
            _ => "--format=custom",
        });
        match input {
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
                    super::copy_into(r, out)
                },
                deadline,
            ),
        }
    }

    fn facts(&self, db: &ScratchDb, spec: &RestoreSpec) -> Result<Facts, String> {
        let mut c = connect(&db_config(db)?)?;
        let e = pg_err;
        let mut facts = Facts::default();
        let tables = c
            .query(
                "SELECT n.nspname::text, c.relname::text FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE (c.relkind = 'p' OR (c.relkind = 'r' AND NOT c.relispartition)) \
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
                 ORDER BY 1, 2",
                &[],
            )
            .map_err(e)?;
        for row in tables {
            let (schema, table): (String, String) = (row.get(0), row.get(1));
            let n: i64 = c
                .query_one(
                    &format!("SELECT count(*) FROM {}.{}", ident(&schema), ident(&table)),
                    &[],
                )
                .map_err(e)?
                .get(0);
            let key = if schema == "public" {
                table
            } else {
                format!("{schema}.{table}")
            };
            facts.rows.insert(key, n.max(0) as u64);
        }
        let size: i64 = c
            .query_one("SELECT pg_database_size(current_database())", &[])
            .map_err(e)?
            .get(0);
        facts.database_bytes = size.max(0) as u64;
        for sql in &spec.assertions {
            let r = first_value(&mut c, sql).map(|v| {
                v.is_some_and(|v| {
                    matches!(
                        v.to_ascii_lowercase().as_str(),
                        "t" | "true" | "1" | "on" | "yes"
                    )
                })
            });
            facts.assertions.push((sql.clone(), r));
        }
        if let Some(col) = &spec.freshness_column
            && let Some((table, column)) = col.rsplit_once('.')
        {
            let table_sql = table.split('.').map(ident).collect::<Vec<_>>().join(".");
            let newest = first_value(
                &mut c,
                &format!("SELECT max({})::text FROM {table_sql}", ident(column)),
            )
            .map_err(|e| format!("freshness_column {col}: {e}"));
            let age = first_value(
                &mut c,
                &format!(
                    "SELECT extract(epoch FROM now() - max({})::timestamptz)::float8 FROM {table_sql}",
                    ident(column)
                ),
            )
            .ok()
            .flatten()
            .and_then(|v| v.parse::<f64>().ok());
            facts.freshness = Some(newest.map(|n| (n, age)));
        }
        Ok(facts)
    }
}

/// The first column of the first row, as text (simple query protocol, so
/// that any type reads the same way).
fn first_value(c: &mut Client, sql: &str) -> Result<Option<String>, String> {
    let msgs = c.simple_query(sql).map_err(pg_err)?;
    for m in msgs {
        if let SimpleQueryMessage::Row(r) = m {
            return Ok(r.get(0).map(str::to_string));
        }
    }
    Ok(None)
}

/// Streams plain SQL into psql, leaving out what `pg_restore --no-owner
/// --no-privileges` leaves out: ownership and privilege statements, which
/// an unprivileged role cannot run (they name roles that do not exist
/// here). COPY data blocks pass untouched.
fn feed_plain(mut input: impl BufRead, out: ChildStdin) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(256 * 1024, out);
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
        } else if skip_plain(&line) {
            continue;
        }
        out.write_all(&line).map_err(super::broken_pipe)?;
    }
    out.flush().map_err(super::broken_pipe)
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
