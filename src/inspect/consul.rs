//! Consul's FSM snapshot (`state.bin` of a Consul snapshot archive), as
//! agent/consul/fsm writes it: one msgpack header (`LastIndex`), then per
//! record a message-type byte and one msgpack value, to the end of the
//! stream. Decoded record by record to the end, counting records per type
//! and KV entries per key prefix; a record cut short or not msgpack is
//! damage named by its number and byte offset.

use std::collections::BTreeMap;
use std::io::{self, Read};

use serde_json::{Map, Value, json};

use super::Damage;
use super::msgpack::{self, Counted, Kept};

/// Consul's `structs.MessageType` numbers, as snapshots store them.
const TYPES: &[&str] = &[
    "Register",
    "Deregister",
    "KVS",
    "Session",
    "ACL",
    "Tombstone",
    "CoordinateBatchUpdate",
    "PreparedQuery",
    "Txn",
    "Autopilot",
    "Area",
    "ACLBootstrap",
    "Intention",
    "ConnectCA",
    "ConnectCAProviderState",
    "ConnectCAConfig",
    "Index",
    "ACLTokenSet",
    "ACLTokenDelete",
    "ACLPolicySet",
    "ACLPolicyDelete",
    "ConnectCALeaf",
    "ConfigEntry",
    "ACLRoleSet",
    "ACLRoleDelete",
    "ACLBindingRuleSet",
    "ACLBindingRuleDelete",
    "ACLAuthMethodSet",
    "ACLAuthMethodDelete",
    "ChunkingState",
    "FederationState",
    "SystemMetadata",
];
const KVS: u8 = 2;
/// Distinct KV prefixes counted; the rest are counted together.
const MAX_PREFIXES: usize = 1000;

fn type_name(t: u8) -> String {
    TYPES
        .get(t as usize)
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("type {t}"))
}

/// What the decoded state holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsulState {
    /// The header's raft index.
    pub last_index: Option<u64>,
    pub records: u64,
    /// Records per message type name.
    pub by_type: BTreeMap<String, u64>,
    /// KV entries per first path segment (`app/`), `(no prefix)` for keys
    /// without a slash.
    pub kv_prefixes: BTreeMap<String, u64>,
}

impl ConsulState {
    pub fn kv_entries(&self) -> u64 {
        self.kv_prefixes.values().sum()
    }

    pub fn evidence(&self) -> Map<String, Value> {
        let mut ev = Map::new();
        ev.insert("state_last_index".into(), json!(self.last_index));
        ev.insert("state_records".into(), json!(self.records));
        ev.insert("records_by_type".into(), json!(self.by_type));
        ev.insert("kv_entries".into(), json!(self.kv_entries()));
        ev.insert("kv_prefixes".into(), json!(self.kv_prefixes));
        ev
    }
}

/// Whether a `state.bin` starts like Consul's: a msgpack map header.
pub fn looks_like(first: &[u8]) -> bool {
    matches!(first.first(), Some(0x81..=0x8f | 0xde | 0xdf))
}

fn prefix(key: &str) -> String {
    match key.find('/') {
        Some(i) => key[..=i].to_string(),
        None => "(no prefix)".to_string(),
    }
}

/// Decodes the whole stream. The error names the record and byte offset.
pub fn decode(r: &mut dyn Read) -> Result<ConsulState, Damage> {
    let mut r = Counted {
        inner: r,
        offset: 0,
    };
    let mut state = ConsulState::default();
    match msgpack::map_fields(&mut r, &["LastIndex"]) {
        Ok(Some(fields)) => {
            state.last_index = fields.iter().find_map(|(_, v)| match v {
                Kept::Int(n) => Some(*n),
                Kept::Str(_) => None,
            });
        }
        Ok(None) => return Err(Damage("the header is not a msgpack map".into())),
        Err(e) => return Err(Damage(format!("header: {}", e.0))),
    }
    if state.last_index.is_none() {
        return Err(Damage("the header has no LastIndex".into()));
    }
    loop {
        let at = r.offset;
        let mut t = [0u8; 1];
        match r.read(&mut t) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Damage(format!(
                    "record {} at byte {at}: {e}",
                    state.records + 1
                )));
            }
        }
        let n = state.records + 1;
        let fail = |e: msgpack::Bad| {
            Damage(format!(
                "record {n} ({}) at byte {at}: {}",
                type_name(t[0]),
                e.0
            ))
        };
        if t[0] == KVS {
            let fields = msgpack::map_fields(&mut r, &["Key"]).map_err(fail)?;
            let key = fields.and_then(|f| {
                f.into_iter().find_map(|(_, v)| match v {
                    Kept::Str(s) => Some(s),
                    Kept::Int(_) => None,
                })
            });
            let Some(key) = key else {
                return Err(Damage(format!("record {n} (KVS) at byte {at}: no Key")));
            };
            let p = prefix(&key);
            let slot =
                if state.kv_prefixes.len() < MAX_PREFIXES || state.kv_prefixes.contains_key(&p) {
                    p
                } else {
                    "(other prefixes)".to_string()
                };
            *state.kv_prefixes.entry(slot).or_default() += 1;
        } else {
            msgpack::skip(&mut r, 1).map_err(fail)?;
        }
        state.records = n;
        *state.by_type.entry(type_name(t[0])).or_default() += 1;
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str) -> Vec<u8> {
        let mut b = vec![2u8, 0x83, 0xa3];
        b.extend(b"Key");
        b.push(0xa0 | key.len() as u8);
        b.extend(key.as_bytes());
        b.extend(b"\xa5Value\xc4\x02hi\xa5Flags\x00");
        b
    }

    fn stream() -> Vec<u8> {
        let mut b = b"\x81\xa9LastIndex\xcd\x01\x00".to_vec();
        b.extend(kv("app/a"));
        b.extend(kv("app/b"));
        b.extend(kv("top"));
        // A session: {"ID": "s1", "Node": "n1"}
        b.extend(b"\x03\x82\xa2ID\xa2s1\xa4Node\xa2n1");
        b
    }

    #[test]
    fn records_and_prefixes_are_counted_to_the_end() {
        let s = decode(&mut &stream()[..]).unwrap();
        assert_eq!(s.last_index, Some(256));
        assert_eq!(s.records, 4);
        assert_eq!(s.by_type["KVS"], 3);
        assert_eq!(s.by_type["Session"], 1);
        assert_eq!(s.kv_prefixes["app/"], 2);
        assert_eq!(s.kv_prefixes["(no prefix)"], 1);
        assert_eq!(s.kv_entries(), 3);
    }

    #[test]
    fn a_cut_record_is_named() {
        let b = stream();
        let e = decode(&mut &b[..b.len() - 3]).unwrap_err().0;
        assert!(e.starts_with("record 4 (Session) at byte"), "{e}");
        assert!(e.contains("truncated"), "{e}");
        let e = decode(&mut &b"\x81\xa3Foo\x01"[..]).unwrap_err().0;
        assert!(e.contains("LastIndex"), "{e}");
    }
}
