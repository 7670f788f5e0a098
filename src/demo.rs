//! The demo corpus behind `backproof run --demo`: real backups made by the
//! real tools (the clean fixtures, embedded at build time) written out to a
//! local directory, with manifests, and one backup corrupted on purpose, so
//! that a newcomer sees both verdicts without installing anything.

use std::fs;
use std::io;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::config::{Config, ReportConfig, SourceConfig};

macro_rules! fixture {
    ($path:literal) => {
        (
            $path,
            include_bytes!(concat!("../fixtures/corpus/clean/", $path)).as_slice(),
        )
    };
}

/// (path under the corpus, bytes) of the embedded clean backups.
const FILES: &[(&str, &[u8])] = &[
    fixture!("postgres/appdb-2026-11-20T0300.dump"),
    fixture!("postgres/appdb-2026-11-20T0300.sql.gz"),
    fixture!("mysql/shop-2026-11-20T0300.sql.zst"),
    fixture!("disk/vm-2026-11-20.qcow2"),
    fixture!("disk/files-2026-11-20.tar.gz"),
];

/// The deliberately broken one: last night's dump, cut off mid-upload.
const CORRUPT: &str = "postgres/appdb-2026-11-19T0300.sql.gz";

/// Writes the corpus under `dir/corpus` (replacing an earlier demo corpus)
/// and returns a config auditing it with reports in `dir`.
pub fn prepare(dir: &Path) -> io::Result<Config> {
    let corpus = dir.join("corpus");
    if corpus.exists() {
        fs::remove_dir_all(&corpus)?;
    }
    let mut sums: Vec<(String, String)> = Vec::new();
    let mut write = |rel: &str, bytes: &[u8], recorded: &[u8]| -> io::Result<()> {
        let path = corpus.join(rel);
        fs::create_dir_all(path.parent().expect("corpus paths have a directory"))?;
        fs::write(&path, bytes)?;
        sums.push((rel.to_string(), hex::encode(Sha256::digest(recorded))));
        Ok(())
    };
    for (rel, bytes) in FILES {
        write(rel, bytes, bytes)?;
    }
    let good = FILES[1].1;
    // The manifest records the intact bytes; the file holds 60% of them.
    write(CORRUPT, &good[..good.len() * 6 / 10], good)?;

    // SHA256SUMS per directory, as a backup job would write them.
    let mut dirs: Vec<&str> = sums
        .iter()
        .map(|(r, _)| r.split('/').next().unwrap())
        .collect();
    dirs.dedup();
    dirs.sort();
    dirs.dedup();
    for d in &dirs {
        let text: String = sums
            .iter()
            .filter(|(r, _)| r.starts_with(&format!("{d}/")))
            .map(|(r, h)| format!("{h}  {}\n", &r[d.len() + 1..]))
            .collect();
        fs::write(corpus.join(d).join("SHA256SUMS"), text)?;
    }
    Ok(Config {
        defaults: Default::default(),
        policy: Default::default(),
        checks: Vec::new(),
        notify: None,
        files: Vec::new(),
        report: ReportConfig {
            dir: dir.to_path_buf(),
            formats: vec![crate::report::Format::Json, crate::report::Format::Text],
        },
        sources: dirs
            .iter()
            .map(|d| SourceConfig {
                name: d.to_string(),
                path: corpus.join(d),
                timestamp_pattern: None,
                pattern: None,
                exclude: Vec::new(),
                copy: None,
                region: None,
                account: None,
                restore: None,
                changes: None,
            })
            .collect(),
    })
}
