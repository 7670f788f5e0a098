//! HashiCorp raft snapshot archives, as `consul snapshot save`, `vault
//! operator raft snapshot save` and `bao operator raft snapshot save` write
//! them: a (gzip'd) tar of exactly `meta.json` (the raft SnapshotMeta:
//! index, term, size, configuration), `state.bin` (the FSM's own stream),
//! `SHA256SUMS` over those two, and for Vault/OpenBao `SHA256SUMS.sealed`
//! (the same sums sealed by the barrier; it needs the unseal keys, so it
//! is not checked here).
//!
//! Streamed once: each member is hashed as it passes, `state.bin` is fed
//! to its FSM's decoder ([`super::consul`], [`super::vault`]) on the way,
//! and at the end the sums, the members and the meta's size are judged.
//! Every problem names its member.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::consul::{self, ConsulState};
use super::vault::{self, VaultState};
use super::{Damage, Format};

const META: &str = "meta.json";
const STATE: &str = "state.bin";
const SUMS: &str = "SHA256SUMS";
const SEALED: &str = "SHA256SUMS.sealed";
/// meta.json and SHA256SUMS are a few hundred bytes; refuse more.
const MAX_SMALL_MEMBER: u64 = 1 << 20;
/// Problems named in one finding; the rest are counted.
const MAX_PROBLEMS: usize = 10;

/// The raft `SnapshotMeta` in `meta.json`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct RaftMeta {
    #[serde(default)]
    pub version: u64,
    #[serde(rename = "ID", default)]
    pub id: String,
    pub index: u64,
    pub term: u64,
    pub size: u64,
    #[serde(default)]
    pub configuration_index: u64,
    #[serde(default)]
    pub configuration: Option<Configuration>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Configuration {
    #[serde(default)]
    pub servers: Option<Vec<Server>>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Server {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(rename = "Address", default)]
    pub address: String,
    #[serde(rename = "Suffrage", default)]
    pub suffrage: u8,
}

/// What `state.bin` was decoded as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fsm {
    Consul(ConsulState),
    Vault(VaultState),
    /// An FSM this module does not know: sums and size only.
    Other,
}

/// The typed facts of a verified archive, for later stages (a restore
/// compares what it loaded against these).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftFacts {
    pub meta: RaftMeta,
    pub state_bytes: u64,
    /// `SHA256SUMS.sealed` present (Vault/OpenBao).
    pub sealed_sums: bool,
    pub fsm: Fsm,
}

impl RaftFacts {
    pub fn format(&self) -> Format {
        match self.fsm {
            Fsm::Consul(_) => Format::ConsulSnapshot,
            Fsm::Vault(_) => Format::VaultSnapshot,
            Fsm::Other => Format::RaftSnapshot,
        }
    }

    pub fn evidence(&self) -> Map<String, Value> {
        let mut ev = Map::new();
        let m = &self.meta;
        ev.insert("raft_index".into(), json!(m.index));
        ev.insert("raft_term".into(), json!(m.term));
        ev.insert("snapshot_id".into(), json!(m.id));
        ev.insert("meta_version".into(), json!(m.version));
        ev.insert("state_bytes".into(), json!(self.state_bytes));
        let servers: Vec<String> = m
            .configuration
            .as_ref()
            .and_then(|c| c.servers.as_ref())
            .into_iter()
            .flatten()
            .map(|s| format!("{}@{}", s.id, s.address))
            .collect();
        ev.insert("servers".into(), json!(servers));
        ev.insert("sha256sums".into(), json!("meta.json and state.bin match"));
        if self.sealed_sums {
            ev.insert(
                "sealed_sums".into(),
                json!("SHA256SUMS.sealed present; not checked (needs the barrier keys)"),
            );
        }
        match &self.fsm {
            Fsm::Consul(s) => ev.extend(s.evidence()),
            Fsm::Vault(s) => ev.extend(s.evidence()),
            Fsm::Other => {
                ev.insert("state".into(), json!("FSM not recognised: not decoded"));
            }
        }
        ev
    }
}

/// The FSM a `state.bin` starting with these bytes belongs to.
fn fsm_format(first: &[u8]) -> Format {
    if consul::looks_like(first) {
        Format::ConsulSnapshot
    } else if vault::looks_like(first) {
        Format::VaultSnapshot
    } else {
        Format::RaftSnapshot
    }
}

fn tar_name(h: &[u8]) -> &[u8] {
    let n = &h[..100];
    &n[..n.iter().position(|&b| b == 0).unwrap_or(100)]
}

fn tar_size(h: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(&h[124..136]).ok()?;
    u64::from_str_radix(s.trim_matches(|c: char| c == '\0' || c == ' '), 8).ok()
}

/// Recognises a raft snapshot archive from the first bytes of its tar: a
/// first member `meta.json` holding raft's SnapshotMeta (or, with that
/// member lost, a first member `state.bin`). The FSM is told from
/// `state.bin`'s first bytes when they are in `head`.
pub fn sniff(head: &[u8]) -> Option<Format> {
    if head.len() < 512 {
        return None;
    }
    let name = tar_name(head);
    if name == STATE.as_bytes() {
        return Some(fsm_format(head.get(512..).unwrap_or_default()));
    }
    if name != META.as_bytes() {
        return None;
    }
    let size = tar_size(head)? as usize;
    let body = head.get(512..(512 + size).min(head.len()))?;
    let text = String::from_utf8_lossy(body);
    if !(text.contains("\"Index\"") && text.contains("\"Term\"")) {
        return None;
    }
    let next = 512 + size.div_ceil(512) * 512;
    match head.get(next..next + 512) {
        Some(h) if tar_name(h) == STATE.as_bytes() => {
            Some(fsm_format(head.get(next + 512..).unwrap_or_default()))
        }
        _ => Some(Format::RaftSnapshot),
    }
}

/// Hashes and counts what a member's reader hands out.
struct Hashing<'a> {
    inner: &'a mut dyn Read,
    sha: Sha256,
    count: u64,
}

impl Read for Hashing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// One member as it passed.
struct Seen {
    sha256: String,
    bytes: u64,
    /// meta.json and SHA256SUMS: their text.
    text: Option<Vec<u8>>,
}

/// Checks the whole archive (the tar stream, already decompressed).
pub fn check(r: &mut dyn Read) -> Result<RaftFacts, Damage> {
    let mut counting = Counting { inner: r, count: 0 };
    let mut archive = tar::Archive::new(&mut counting);
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let mut fsm = Fsm::Other;
    let mut expected_end = 0u64;
    let entries = archive
        .entries()
        .map(|e| e.raw(true))
        .map_err(|e| Damage::io(e, "reading the tar archive"))?;
    for entry in entries {
        let n = order.len() + 1;
        let mut entry = entry.map_err(|e| Damage(format!("tar member {n}: {e}")))?;
        let size = entry
            .header()
            .entry_size()
            .map_err(|e| Damage(format!("tar member {n}: {e}")))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let what = format!("member {name}");
        let mut h = Hashing {
            inner: &mut entry,
            sha: Sha256::new(),
            count: 0,
        };
        let mut text = None;
        match name.as_str() {
            META | SUMS if size > MAX_SMALL_MEMBER => {
                problems.push(format!("{what}: {size} bytes, far more than raft writes"));
            }
            META | SUMS => {
                let mut buf = Vec::new();
                (&mut h)
                    .take(MAX_SMALL_MEMBER)
                    .read_to_end(&mut buf)
                    .map_err(|e| Damage::io(e, &what))?;
                text = Some(buf);
            }
            STATE => {
                let mut first = [0u8; 16];
                let got = read_up_to(&mut h, &mut first).map_err(|e| Damage::io(e, &what))?;
                let mut rest = io::Cursor::new(first[..got].to_vec()).chain(&mut h);
                let mut buffered = BufReader::with_capacity(64 * 1024, &mut rest);
                let decoded = match fsm_format(&first[..got]) {
                    Format::ConsulSnapshot => consul::decode(&mut buffered).map(Fsm::Consul),
                    Format::VaultSnapshot => vault::decode(&mut buffered).map(Fsm::Vault),
                    _ => Ok(Fsm::Other),
                };
                drop(buffered);
                drop(rest);
                match decoded {
                    Ok(f) => fsm = f,
                    Err(e) => problems.push(format!("{what}: {e}")),
                }
            }
            _ => {}
        }
        // Whatever a decoder left (after an error, or an unknown member).
        io::copy(&mut h, &mut io::sink()).map_err(|e| Damage::io(e, &what))?;
        let (sha, bytes) = (hex::encode(h.sha.finalize()), h.count);
        if bytes < size {
            return Err(Damage(format!(
                "{what}: ends after {bytes} of its {size} bytes: truncated"
            )));
        }
        if seen.contains_key(&name) {
            problems.push(format!("{what} appears twice"));
        }
        seen.insert(
            name.clone(),
            Seen {
                sha256: sha,
                bytes,
                text,
            },
        );
        order.push(name);
        expected_end += 512 + size.div_ceil(512) * 512;
    }
    if order.is_empty() {
        return Err(Damage("tar archive holds no members".into()));
    }
    if counting.count < expected_end + 512 {
        return Err(Damage(format!(
            "archive ends after member {} at byte {} without the end-of-archive marker: truncated",
            order.last().expect("a member"),
            counting.count
        )));
    }
    judge(&seen, &order, &mut problems);
    let meta = seen
        .get(META)
        .and_then(|m| m.text.as_ref())
        .map(|t| serde_json::from_slice::<RaftMeta>(t));
    let meta = match meta {
        Some(Ok(m)) => Some(m),
        Some(Err(e)) => {
            problems.push(format!("member meta.json: not raft snapshot metadata: {e}"));
            None
        }
        None => None,
    };
    let state_bytes = seen.get(STATE).map_or(0, |s| s.bytes);
    if let (Some(m), Some(_)) = (&meta, seen.get(STATE))
        && m.size != state_bytes
    {
        problems.push(format!(
            "member state.bin: {state_bytes} bytes, but meta.json says Size {}",
            m.size
        ));
    }
    if !problems.is_empty() {
        let more = problems.len().saturating_sub(MAX_PROBLEMS);
        problems.truncate(MAX_PROBLEMS);
        if more > 0 {
            problems.push(format!("and {more} more problems"));
        }
        return Err(Damage(problems.join("; ")));
    }
    Ok(RaftFacts {
        meta: meta.unwrap_or_default(),
        state_bytes,
        sealed_sums: seen.contains_key(SEALED),
        fsm,
    })
}

fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Members present and expected, and SHA256SUMS against them.
fn judge(seen: &BTreeMap<String, Seen>, order: &[String], problems: &mut Vec<String>) {
    for want in [META, STATE, SUMS] {
        if !seen.contains_key(want) {
            problems.push(format!("member {want} missing"));
        }
    }
    for name in order {
        if ![META, STATE, SUMS, SEALED].contains(&name.as_str()) {
            problems.push(format!(
                "unexpected member {name} (a raft snapshot archive holds meta.json, state.bin, SHA256SUMS and, from Vault/OpenBao, SHA256SUMS.sealed)"
            ));
        }
    }
    let Some(sums) = seen.get(SUMS).and_then(|s| s.text.as_ref()) else {
        return;
    };
    let text = String::from_utf8_lossy(sums);
    let mut listed: BTreeMap<&str, &str> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = line
            .split_once("  ")
            .or_else(|| line.split_once(" *"))
            .filter(|(h, _)| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        match parsed {
            Some((hash, file)) => {
                listed.insert(file, hash);
            }
            None => problems.push(format!("member SHA256SUMS: line {} unreadable", i + 1)),
        }
    }
    for (file, hash) in &listed {
        match seen.get(*file) {
            Some(s) if s.sha256.eq_ignore_ascii_case(hash) => {}
            Some(s) => problems.push(format!(
                "member {file}: SHA-256 {} does not match SHA256SUMS ({hash})",
                s.sha256
            )),
            None => problems.push(format!(
                "member SHA256SUMS lists {file}, which is not in the archive"
            )),
        }
    }
    for want in [META, STATE] {
        if seen.contains_key(want) && !listed.contains_key(want) {
            problems.push(format!("member {want} is not listed in SHA256SUMS"));
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A raft archive (uncompressed tar) of the given members.
    pub fn archive(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn sha(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    pub fn consul_state() -> Vec<u8> {
        let mut b = b"\x81\xa9LastIndex\x2a".to_vec();
        b.extend(b"\x02\x81\xa3Key\xa5app/a");
        b
    }

    pub fn good(state: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let meta = format!(
            r#"{{"Version":1,"ID":"2-42-1","Index":42,"Term":2,"Peers":null,"Configuration":{{"Servers":[{{"Suffrage":0,"ID":"n1","Address":"127.0.0.1:8300"}}]}},"ConfigurationIndex":1,"Size":{}}}"#,
            state.len()
        )
        .into_bytes();
        let sums = format!("{}  meta.json\n{}  state.bin\n", sha(&meta), sha(state)).into_bytes();
        (meta, sums)
    }

    #[test]
    fn a_consul_archive_is_recognised_and_decoded() {
        let state = consul_state();
        let (meta, sums) = good(&state);
        let tar = archive(&[
            ("meta.json", &meta),
            ("state.bin", &state),
            ("SHA256SUMS", &sums),
        ]);
        assert_eq!(sniff(&tar), Some(Format::ConsulSnapshot));
        let facts = check(&mut &tar[..]).unwrap();
        assert_eq!(facts.meta.index, 42);
        assert_eq!(facts.format(), Format::ConsulSnapshot);
        let Fsm::Consul(s) = &facts.fsm else { panic!() };
        assert_eq!(s.kv_prefixes["app/"], 1);
    }

    #[test]
    fn an_openbao_archive_with_sealed_sums_is_framed() {
        // Two delimited StorageEntry messages: keys core/a and logical/x.
        let mut state = Vec::new();
        for key in ["core/a", "logical/x"] {
            let mut body = vec![0x0a, key.len() as u8];
            body.extend(key.as_bytes());
            body.extend([0x12, 2, 0xde, 0xad]);
            state.push(body.len() as u8);
            state.extend(body);
        }
        let (meta, sums) = good(&state);
        let tar = archive(&[
            ("meta.json", &meta),
            ("state.bin", &state),
            ("SHA256SUMS", &sums),
            ("SHA256SUMS.sealed", b"\x0a\x01sealed"),
        ]);
        assert_eq!(sniff(&tar), Some(Format::VaultSnapshot));
        let facts = check(&mut &tar[..]).unwrap();
        assert!(facts.sealed_sums);
        let Fsm::Vault(s) = &facts.fsm else { panic!() };
        assert_eq!(s.entries, 2);
        assert_eq!(s.prefixes["logical/"], 1);
    }

    #[test]
    fn a_declared_member_size_is_not_trusted() {
        let state = consul_state();
        let (meta, sums) = good(&state);
        let mut tar = archive(&[
            ("meta.json", &meta),
            ("state.bin", &state),
            ("SHA256SUMS", &sums),
        ]);
        // meta.json's header claims 8 GiB; the bytes do not follow.
        let mut h = tar::Header::new_ustar();
        h.as_mut_bytes().copy_from_slice(&tar[..512]);
        h.set_size(8 << 30);
        h.set_cksum();
        tar[..512].copy_from_slice(h.as_bytes());
        let e = check(&mut &tar[..]).unwrap_err().0;
        assert!(e.contains("member meta.json: ends after"), "{e}");
    }

    #[test]
    fn every_member_problem_is_named() {
        let state = consul_state();
        let (meta, sums) = good(&state);
        let mut flipped = state.clone();
        flipped[3] ^= 1;
        let tar = archive(&[
            ("meta.json", &meta),
            ("state.bin", &flipped),
            ("SHA256SUMS", &sums),
        ]);
        let e = check(&mut &tar[..]).unwrap_err().0;
        assert!(e.contains("member state.bin: SHA-256"), "{e}");

        let tar = archive(&[("meta.json", &meta), ("SHA256SUMS", &sums)]);
        let e = check(&mut &tar[..]).unwrap_err().0;
        assert!(e.contains("member state.bin missing"), "{e}");
        assert!(e.contains("lists state.bin"), "{e}");

        let tar = archive(&[
            ("meta.json", &meta),
            ("state.bin", &state),
            ("SHA256SUMS", &sums),
            ("extra.txt", b"x"),
        ]);
        let e = check(&mut &tar[..]).unwrap_err().0;
        assert!(e.contains("unexpected member extra.txt"), "{e}");

        let tar = archive(&[
            ("meta.json", &meta),
            ("state.bin", &state),
            ("SHA256SUMS", &sums),
        ]);
        let e = check(&mut &tar[..tar.len() - 1024]).unwrap_err().0;
        assert!(e.contains("truncated"), "{e}");
    }

    #[test]
    fn size_disagreeing_with_meta_is_damage() {
        let state = consul_state();
        let (_, _) = good(&state);
        let (meta, _) = good(b"longer than the state");
        let sums = format!("{}  meta.json\n{}  state.bin\n", sha(&meta), sha(&state)).into_bytes();
        let tar = archive(&[
            ("meta.json", &meta),
            ("state.bin", &state),
            ("SHA256SUMS", &sums),
        ]);
        let e = check(&mut &tar[..]).unwrap_err().0;
        assert!(e.contains("meta.json says Size 21"), "{e}");
    }

    #[test]
    fn a_plain_tar_is_not_a_raft_archive() {
        let tar = archive(&[("meta.json", b"{}"), ("b", b"x")]);
        assert_eq!(sniff(&tar), None);
        let tar = archive(&[("notes.txt", b"{}")]);
        assert_eq!(sniff(&tar), None);
    }
}
