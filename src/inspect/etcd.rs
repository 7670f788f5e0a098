//! etcd snapshots as `etcdctl snapshot save` writes them: etcd's bbolt
//! database (judged page by page in [`super::bbolt`]) followed by 32 bytes,
//! the SHA-256 of everything before them, which `etcdctl snapshot restore`
//! checks. Streamed once: pages are hashed and checked as they pass, and
//! what is left after the last whole page must be exactly that trailer.
//!
//! From the tree: etcd's `key` bucket holds one entry per revision (its
//! keys are the revision, 8 bytes big-endian, `_`, the sub-revision), so
//! its entry count and largest key give the revisions held and the
//! snapshot's revision.

use std::io::{self, Read};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::Damage;
use super::bbolt::{self, BoltFacts, Pages, Walk};

pub const TRAILER: usize = 32;

/// The typed facts of a verified snapshot, for later stages (a restore
/// compares the restored member's revision and keys against these).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdFacts {
    pub db_bytes: u64,
    /// The bbolt pass; `None` when the tree was too large to walk.
    pub bolt: Option<BoltFacts>,
    /// Entries in the `key` bucket: one per revision kept (puts, deletes).
    pub key_revisions: Option<u64>,
    /// The largest main revision in the `key` bucket.
    pub revision: Option<u64>,
    /// Entries in every top-level bucket together, as `etcdctl snapshot
    /// status` counts its `totalKey`.
    pub total_keys: Option<u64>,
}

impl EtcdFacts {
    pub fn evidence(&self) -> Map<String, Value> {
        let mut ev = Map::new();
        ev.insert("db_bytes".into(), json!(self.db_bytes));
        ev.insert("sha256_trailer".into(), json!("matches the database"));
        if let Some(b) = &self.bolt {
            ev.extend(b.evidence());
        }
        ev.insert("revision".into(), json!(self.revision));
        ev.insert("key_revisions".into(), json!(self.key_revisions));
        ev.insert("total_keys".into(), json!(self.total_keys));
        ev
    }
}

fn fill(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
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

/// Checks a snapshot from its first byte to its end. `Ok` carries a
/// warning when part of the check could not be made.
pub fn check(r: &mut dyn Read) -> Result<(EtcdFacts, Option<String>), Damage> {
    // The page size is in meta page 0; bbolt itself falls back to 4 KiB
    // when that page is damaged, and so does this (the damage is then
    // reported for page 0).
    let mut first = vec![0u8; 80];
    let got = fill(r, &mut first).map_err(|e| Damage::io(e, "meta page 0"))?;
    let page_size = match bbolt::parse_meta(&first[..got], 0) {
        Ok(m) => m.page_size as usize,
        Err(_) => 4096,
    };
    let mut pages = Pages::new(page_size as u32);
    let mut sha = Sha256::new();
    let mut page = vec![0u8; page_size];
    page[..got].copy_from_slice(&first[..got]);
    let mut have = got;
    let mut bolt_damage: Option<Damage> = None;
    let tail = loop {
        let n = fill(r, &mut page[have..])
            .map_err(|e| Damage::io(e, &format!("page {}", pages.pages_seen())))?;
        have += n;
        if have < page_size {
            break have;
        }
        sha.update(&page);
        if bolt_damage.is_none()
            && let Err(d) = pages.page(&page)
        {
            bolt_damage = Some(d);
        }
        have = 0;
    };
    let db_bytes = pages.pages_seen() * page_size as u64;
    let mut problems = Vec::new();
    match tail {
        TRAILER => {
            let digest = sha.finalize();
            if digest[..] != page[..TRAILER] {
                problems.push(format!(
                    "SHA-256 trailer {} does not match the {db_bytes} bytes before it ({})",
                    hex::encode(&page[..TRAILER]),
                    hex::encode(digest)
                ));
            }
        }
        0 => problems.push(format!(
            "no SHA-256 trailer after the {db_bytes}-byte database (etcdctl snapshot save appends one; cut off, or a copy of a live member's db)"
        )),
        n => problems.push(format!(
            "{n} bytes after the last whole page ({}): truncated inside a page, or a damaged trailer",
            pages.pages_seen()
        )),
    }
    let tree = match bolt_damage {
        Some(d) => Err(d),
        None => pages.finish(),
    };
    let (bolt, warning) = match tree {
        Err(d) => {
            problems.push(d.0);
            (None, None)
        }
        Ok(Walk::NotWalked(why)) => (None, Some(why)),
        Ok(Walk::Walked(facts)) => (Some(facts), None),
    };
    if !problems.is_empty() {
        return Err(Damage(problems.join("; ")));
    }
    let key = bolt.as_ref().and_then(|b| b.bucket("key"));
    let warning = match (&bolt, key) {
        (Some(_), None) => Some(
            "a bbolt database with a SHA-256 trailer, but without etcd's `key` bucket: not an etcd snapshot?"
                .to_string(),
        ),
        _ => warning,
    };
    let facts = EtcdFacts {
        db_bytes,
        key_revisions: key.map(|k| k.entries),
        revision: key.and_then(|k| k.last_key),
        total_keys: bolt.as_ref().map(|b| {
            b.buckets
                .iter()
                .filter(|s| !s.path.contains('/'))
                .map(|s| s.entries + s.sub_buckets)
                .sum()
        }),
        bolt,
    };
    Ok((facts, warning))
}

#[cfg(test)]
mod tests {
    use super::super::bbolt::tests::{PS, small_db};
    use super::*;

    fn snapshot(db: &[u8]) -> Vec<u8> {
        let mut s = db.to_vec();
        s.extend(Sha256::digest(db));
        s
    }

    #[test]
    fn a_snapshot_passes_with_its_revision() {
        let (facts, warning) = check(&mut &snapshot(&small_db(7))[..]).unwrap();
        assert_eq!(warning, None);
        assert_eq!(facts.revision, Some(7));
        assert_eq!(facts.key_revisions, Some(7));
        assert_eq!(facts.total_keys, Some(8));
        assert_eq!(facts.db_bytes, 4 * PS as u64);
    }

    #[test]
    fn every_flipped_byte_fails() {
        let s = snapshot(&small_db(3));
        for at in 0..s.len() {
            let mut bad = s.clone();
            bad[at] ^= 0x01;
            assert!(check(&mut &bad[..]).is_err(), "flip at {at} passed");
        }
    }

    #[test]
    fn trailer_damage_is_named() {
        let db = small_db(3);
        let mut s = snapshot(&db);
        s[3 * PS + 2000] ^= 0x10; // inside a value nobody else checks
        let e = check(&mut &s[..]).unwrap_err().0;
        assert!(
            e.contains("SHA-256 trailer") && e.contains("does not match"),
            "{e}"
        );
        let e = check(&mut &db[..]).unwrap_err().0;
        assert!(e.contains("no SHA-256 trailer"), "{e}");
        let s = snapshot(&db);
        let e = check(&mut &s[..s.len() - 10]).unwrap_err().0;
        assert!(e.contains("22 bytes after the last whole page"), "{e}");
        let e = check(&mut &s[..2 * PS + 32]).unwrap_err().0;
        assert!(e.contains("truncated"), "{e}");
    }
}
