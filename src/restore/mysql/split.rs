//! Splitting a mysqldump / mariadb-dump stream over parallel client
//! connections at table boundaries: text only, no driver (the one question
//! for the server goes through [`TableProbe`]).

use std::io::{self, BufRead, Write};
use std::process::ChildStdin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::Duration;

use regex::bytes::Regex;

/// Bytes batched per channel message, and messages queued per connection:
/// memory stays bounded whatever the dump size.
const CHUNK: usize = 256 * 1024;
const QUEUE: usize = 8;
/// A header longer than this is no header: the dump has no table markers
/// (e.g. --compact without DROP TABLE), so it is replayed serially.
const MAX_HEADER: usize = 4 * 1024 * 1024;

/// Whether a table exists yet on the server, so that INSERTs on another
/// connection never run before the CREATE TABLE they need.
pub trait TableProbe {
    /// Waits until `table` exists; false if it does not come (its
    /// connection, which exits then, failed) or the server cannot be asked.
    fn wait_for(&mut self, table: &str, lane_exited: &AtomicBool) -> bool;
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
pub fn split_feed(
    mut input: impl BufRead,
    stdins: Vec<ChildStdin>,
    exited: &[AtomicBool],
    mut probe: impl TableProbe,
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
    probe: &mut impl TableProbe,
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
