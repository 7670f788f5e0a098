//! OpenBao's and Vault's FSM snapshot (`state.bin` of their raft snapshot
//! archives): a stream of length-delimited protobuf `StorageEntry`
//! messages (a varint length, then field 1 the key, field 2 the value),
//! one per storage key, to the end. Keys are plain paths (`core/mounts`,
//! `logical/<uuid>/…`); values are sealed by the barrier and are not
//! decoded. Every message is framed and parsed to its end, and entries are
//! counted per first path segment.

use std::collections::BTreeMap;
use std::io::{self, Read};

use serde_json::{Map, Value, json};

use super::Damage;

/// Keys are kept (for their prefix) up to this many bytes.
const MAX_KEY: u64 = 1024;
/// Distinct prefixes counted; the rest are counted together.
const MAX_PREFIXES: usize = 1000;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VaultState {
    pub entries: u64,
    /// Entries per first path segment (`core/`, `logical/`, `sys/`).
    pub prefixes: BTreeMap<String, u64>,
}

impl VaultState {
    pub fn evidence(&self) -> Map<String, Value> {
        let mut ev = Map::new();
        ev.insert("state_entries".into(), json!(self.entries));
        ev.insert("entries_by_prefix".into(), json!(self.prefixes));
        ev.insert(
            "values".into(),
            json!("sealed by the barrier: framing and keys checked, values not decoded"),
        );
        ev
    }
}

/// Whether a `state.bin` starts like a delimited `StorageEntry`: a varint
/// length, then field 1 (the key) as a length-delimited field.
pub fn looks_like(first: &[u8]) -> bool {
    let Some(n) = first.iter().take(5).position(|b| b & 0x80 == 0) else {
        return false;
    };
    first.get(n + 1) == Some(&0x0a)
}

fn varint(r: &mut dyn Read, what: &str) -> Result<Option<u64>, Damage> {
    let mut v = 0u64;
    for i in 0..10 {
        let mut b = [0u8; 1];
        match r.read_exact(&mut b) {
            Ok(()) => {}
            Err(e) if i == 0 && e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(Damage(format!("ends inside {what}: truncated")));
            }
            Err(e) => return Err(Damage(format!("{what}: {e}"))),
        }
        v |= u64::from(b[0] & 0x7f) << (7 * i);
        if b[0] & 0x80 == 0 {
            return Ok(Some(v));
        }
    }
    Err(Damage(format!("{what}: a varint longer than 10 bytes")))
}

fn skip(r: &mut dyn Read, n: u64, what: &str) -> Result<(), Damage> {
    let got =
        io::copy(&mut r.take(n), &mut io::sink()).map_err(|e| Damage(format!("{what}: {e}")))?;
    if got < n {
        return Err(Damage(format!(
            "ends {got} bytes into {what} of {n} bytes: truncated"
        )));
    }
    Ok(())
}

fn prefix(key: &str) -> String {
    match key.find('/') {
        Some(i) => key[..=i].to_string(),
        None => "(no prefix)".to_string(),
    }
}

/// Decodes the whole stream. The error names the entry and byte offset.
pub fn decode(r: &mut dyn Read) -> Result<VaultState, Damage> {
    let mut state = VaultState::default();
    let mut at = 0u64;
    loop {
        let n = state.entries + 1;
        let mut len_bytes = Counting {
            inner: &mut *r,
            count: 0,
        };
        let Some(len) = varint(&mut len_bytes, "an entry's length")
            .map_err(|e| Damage(format!("entry {n} at byte {at}: {e}")))?
        else {
            break;
        };
        let start = at;
        at += len_bytes.count;
        let mut limited = (&mut *r).take(len);
        let mut msg = Counting {
            inner: &mut limited,
            count: 0,
        };
        let key =
            entry(&mut msg, len).map_err(|e| Damage(format!("entry {n} at byte {start}: {e}")))?;
        at += len;
        let p = prefix(&key);
        let slot = if state.prefixes.len() < MAX_PREFIXES || state.prefixes.contains_key(&p) {
            p
        } else {
            "(other prefixes)".to_string()
        };
        *state.prefixes.entry(slot).or_default() += 1;
        state.entries = n;
    }
    Ok(state)
}

struct Counting<'a> {
    inner: &'a mut dyn Read,
    count: u64,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// One message of `len` bytes: its key; every field framed to the end.
fn entry(m: &mut Counting<'_>, len: u64) -> Result<String, Damage> {
    let mut key = None;
    while m.count < len {
        let Some(tag) = varint(m, "a field tag")? else {
            break;
        };
        let (field, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => {
                varint(m, "a varint field")?
                    .ok_or_else(|| Damage("ends inside a varint field: truncated".into()))?;
            }
            1 => skip(m, 8, "a fixed64 field")?,
            5 => skip(m, 4, "a fixed32 field")?,
            2 => {
                let n = varint(m, "a field length")?
                    .ok_or_else(|| Damage("ends inside a field length: truncated".into()))?;
                if n > len - m.count {
                    return Err(Damage(format!(
                        "field {field} claims {n} bytes, more than the entry's {len}"
                    )));
                }
                if field == 1 {
                    let keep = n.min(MAX_KEY);
                    let mut buf = Vec::new();
                    (&mut *m)
                        .take(keep)
                        .read_to_end(&mut buf)
                        .map_err(|e| Damage(format!("the key: {e}")))?;
                    if (buf.len() as u64) < keep {
                        return Err(Damage("ends inside the key: truncated".into()));
                    }
                    skip(m, n - keep, "the key")?;
                    key = Some(String::from_utf8_lossy(&buf).into_owned());
                } else {
                    skip(m, n, "a field")?;
                }
            }
            w => {
                return Err(Damage(format!(
                    "field {field} has wire type {w}, which StorageEntry never uses"
                )));
            }
        }
    }
    if m.count < len {
        return Err(Damage(format!(
            "ends {} bytes into an entry of {len}: truncated",
            m.count
        )));
    }
    key.ok_or_else(|| Damage("an entry without a key".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(key: &str, value: &[u8]) -> Vec<u8> {
        let mut body = vec![0x0a, key.len() as u8];
        body.extend(key.as_bytes());
        body.push(0x12);
        body.push(value.len() as u8);
        body.extend(value);
        let mut b = vec![body.len() as u8];
        b.extend(body);
        b
    }

    #[test]
    fn entries_are_framed_and_counted() {
        let mut b = msg("core/audit", b"\x00\x01sealed");
        b.extend(msg("core/mounts", b"x"));
        b.extend(msg("logical/abc/data", b"y"));
        assert!(looks_like(&b));
        let s = decode(&mut &b[..]).unwrap();
        assert_eq!(s.entries, 3);
        assert_eq!(s.prefixes["core/"], 2);
        assert_eq!(s.prefixes["logical/"], 1);
    }

    #[test]
    fn cut_or_overlong_entries_are_named() {
        let mut b = msg("core/audit", b"v");
        b.extend(msg("core/mounts", b"x"));
        let e = decode(&mut &b[..b.len() - 2]).unwrap_err().0;
        assert!(e.starts_with("entry 2 at byte 16"), "{e}");
        // A field that claims more than its entry holds.
        let bad = [0x04, 0x0a, 0x7f, b'a', b'b'];
        let e = decode(&mut &bad[..]).unwrap_err().0;
        assert!(e.contains("claims 127 bytes"), "{e}");
    }
}
