//! `backup_manifest`, read line by line as PostgreSQL writes it (one file
//! or WAL range per line), with its `Manifest-Checksum` (SHA-256 of every
//! byte up to the line that holds it) computed as it streams.

use std::io::BufRead;

use serde::Deserialize;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::names::Lsn;
use crate::digest::Algorithm;

/// Manifests are refused above this (about two million files).
const MAX_MANIFEST: u64 = 512 * 1024 * 1024;

/// A file's checksum algorithm, as the manifest names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ChecksumKind {
    None,
    Crc32c,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl ChecksumKind {
    fn parse(s: &str) -> Option<ChecksumKind> {
        Some(match s {
            "NONE" => ChecksumKind::None,
            "CRC32C" => ChecksumKind::Crc32c,
            "SHA224" => ChecksumKind::Sha224,
            "SHA256" => ChecksumKind::Sha256,
            "SHA384" => ChecksumKind::Sha384,
            "SHA512" => ChecksumKind::Sha512,
            _ => return None,
        })
    }

    /// The digest computed in the one-pass read for it.
    pub fn algorithm(self) -> Option<Algorithm> {
        match self {
            ChecksumKind::None => None,
            ChecksumKind::Crc32c => Some(Algorithm::Crc32c),
            ChecksumKind::Sha224 => Some(Algorithm::Sha224),
            ChecksumKind::Sha256 => Some(Algorithm::Sha256),
            ChecksumKind::Sha384 => Some(Algorithm::Sha384),
            ChecksumKind::Sha512 => Some(Algorithm::Sha512),
        }
    }
}

/// One file the backup must hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ManifestFile {
    pub path: String,
    pub size: u64,
    pub kind: ChecksumKind,
    /// In the digest engine's own form (CRC32C as a big-endian number;
    /// PostgreSQL writes the CRC's bytes in memory order).
    pub checksum: Option<String>,
    pub line: usize,
}

/// `WAL-Ranges`: the WAL the backup needs to become consistent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct WalRange {
    pub timeline: u32,
    pub start: Lsn,
    pub end: Lsn,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BaseManifest {
    pub version: u32,
    /// Version 2 (PostgreSQL 17) records it.
    pub system_id: Option<u64>,
    pub files: Vec<ManifestFile>,
    pub wal_ranges: Vec<WalRange>,
    /// What is wrong with the manifest itself; empty when sound.
    pub problems: Vec<String>,
}

#[derive(Deserialize)]
struct FileLine {
    #[serde(rename = "Path")]
    path: Option<String>,
    #[serde(rename = "Encoded-Path")]
    encoded_path: Option<String>,
    #[serde(rename = "Size")]
    size: u64,
    #[serde(rename = "Checksum-Algorithm")]
    algorithm: Option<String>,
    #[serde(rename = "Checksum")]
    checksum: Option<String>,
}

#[derive(Deserialize)]
struct RangeLine {
    #[serde(rename = "Timeline")]
    timeline: u32,
    #[serde(rename = "Start-LSN")]
    start: String,
    #[serde(rename = "End-LSN")]
    end: String,
}

/// Whether the start of a file is a backup manifest's.
pub fn looks_like(head: &[u8]) -> bool {
    head.starts_with(b"{ \"PostgreSQL-Backup-Manifest-Version\":")
}

/// The manifest's CRC32C hex (bytes in memory order, little-endian) in
/// the digest engine's form.
fn crc_hex(pg: &str) -> Option<String> {
    let bytes = hex::decode(pg).ok()?;
    let b: [u8; 4] = bytes.try_into().ok()?;
    Some(format!("{:08x}", u32::from_le_bytes(b)))
}

/// Reads a manifest to its end. I/O errors are problems of the manifest.
pub fn parse(r: &mut dyn BufRead) -> BaseManifest {
    let mut m = BaseManifest::default();
    let mut hasher = Sha256::new();
    let mut held: Vec<u8> = Vec::new();
    let mut line = Vec::new();
    let mut n = 0usize;
    let mut total = 0u64;
    let mut recorded: Option<String> = None;
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(k) => total += k as u64,
            Err(e) => {
                m.problems.push(format!("unreadable: {e}"));
                return m;
            }
        }
        if total > MAX_MANIFEST {
            m.problems
                .push(format!("larger than {MAX_MANIFEST} bytes: not read"));
            return m;
        }
        n += 1;
        // The checksum covers every line but the last.
        hasher.update(&held);
        held.clone_from(&line);
        let text = String::from_utf8_lossy(&line);
        let t = text.trim().trim_end_matches(',');
        if n == 1 {
            match t
                .strip_prefix("{ \"PostgreSQL-Backup-Manifest-Version\":")
                .and_then(|v| v.trim().parse::<u32>().ok())
            {
                Some(v) => m.version = v,
                None => {
                    m.problems.push("not a backup manifest (line 1)".into());
                    return m;
                }
            }
        } else if let Some(v) = t.strip_prefix("\"System-Identifier\":") {
            m.system_id = v.trim().parse().ok();
        } else if t.starts_with("{ \"Path\":") || t.starts_with("{ \"Encoded-Path\":") {
            match serde_json::from_str::<FileLine>(t) {
                Ok(f) => file_entry(&mut m, f, n),
                Err(e) => m
                    .problems
                    .push(format!("line {n}: unreadable file entry: {e}")),
            }
        } else if t.starts_with("{ \"Timeline\":") {
            match serde_json::from_str::<RangeLine>(t) {
                Ok(r) => match (Lsn::parse(&r.start), Lsn::parse(&r.end)) {
                    (Some(start), Some(end)) if start <= end => m.wal_ranges.push(WalRange {
                        timeline: r.timeline,
                        start,
                        end,
                    }),
                    _ => m.problems.push(format!("line {n}: invalid WAL range")),
                },
                Err(e) => m
                    .problems
                    .push(format!("line {n}: unreadable WAL range: {e}")),
            }
        } else if let Some(v) = t.strip_prefix("\"Manifest-Checksum\":") {
            recorded = Some(
                v.trim()
                    .trim_end_matches('}')
                    .trim()
                    .trim_matches('"')
                    .to_string(),
            );
        }
    }
    let actual = hex::encode(hasher.finalize());
    match recorded {
        None => m.problems.push("no Manifest-Checksum: cut short".into()),
        Some(r) if r.to_ascii_lowercase() != actual => m.problems.push(format!(
            "Manifest-Checksum {r} does not match the manifest's contents (SHA-256 {actual})"
        )),
        Some(_) => {}
    }
    if m.wal_ranges.is_empty() {
        m.problems.push("no WAL-Ranges".into());
    }
    m
}

fn file_entry(m: &mut BaseManifest, f: FileLine, line: usize) {
    let path = match (f.path, f.encoded_path) {
        (Some(p), _) => p,
        (None, Some(e)) => match hex::decode(&e) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(_) => {
                m.problems.push(format!("line {line}: bad Encoded-Path"));
                return;
            }
        },
        (None, None) => {
            m.problems
                .push(format!("line {line}: file entry without a path"));
            return;
        }
    };
    let kind = match f.algorithm.as_deref().map(ChecksumKind::parse) {
        None => ChecksumKind::None,
        Some(Some(k)) => k,
        Some(None) => {
            m.problems.push(format!(
                "line {line}: unknown checksum algorithm {:?}",
                f.algorithm.unwrap_or_default()
            ));
            return;
        }
    };
    let checksum = match (kind, f.checksum) {
        (ChecksumKind::None, _) => None,
        (ChecksumKind::Crc32c, Some(c)) => crc_hex(&c),
        (_, Some(c)) => Some(c.to_ascii_lowercase()),
        (_, None) => None,
    };
    if kind != ChecksumKind::None && checksum.is_none() {
        m.problems.push(format!(
            "line {line}: {path}: checksum missing or malformed"
        ));
    }
    m.files.push(ManifestFile {
        path,
        size: f.size,
        kind,
        checksum,
        line,
    });
}

/// Paths pg_verifybackup does not expect the manifest to list.
pub fn ignored(path: &str) -> bool {
    const IGNORED: [&str; 5] = [
        "backup_manifest",
        "pg_wal",
        "postgresql.auto.conf",
        "recovery.signal",
        "standby.signal",
    ];
    IGNORED
        .iter()
        .any(|i| path == *i || path.strip_prefix(i).is_some_and(|r| r.starts_with('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(body: &str) -> String {
        let sum = hex::encode(Sha256::digest(body.as_bytes()));
        format!("{body}\"Manifest-Checksum\": \"{sum}\"}}\n")
    }

    #[test]
    fn checksum_and_entries() {
        let body = "{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n{ \"Path\": \"PG_VERSION\", \"Size\": 3, \"Last-Modified\": \"x\", \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"8a744722\" }\n],\n\"WAL-Ranges\": [\n{ \"Timeline\": 1, \"Start-LSN\": \"0/3000028\", \"End-LSN\": \"0/3000100\" }\n],\n";
        let text = manifest(body);
        let m = parse(&mut text.as_bytes());
        assert!(m.problems.is_empty(), "{:?}", m.problems);
        assert_eq!(m.files[0].line, 3);
        assert_eq!(m.files[0].checksum.as_deref(), Some("2247748a"));
        assert_eq!(m.wal_ranges[0].end, Lsn(0x3000100));
        let bad = text.replace("\"Size\": 3", "\"Size\": 4");
        let m = parse(&mut bad.as_bytes());
        assert!(
            m.problems[0].contains("Manifest-Checksum"),
            "{:?}",
            m.problems
        );
        assert!(ignored("pg_wal/000000010000000000000001"));
        assert!(!ignored("pg_walx"));
    }
}
