//! SQL text dumps: pg_dump plain format and mysqldump / mariadb-dump. Both
//! write a closing comment only after the last statement succeeded, so its
//! absence means the dump was cut short (disk full, killed, truncated copy).

use std::io::BufRead;

use serde_json::{Map, Value, json};

use super::Damage;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Mysql,
}

/// How much of the end of the stream is kept to look for the trailer.
const TAIL: usize = 4096;

pub fn check_trailer(r: &mut dyn BufRead, dialect: Dialect) -> Result<Map<String, Value>, Damage> {
    let mut tail: Vec<u8> = Vec::with_capacity(2 * TAIL);
    let mut first_line = Vec::new();
    let mut total = 0u64;
    loop {
        let buf = r
            .fill_buf()
            .map_err(|e| Damage::io(e, "reading the dump"))?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        if total < 8192 && first_line.len() < 8192 {
            first_line.extend_from_slice(&buf[..n.min(8192 - first_line.len())]);
        }
        // Keep only the last TAIL bytes without copying the whole stream.
        if n >= TAIL {
            tail.clear();
            tail.extend_from_slice(&buf[n - TAIL..]);
        } else {
            tail.extend_from_slice(buf);
            if tail.len() > TAIL {
                tail.drain(..tail.len() - TAIL);
            }
        }
        total += n as u64;
        r.consume(n);
    }
    let tail_text = String::from_utf8_lossy(&tail);
    let head_text = String::from_utf8_lossy(&first_line);
    let mut ev = Map::new();
    ev.insert("sql_bytes".into(), json!(total));
    match dialect {
        Dialect::Postgres => {
            let marker = if head_text.contains("-- PostgreSQL database cluster dump") {
                "-- PostgreSQL database cluster dump complete"
            } else {
                "-- PostgreSQL database dump complete"
            };
            if !tail_text.contains(marker) {
                return Err(Damage(format!(
                    "no \"{marker}\" trailer at the end of {total} bytes: the dump is incomplete"
                )));
            }
            // Since PostgreSQL 17.6/16.10/15.14 a dump opens with `\restrict
            // KEY` and must close with the matching `\unrestrict KEY`.
            if let Some(key) = restrict_key(&head_text, "\\restrict ")
                && restrict_key(&tail_text, "\\unrestrict ").as_deref() != Some(key.as_str())
            {
                return Err(Damage(format!(
                    "opens with \\restrict {key} but does not end with the matching \\unrestrict"
                )));
            }
            ev.insert("trailer".into(), json!(marker));
        }
        Dialect::Mysql => {
            let Some(line) = tail_text.lines().rev().find(|l| !l.trim().is_empty()) else {
                return Err(Damage("dump is blank".into()));
            };
            if !line.starts_with("-- Dump completed") {
                return Err(Damage(format!(
                    "last line is {:?}, not the \"-- Dump completed\" trailer: the dump is incomplete",
                    line.chars().take(80).collect::<String>()
                )));
            }
            ev.insert("trailer".into(), json!(line.trim()));
        }
    }
    Ok(ev)
}

fn restrict_key(text: &str, prefix: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(|k| k.trim().to_string())
}
