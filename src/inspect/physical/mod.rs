//! Physical PostgreSQL backups: `pg_basebackup` output (plain or tar)
//! checked against its `backup_manifest`, WAL archives checked segment by
//! segment by content, and the two paired by system identifier into the
//! recoverable window (what a point-in-time recovery can reach).
//!
//! The files are read in verification's one pass ([`crate::verify`]): the
//! inspectors here decode each file as it streams ([`wal`], [`manifest`],
//! [`control`], [`basetar`]); [`base`] and [`archive`] judge a backup
//! directory and an archive from those decodings; [`window`] pairs them
//! and follows the timelines. The results are typed: [`BaseBackupInfo`],
//! [`archive::ArchiveFacts`] and [`PhysicalFacts`], for policy and restores.

pub mod archive;
pub mod base;
pub mod basetar;
pub mod control;
pub mod manifest;
pub mod names;
pub mod wal;
pub mod window;

use std::io::{BufReader, Read};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use names::Lsn;
pub use window::{ClusterWindow, PhysicalFacts, WalWindow};

use crate::digest::READ_BUF;

/// How a base backup is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseFormat {
    /// `pg_basebackup -Fp`: a copy of the data directory.
    Plain,
    /// `pg_basebackup -Ft`: `base.tar[.gz|.zst]`, `pg_wal.tar`, one tar per tablespace.
    Tar,
}

/// What a base backup is, for pairing with an archive and for a restore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BaseBackupInfo {
    /// The backup's key (its directory) in its source.
    pub key: String,
    pub format: BaseFormat,
    /// From its `global/pg_control`.
    pub system_id: Option<u64>,
    /// The timeline the backup started on.
    pub timeline: u32,
    pub start_lsn: Option<Lsn>,
    /// Where it becomes consistent: `WAL-Ranges`' end (the manifest), or
    /// the archive's `.backup` file's STOP WAL LOCATION when paired.
    pub stop_lsn: Option<Lsn>,
    /// The WAL it needs to become consistent, per timeline.
    pub wal_ranges: Vec<manifest::WalRange>,
    pub start_time: Option<DateTime<Utc>>,
    /// STOP TIME of the archive's `.backup` file, when paired.
    pub end_time: Option<DateTime<Utc>>,
    /// Segments (by name) the backup carries itself (`pg_wal/`, `pg_wal.tar`).
    pub wal_included: Vec<String>,
    /// It passed its own checks (manifest, files, label, pg_control).
    pub sound: bool,
}

/// Why a base backup could not be read outside a verification run.
#[derive(Debug, thiserror::Error)]
pub enum InfoError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: not a base backup: {1}")]
    NotBaseBackup(String, String),
}

/// Reads a local base backup's anchor files (plain: `backup_label`,
/// `backup_manifest`, `global/pg_control`; tar: the same inside
/// `base.tar[.gz|.zst]`) without verifying its data files: for a restore
/// engine choosing what to restore. `verify` gives the same facts with
/// every file checked (`BackupRecord::decoded`).
pub fn base_backup_info(dir: &Path) -> Result<BaseBackupInfo, InfoError> {
    let shown = dir.display().to_string();
    let io = |e| InfoError::Io(shown.clone(), e);
    let manifest = match std::fs::File::open(dir.join("backup_manifest")) {
        Ok(f) => Some(manifest::parse(&mut BufReader::with_capacity(READ_BUF, f))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    let tar = basetar::find_base_tar(dir);
    let (format, label, control) = match &tar {
        None => {
            let label = std::fs::read_to_string(dir.join("backup_label")).map_err(io)?;
            let control = std::fs::read(dir.join("global/pg_control")).map_err(io)?;
            (
                BaseFormat::Plain,
                control::label(&label),
                control::pg_control(&control).ok(),
            )
        }
        Some(path) => {
            let f = std::fs::File::open(path).map_err(io)?;
            let (label, control) = basetar::anchors(f).map_err(io)?;
            (
                BaseFormat::Tar,
                label.map(|t| control::label(&t)).unwrap_or_default(),
                control.and_then(|b| control::pg_control(&b).ok()),
            )
        }
    };
    let start_lsn = label.start_lsn;
    if start_lsn.is_none() {
        return Err(InfoError::NotBaseBackup(
            shown,
            "no backup_label with START WAL LOCATION".into(),
        ));
    }
    let wal_ranges = manifest
        .as_ref()
        .map(|m| m.wal_ranges.clone())
        .unwrap_or_default();
    Ok(BaseBackupInfo {
        key: shown,
        format,
        system_id: control.map(|c| c.system_id),
        timeline: label
            .start_timeline
            .or(wal_ranges.first().map(|r| r.timeline))
            .unwrap_or(1),
        start_lsn,
        stop_lsn: wal_ranges.iter().map(|r| r.end).max().or(label.stop_lsn),
        wal_ranges,
        start_time: label.start_time,
        end_time: label.stop_time,
        wal_included: Vec::new(),
        sound: manifest.is_none_or(|m| m.problems.is_empty()),
    })
}

/// Reads a whole small file from a stream, refusing more than `cap` bytes.
fn read_capped(r: &mut dyn Read, cap: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(cap).read_to_end(&mut out)?;
    Ok(out)
}

/// A directory layout recognised by its file names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirLayout {
    BaseBackupTar,
    WalArchive,
}

/// What [`layout_of_dir`] needs of a directory's own file names, gathered
/// one name at a time: a planner streaming a listing keeps this per
/// directory, never the names.
#[derive(Clone, Debug, Default)]
pub struct DirNames {
    base_tar: bool,
    wal_tar: bool,
    backup_manifest: bool,
    wal_names: usize,
    segments: usize,
    total: usize,
}

impl DirNames {
    /// One more file name of the directory (each name once).
    pub fn add(&mut self, name: &str) {
        self.total += 1;
        match names::strip_compression(name) {
            "base.tar" => self.base_tar = true,
            "pg_wal.tar" => self.wal_tar = true,
            _ => {}
        }
        self.backup_manifest |= name == "backup_manifest";
        if let Some(w) = names::WalName::parse(name) {
            self.wal_names += 1;
            if matches!(w, names::WalName::Segment { .. }) {
                self.segments += 1;
            }
        }
    }
}

/// The physical layout a directory's own file names announce, if any: a
/// tar-format base backup, or a WAL archive (at least one segment name,
/// and WAL names for at least half of the files).
pub fn layout_of_dir(names: &DirNames) -> Option<DirLayout> {
    if names.base_tar && (names.backup_manifest || names.wal_tar) {
        return Some(DirLayout::BaseBackupTar);
    }
    (names.segments > 0 && names.wal_names * 2 >= names.total).then_some(DirLayout::WalArchive)
}

/// Whether `key` is the `backup_manifest` at the top of backup `dir`.
pub fn is_manifest_of(dir: &str, key: &str) -> bool {
    let inner = key
        .strip_prefix(dir)
        .map(|r| r.trim_start_matches('/'))
        .unwrap_or(key);
    inner == "backup_manifest"
}

/// The checksum algorithm a decoded `backup_manifest` uses for its files.
pub fn manifest_algorithm(
    decoded: Option<&crate::inspect::Decoded>,
) -> Option<crate::digest::Algorithm> {
    match decoded? {
        crate::inspect::Decoded::BackupManifest(m) => {
            m.files.iter().find_map(|f| f.kind.algorithm())
        }
        _ => None,
    }
}
