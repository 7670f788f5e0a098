//! The tars of a `pg_basebackup -Ft` backup, read as they stream and never
//! unpacked: each member's size and checksum (the manifest's algorithm),
//! `backup_label` and `global/pg_control` kept, `pg_wal.tar`'s segments
//! checked by content, the end-of-archive marker required.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, json};

use super::control::{self, ControlFacts, LabelFacts};
use super::names::WalName;
use super::wal::{self, SegmentFacts};
use crate::digest::{Algorithm, Hashers, READ_BUF};
use crate::inspect::{Compression, Damage, Decoded, Format, Inspection, Kind, Subject};

/// One regular file inside a tar, as the manifest names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TarFile {
    pub path: String,
    pub size: u64,
    /// In the manifest's algorithm, when it has one.
    pub digest: Option<String>,
}

/// What one tar of a tar-format base backup holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TarFacts {
    pub files: Vec<TarFile>,
    pub label: Option<LabelFacts>,
    pub control: Option<Result<ControlFacts, control::Unusable>>,
    /// `pg_wal.tar`'s segments: name and what their content says.
    pub segments: Vec<(String, SegmentFacts)>,
}

/// The base tar of a tar-format backup directory, if any.
pub fn find_base_tar(dir: &Path) -> Option<PathBuf> {
    ["base.tar", "base.tar.gz", "base.tar.zst"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// Whether a file name is one of a tar-format backup's tars.
pub fn is_backup_tar(name: &str) -> bool {
    let inner = super::names::strip_compression(name);
    inner.strip_suffix(".tar").is_some_and(|stem| {
        stem == "base"
            || stem == "pg_wal"
            || (!stem.is_empty() && stem.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Where a tar's members sit in the data directory (manifest paths).
fn prefix_of(name: &str) -> String {
    let stem = super::names::strip_compression(name).trim_end_matches(".tar");
    match stem {
        "base" => String::new(),
        "pg_wal" => "pg_wal/".into(),
        oid => format!("pg_tblspc/{oid}/"),
    }
}

/// A reader that yields `head` again before the rest.
fn sniff<'a>(r: &'a mut dyn Read) -> io::Result<(Option<Compression>, bool, Box<dyn Read + 'a>)> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut head[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let head = head[..got].to_vec();
    let lz4 = head == [0x04, 0x22, 0x4d, 0x18];
    let c = if head.starts_with(&[0x1f, 0x8b]) {
        Some(Compression::Gzip)
    } else if head == [0x28, 0xb5, 0x2f, 0xfd] {
        Some(Compression::Zstd)
    } else {
        None
    };
    let chained: Box<dyn Read + 'a> = Box::new(io::Cursor::new(head).chain(r));
    let out: Box<dyn Read + 'a> = match c {
        Some(Compression::Gzip) => Box::new(flate2::read::MultiGzDecoder::new(chained)),
        Some(Compression::Zstd) => Box::new(zstd::stream::read::Decoder::new(chained)?),
        None => chained,
    };
    Ok((c, lz4, out))
}

/// `backup_label` and `global/pg_control` from a base tar, reading no
/// further than needed (for [`super::base_backup_info`]).
pub fn anchors(mut f: impl Read) -> io::Result<(Option<String>, Option<Vec<u8>>)> {
    let (_, _, r) = sniff(&mut f)?;
    let mut archive = tar::Archive::new(r);
    let (mut label, mut control) = (None, None);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        match path.as_str() {
            "backup_label" => {
                label = Some(
                    String::from_utf8_lossy(&super::read_capped(&mut entry, 1 << 16)?).into_owned(),
                )
            }
            "global/pg_control" => control = Some(super::read_capped(&mut entry, 1 << 16)?),
            _ => {}
        }
        if label.is_some() && control.is_some() {
            break;
        }
    }
    Ok((label, control))
}

/// Inspects one tar of a tar-format base backup, hashing each member with
/// `algorithm` (the manifest's) as it streams.
pub fn inspect(
    stream: &mut dyn Read,
    subject: &Subject<'_>,
    algorithm: Option<Algorithm>,
) -> Inspection {
    let mut i = Inspection {
        kind: Kind {
            format: Format::Tar,
            compression: None,
        },
        result: Ok(()),
        warning: None,
        evidence: Map::new(),
        toc_files: None,
        unjudged: None,
        decoded: None,
    };
    let (c, lz4, mut r) = match sniff(stream) {
        Ok(x) => x,
        Err(e) => {
            i.result = Err(Damage::io(e, "reading the first bytes"));
            return i;
        }
    };
    i.kind.compression = c;
    if lz4 {
        i.unjudged = Some(
            "lz4-compressed tar: this build does not decode lz4 (use gzip or zstd, or -Fp)".into(),
        );
        return i;
    }
    let prefix = prefix_of(subject.name);
    let mut facts = TarFacts::default();
    match walk(&mut r, &prefix, algorithm, &mut facts) {
        Ok(members) => {
            i.evidence.insert("members".into(), json!(members));
            // To the end: the gzip trailer (CRC and length) is checked there.
            if let Err(e) = io::copy(&mut r, &mut io::sink()) {
                i.result = Err(Damage::io(e, "decompressing"));
            }
        }
        Err(d) => i.result = Err(d),
    }
    i.decoded = Some(Decoded::BaseTar(Box::new(facts)));
    i
}

fn walk(
    r: &mut dyn Read,
    prefix: &str,
    algorithm: Option<Algorithm>,
    facts: &mut TarFacts,
) -> Result<u64, Damage> {
    let mut counting = crate::inspect::tar::Counting { inner: r, count: 0 };
    let mut archive = tar::Archive::new(&mut counting);
    let mut members = 0u64;
    let mut expected_end = 0u64;
    let entries = archive
        .entries()
        .map(|e| e.raw(true))
        .map_err(|e| Damage::io(e, "reading the tar archive"))?;
    let mut buf = vec![0u8; READ_BUF];
    for entry in entries {
        let mut entry = entry.map_err(|e| Damage(format!("tar member {}: {e}", members + 1)))?;
        let size = entry
            .header()
            .entry_size()
            .map_err(|e| Damage(format!("tar member {}: {e}", members + 1)))?;
        let inner = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = format!("{prefix}{}", inner.trim_end_matches('/'));
        let what = format!("tar member {path}");
        expected_end += 512 + size.div_ceil(512) * 512;
        members += 1;
        if !entry.header().entry_type().is_file() {
            io::copy(&mut entry, &mut io::sink()).map_err(|e| Damage::io(e, &what))?;
            continue;
        }
        let name = path.rsplit('/').next().unwrap_or(&path).to_string();
        if path.starts_with("pg_wal/")
            && matches!(WalName::parse(&name), Some(WalName::Segment { .. }))
        {
            let seg = wal::check(&mut entry, &name).map_err(|e| Damage::io(e, &what))?;
            io::copy(&mut entry, &mut io::sink()).map_err(|e| Damage::io(e, &what))?;
            facts.segments.push((name, seg));
            continue;
        }
        let keep = matches!(path.as_str(), "backup_label" | "global/pg_control");
        let mut kept = Vec::new();
        let mut hashers = Hashers::new(algorithm);
        loop {
            let n = entry.read(&mut buf).map_err(|e| Damage::io(e, &what))?;
            if n == 0 {
                break;
            }
            hashers.update(&buf[..n]);
            if keep && kept.len() < 1 << 16 {
                kept.extend_from_slice(&buf[..n]);
            }
        }
        if path == "backup_label" {
            facts.label = Some(control::label(&String::from_utf8_lossy(&kept)));
        } else if path == "global/pg_control" {
            facts.control = Some(control::pg_control(&kept));
        }
        let digest = algorithm.and_then(|a| hashers.finish().remove(&a));
        facts.files.push(TarFile { path, size, digest });
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
    Ok(members)
}
