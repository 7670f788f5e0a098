//! Tar archives (and `pg_dump -Ft`): every header checksum verified, every
//! member read, and the end-of-archive marker required, because a tar cut at
//! a 512-byte boundary otherwise looks complete.

use std::collections::BTreeSet;
use std::io::{self, Read};

use serde_json::{Map, Value, json};

use super::{Damage, pgdump};

/// A reader that counts the bytes through it (where a tar walk stopped).
pub(crate) struct Counting<R> {
    pub inner: R,
    pub count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

const MAX_TOC_BYTES: u64 = 256 * 1024 * 1024;

pub fn check(r: &mut dyn Read, pg_tar: bool) -> Result<Map<String, Value>, Damage> {
    let mut counting = Counting { inner: r, count: 0 };
    let mut archive = tar::Archive::new(&mut counting);
    let mut members = 0u64;
    let mut content_bytes = 0u64;
    // Where the next header would start if the archive simply stopped.
    let mut expected_end = 0u64;
    let mut names = BTreeSet::new();
    let mut toc: Option<Vec<u8>> = None;
    let entries = archive
        .entries()
        .map(|e| e.raw(true))
        .map_err(|e| Damage::io(e, "reading the tar archive"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Damage(format!("tar member {}: {e}", members + 1)))?;
        let size = entry
            .header()
            .entry_size()
            .map_err(|e| Damage(format!("tar member {}: {e}", members + 1)))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let what = format!("tar member {name:?}");
        if pg_tar && name == "toc.dat" {
            let mut buf = Vec::new();
            (&mut entry)
                .take(MAX_TOC_BYTES)
                .read_to_end(&mut buf)
                .map_err(|e| Damage::io(e, &what))?;
            toc = Some(buf);
        } else {
            io::copy(&mut entry, &mut io::sink()).map_err(|e| Damage::io(e, &what))?;
        }
        expected_end += 512 + size.div_ceil(512) * 512;
        content_bytes += size;
        members += 1;
        names.insert(name);
    }
    if members == 0 {
        return Err(Damage("tar archive holds no members".into()));
    }
    if counting.count < expected_end + 512 {
        return Err(Damage(format!(
            "archive ends after {members} member(s) at byte {} without the end-of-archive marker: truncated",
            counting.count
        )));
    }
    let mut ev = Map::new();
    ev.insert("members".into(), json!(members));
    ev.insert("content_bytes".into(), json!(content_bytes));
    if pg_tar {
        let toc = toc.ok_or_else(|| Damage("pg_dump tar archive without toc.dat".into()))?;
        let (header, entries) =
            pgdump::read_toc_file(&mut &toc[..]).map_err(|d| Damage(format!("toc.dat: {d}")))?;
        let missing: Vec<&str> = entries
            .iter()
            .filter_map(|e| e.filename.as_deref())
            .filter(|f| !names.contains(*f))
            .collect();
        if !missing.is_empty() {
            return Err(Damage(format!(
                "toc.dat names data members missing from the archive: {}",
                missing.join(", ")
            )));
        }
        ev.extend(pgdump::header_evidence(&header, &entries));
    }
    Ok(ev)
}
