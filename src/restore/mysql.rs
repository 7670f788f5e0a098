//! MariaDB/MySQL restores: mysqldump / mariadb-dump SQL streamed into the
//! `mariadb` client (or `mysql`), split at table boundaries and replayed
//! over two connections at once, as a user whose privileges end at its
//! scratch database (no FILE, no SUPER). Sanity queries through the `mysql`
//! driver.

use std::io::{self, BufRead, BufReader, Write};
use std::process::{ChildStdin, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder, Value};
use regex::bytes::Regex;

use super::scratch::{self, DB_PREFIX, Endpoint};
use super::{EngineOps, Facts, Input, RestoreSpec, ScratchDb, ToolRun, run_tools};
use crate::inspect::Format;

pub struct MariaDb;

/// Parallel client connections. Measured on a 215 MB dump: one client
/// 21.8 s, two 10.6 s; more would only fight over two cores.
const CONNECTIONS: usize = 2;
/// Bytes batched per channel message, and messages queued per connection:
/// memory stays bounded whatever the dump size.
const CHUNK: usize = 256 * 1024;
const QUEUE: usize = 8;
/// A header longer than this is no header: the dump has no table markers
/// (e.g. --compact without DROP TABLE), so it is replayed serially.
const MAX_HEADER: usize = 4 * 1024 * 1024;

fn admin_opts(endpoint: &Endpoint) -> Result<Opts, String> {
    match endpoint {
        Endpoint::Socket { path, admin, .. } => Ok(OptsBuilder::new()
            .socket(Some(path.to_string_lossy()))
            .user(Some(admin))
            .tcp_connect_timeout(Some(Duration::from_secs(10)))
            .into()),
        Endpoint::Url(url) => Opts::from_url(&url.replacen("mariadb://", "mysql://", 1))
            .map_err(|e| format!("bad scratch_url: {e}")),
    }
}

fn db_opts(db: &ScratchDb) -> Result<Opts, String> {
    let o = admin_opts(&db.endpoint)?;
    Ok(OptsBuilder::from_opts(o)
        .user(Some(&db.user))
        .pass(Some(&db.password))
        .db_name(Some(&db.name))
        .into())
}

fn connect(o: Opts) -> Result<Conn, String> {
    Conn::new(o).map_err(|e| e.to_string())
}

fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

pub fn ping(endpoint: &Endpoint) -> Result<(), String> {
    let mut c = connect(admin_opts(endpoint)?)?;
    c.query_drop("SELECT 1").map_err(|e| e.to_string())
}

/// The hosts a scratch user is created for: the socket's `localhost` and
/// any host for TCP.
const USER_HOSTS: [&str; 2] = ["localhost", "%"];

impl EngineOps for MariaDb {
    fn create(&self, endpoint: &Endpoint) -> Result<ScratchDb, String> {
        let mut admin = connect(admin_opts(endpoint)?)?;
        let name = scratch::database_name();
        let password = scratch::random_suffix() + &scratch::random_suffix();
        let db = ScratchDb {
            user: name.clone(),
            name: name.clone(),
            password: password.clone(),
            endpoint: endpoint.clone(),
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
                return Err(e.to_string());
            }
        }
        Ok(db)
    }

    fn drop_db(&self, db: &ScratchDb) -> Result<(), String> {
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
        admin
            .query_drop(format!("DROP DATABASE IF EXISTS {}", ident(&db.name)))
            .map_err(|e| e.to_string())?;
        for h in USER_HOSTS {
            admin
                .query_drop(format!(
                    "DROP USER IF EXISTS {}@{}",
                    literal(&db.user),
                    literal(h)
                ))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn sweep(&self, endpoint: &Endpoint) -> Vec<String> {
        let mut swept = Vec::new();
        let Ok(mut admin) = admin_opts(endpoint).and_then(connect) else {
            return swept;
        };
        let dead = |n: &String| {
            scratch::owner_pid(n, DB_PREFIX)
                .is_some_and(|p| p != std::process::id() && !scratch::pid_alive(p))
        };
        let dbs: Vec<String> = admin
            .query("SHOW DATABASES LIKE 'backproof\\_scratch\\_%'")
            .unwrap_or_default();
        for d in dbs.into_iter().filter(dead) {
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
        for (u, h) in users.into_iter().filter(|(u, _)| dead(u)) {
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
    ) -> Result<ToolRun, String> {
        let client = scratch::which_any(&["mariadb", "mysql"])
            .map_err(|e| format!("{e} (install mariadb-client)"))?;
        let opts = db_opts(db)?;
        let mut cmds = Vec::new();
        for _ in 0..CONNECTIONS {
            let mut c = Command::new(&client);
            c.env_clear();
            for var in ["PATH", "LANG", "LC_ALL", "TZ"] {
                if let Some(v) = std::env::var_os(var) {
                    c.env(var, v);
                }
            }
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
        let reader = match input {
            Input::Stream(r) => r,
            Input::Path(p) => {
                Box::new(std::fs::File::open(&p).map_err(|e| format!("{}: {e}", p.display()))?)
            }
        };
        run_tools(
            &tool,
            cmds,
            move |stdins, exited| {
                split_feed(
                    BufReader::with_capacity(256 * 1024, reader),
                    stdins,
                    exited,
                    opts,
                )
            },
            deadline,
        )
    }

    fn facts(&self, db: &ScratchDb, spec: &RestoreSpec) -> Result<Facts, String> {
        let mut c = connect(db_opts(db)?)?;
        let e = |e: mysql::Error| e.to_string();
        let mut facts = Facts::default();
        let tables: Vec<String> = c
            .query(
                "SELECT table_name FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1",
            )
            .map_err(e)?;
        for t in tables {
            let n: Option<u64> = c
                .query_first(format!("SELECT COUNT(*) FROM {}", ident(&t)))
                .map_err(e)?;
            facts.rows.insert(t, n.unwrap_or(0));
        }
        let size: Option<u64> = c
            .query_first(
                "SELECT CAST(COALESCE(SUM(data_length + index_length), 0) AS UNSIGNED) \
                 FROM information_schema.tables WHERE table_schema = DATABASE()",
            )
            .map_err(e)?;
        facts.database_bytes = size.unwrap_or(0);
        for sql in &spec.assertions {
            let r = first_value(&mut c, sql).map(|v| {
                v.is_some_and(|v| {
                    matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "t" | "yes")
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
                &format!(
                    "SELECT CAST(MAX({}) AS CHAR) FROM {table_sql}",
                    ident(column)
                ),
            )
            .map_err(|e| format!("freshness_column {col}: {e}"));
            let age = first_value(
                &mut c,
                &format!(
                    "SELECT TIMESTAMPDIFF(SECOND, MAX({}), NOW()) FROM {table_sql}",
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

fn first_value(c: &mut Conn, sql: &str) -> Result<Option<String>, String> {
    let row: Option<mysql::Row> = c.query_first(sql).map_err(|e| e.to_string())?;
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

/// Where a dump line sends what follows it.
#[derive(PartialEq, Eq, Debug)]
enum Marker {
    /// A table (or a view's placeholder table): independent of the others,
    /// may go to any connection.
    Table,
    /// Views, routines, events, other databases: need every table first,
    /// and run on one connection, in order.
    Serial,
    None,
}

fn marker(line: &[u8]) -> Marker {
    const TABLE: [&[u8]; 2] = [
        b"-- Table structure for table ",
        b"-- Temporary table structure for view ",
    ];
    const SERIAL: [&[u8]; 7] = [
        b"-- Final view structure for view ",
        b"-- Dumping routines for database ",
        b"-- Dumping events for database ",
        b"-- Current Database: ",
        b"USE ",
        b"CREATE DATABASE ",
        b"DELIMITER ",
    ];
    if TABLE.iter().any(|m| line.starts_with(m)) {
        Marker::Table
    } else if SERIAL.iter().any(|m| line.starts_with(m)) {
        Marker::Serial
    } else {
        Marker::None
    }
}

/// `DEFINER=user@host` clauses name accounts the scratch database lacks and
/// would need SUPER to set; without them the restoring user is the definer.
fn definer_regex() -> Regex {
    Regex::new(r"DEFINER\s*=\s*(`(?:[^`]|``)*`|'(?:[^']|'')*'|[^\s@]+)@(`(?:[^`]|``)*`|'(?:[^']|'')*'|[^\s*]+)\s*")
        .expect("static regex")
}

/// One connection's queue: chunks go to a writer thread that owns the
/// client's stdin, so a busy client never stalls the others.
struct Lane {
    tx: Option<SyncSender<Vec<u8>>>,
    buf: Vec<u8>,
    assigned: u64,
}

impl Lane {
    fn push(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(bytes);
        self.assigned += bytes.len() as u64;
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK + 64 * 1024));
        match &self.tx {
            Some(tx) => tx
                .send(chunk)
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "restore client exited")),
            None => Ok(()),
        }
    }
}

/// Splits a dump at table boundaries over the clients: the header (the
/// session SET statements) goes to every connection, each table section to
/// the connection with the least work so far, and everything from the first
/// view/routine/database switch on goes, after the other connections have
/// finished, to the first connection in order.
fn split_feed(
    mut input: impl BufRead,
    stdins: Vec<ChildStdin>,
    exited: &[AtomicBool],
    probe: Opts,
) -> io::Result<()> {
    std::thread::scope(|s| {
        let mut lanes = Vec::new();
        let mut writers = Vec::new();
        for mut stdin in stdins {
            let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
            writers.push(s.spawn(move || -> io::Result<()> {
                for chunk in rx {
                    stdin.write_all(&chunk)?;
                }
                Ok(())
            }));
            lanes.push(Lane {
                tx: Some(tx),
                buf: Vec::with_capacity(CHUNK + 64 * 1024),
                assigned: 0,
            });
        }
        let mut probe = TableProbe {
            opts: probe,
            conn: None,
        };
        let result = split_lines(&mut input, &mut lanes, exited, &mut probe);
        for l in &mut lanes {
            let _ = l.flush();
            l.tx = None;
        }
        for w in writers {
            // A writer's error is a client that stopped reading: the
            // client's own exit status tells why.
            let _ = w.join();
        }
        result
    })
}

/// Once a table's section carries this much data, its remaining INSERT
/// statements are spread over every connection: a dump of one big table
/// loads in parallel too. Small tables stay on one connection (no wait).
const SPREAD_AFTER: u64 = 4 * 1024 * 1024;

/// Asks the server whether a table exists yet (the scratch user's own
/// driver connection), so that INSERTs on another connection never run
/// before the CREATE TABLE they need.
struct TableProbe {
    opts: Opts,
    conn: Option<Conn>,
}

impl TableProbe {
    /// Waits until `table` exists; false if it does not come (its
    /// connection failed) or the probe cannot connect.
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
        let until = std::time::Instant::now() + Duration::from_secs(600);
        while std::time::Instant::now() < until && !lane_exited.load(Ordering::SeqCst) {
            match conn.query_first::<u64, _>(&sql) {
                Ok(Some(n)) if n > 0 => return true,
                Ok(_) => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => return false,
            }
        }
        false
    }
}

fn trimmed(line: &[u8]) -> &[u8] {
    let mut l = line;
    while let [rest @ .., b'\n' | b'\r' | b' '] = l {
        l = rest;
    }
    l
}

/// The name in `CREATE TABLE [IF NOT EXISTS] `name``.
fn created_table(line: &[u8]) -> Option<String> {
    let start = line.iter().position(|&b| b == b'`')? + 1;
    let len = line[start..].iter().position(|&b| b == b'`')?;
    Some(String::from_utf8_lossy(&line[start..start + len]).into_owned())
}

/// A statement ends with the line that ends in `;` (mariadb-dump escapes
/// newlines inside strings, so a line never ends inside a literal).
fn ends_statement(line: &[u8]) -> bool {
    trimmed(line).ends_with(b";")
}

fn least_loaded(lanes: &[Lane]) -> usize {
    (0..lanes.len())
        .min_by_key(|&i| lanes[i].assigned)
        .unwrap_or(0)
}

fn split_lines(
    input: &mut impl BufRead,
    lanes: &mut [Lane],
    exited: &[AtomicBool],
    probe: &mut TableProbe,
) -> io::Result<()> {
    let definer = definer_regex();
    let mut header: Vec<u8> = Vec::new();
    let mut line = Vec::with_capacity(64 * 1024);
    // None while still in the header; then the lane of the current section.
    let mut current: Option<usize> = None;
    let mut serial = false;
    let mut section_has_create = false;
    // The current section's table, its bytes so far, and whether its
    // INSERTs are being spread; the lane of a multi-line INSERT under way.
    let mut table: Option<String> = None;
    let mut section_bytes = 0u64;
    let mut spread = false;
    let mut statement_lane: Option<usize> = None;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if let Some(l) = statement_lane {
            lanes[l].push(&line)?;
            if ends_statement(&line) {
                statement_lane = None;
            }
            continue;
        }
        // LOCK TABLES serialises nothing useful for InnoDB and breaks
        // parallel loads: a table locked on one connection cannot see a
        // foreign-key child created meanwhile on another ("Table ... was
        // not locked with LOCK TABLES"). `mysqldump --skip-add-locks` output.
        if line.starts_with(b"LOCK TABLES ") || line.starts_with(b"UNLOCK TABLES;") {
            continue;
        }
        if !line.starts_with(b"INSERT ") && line.windows(8).any(|w| w == b"DEFINER=") {
            line = definer.replace_all(&line, &b""[..]).into_owned();
        }
        if !serial {
            let m = marker(&line);
            let drop_table = line.starts_with(b"DROP TABLE IF EXISTS ");
            let new_table =
                m == Marker::Table || (drop_table && (current.is_none() || section_has_create));
            if m == Marker::Serial || (current.is_none() && header.len() > MAX_HEADER) {
                serial = true;
                start_serial(&mut header, &mut current, lanes, exited)?;
            } else if new_table {
                if current.is_none() {
                    for l in lanes.iter_mut() {
                        l.push(&header)?;
                    }
                    header = Vec::new();
                }
                let next = least_loaded(lanes);
                if let Some(c) = current
                    && c != next
                {
                    lanes[c].flush()?;
                }
                current = Some(next);
                section_has_create = false;
                table = None;
                section_bytes = 0;
                spread = false;
            }
            if line.starts_with(b"CREATE TABLE") {
                section_has_create = true;
                table = created_table(&line);
            }
            if let Some(c) = current
                && line.starts_with(b"INSERT ")
            {
                if !spread
                    && section_bytes > SPREAD_AFTER
                    && let Some(t) = &table
                {
                    lanes[c].flush()?;
                    spread = probe.wait_for(t, &exited[c]);
                    if !spread {
                        // Never ask again for this section.
                        table = None;
                    }
                }
                if spread {
                    let l = least_loaded(lanes);
                    lanes[l].push(&line)?;
                    if !ends_statement(&line) {
                        statement_lane = Some(l);
                    }
                    continue;
                }
            }
        }
        match current {
            Some(c) => {
                section_bytes += line.len() as u64;
                lanes[c].push(&line)?
            }
            None => header.extend_from_slice(&line),
        }
    }
    if current.is_none() {
        // No tables at all: the whole (small) dump is the header.
        lanes[0].push(&header)?;
    }
    Ok(())
}

/// From here on, one connection in order: the other connections finish
/// their tables first (views and routines need them).
fn start_serial(
    header: &mut Vec<u8>,
    current: &mut Option<usize>,
    lanes: &mut [Lane],
    exited: &[AtomicBool],
) -> io::Result<()> {
    if current.is_none() {
        lanes[0].push(header)?;
        header.clear();
    }
    for l in lanes.iter_mut().skip(1) {
        l.flush()?;
        l.tx = None;
    }
    lanes[0].flush()?;
    // Wait until the other clients exited (done, or failed: then the
    // restore is being torn down and lane 0 will refuse soon enough).
    while !exited.iter().skip(1).all(|e| e.load(Ordering::SeqCst)) {
        if exited[0].load(Ordering::SeqCst) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    *current = Some(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definer_clauses_are_removed() {
        let re = definer_regex();
        let line = b"/*!50013 DEFINER=`root`@`localhost` SQL SECURITY DEFINER */";
        assert_eq!(
            re.replace_all(line, &b""[..]).as_ref(),
            b"/*!50013 SQL SECURITY DEFINER */"
        );
        let line = b"CREATE DEFINER=`root`@`localhost` PROCEDURE `p`()";
        assert_eq!(
            re.replace_all(line, &b""[..]).as_ref(),
            b"CREATE PROCEDURE `p`()"
        );
    }

    #[test]
    fn markers() {
        assert_eq!(marker(b"-- Table structure for table `t`\n"), Marker::Table);
        assert_eq!(
            marker(b"-- Dumping routines for database 'x'\n"),
            Marker::Serial
        );
        assert_eq!(marker(b"INSERT INTO `t` VALUES (1);\n"), Marker::None);
    }
}
