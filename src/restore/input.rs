//! What feeds a restore tool: a local path it may open itself, or the
//! backup's decoded bytes streamed from its source (a directory dump from
//! an object store is staged first).

use std::io::{self, Read};
use std::path::PathBuf;

use crate::catalog::Backup;
use crate::inspect::{Format, Kind};
use crate::source::Storage;

use super::scratch::{DIR_PREFIX, RunAs, ScratchError};

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("the backup has no files")]
    NoFiles,
    /// Opening a member at its source; `what` names it when staging.
    #[error("{}{source}", .what.as_deref().map(|w| format!("{w}: ")).unwrap_or_default())]
    Open {
        what: Option<String>,
        #[source]
        source: io::Error,
    },
    #[error("decompressing: {0}")]
    Decoder(#[source] io::Error),
    #[error("cannot create a staging dir: {0}")]
    StagingDir(#[source] io::Error),
    #[error("refusing to stage a member named {0:?}")]
    UnsafeName(String),
}

/// What feeds a restore tool.
pub enum Input<'a> {
    /// A local file or directory the tool may open itself (seekable: a
    /// custom dump restores with parallel jobs).
    Path(PathBuf),
    /// Decoded bytes, streamed into the tool's stdin.
    Stream(Box<dyn Read + Send + 'a>),
}

impl<'a> Input<'a> {
    /// The bytes, whichever way they come (for tools that only read stdin).
    pub fn into_reader(self) -> Result<Box<dyn Read + Send + 'a>, InputError> {
        match self {
            Input::Stream(r) => Ok(r),
            Input::Path(p) => std::fs::File::open(&p)
                .map(|f| Box::new(f) as Box<dyn Read + Send>)
                .map_err(|source| InputError::Open {
                    what: Some(p.display().to_string()),
                    source,
                }),
        }
    }
}

/// Copies a snapshot into a scratch instance's dir, owned by its server's
/// user (the store is read-only, and the tool may run as another user).
/// A read error is the backup's: returned as its text, for the finding.
pub fn save(
    input: Input<'_>,
    path: &std::path::Path,
    run_as: RunAs,
) -> Result<Option<String>, ScratchError> {
    let mut reader = match input.into_reader() {
        Ok(r) => r,
        Err(e) => return Ok(Some(e.to_string())),
    };
    let io_err = |source: io::Error| ScratchError::Io {
        what: "write",
        path: path.to_path_buf(),
        source,
    };
    let mut out = std::fs::File::create(path).map_err(io_err)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match io::Read::read(&mut reader, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Ok(Some(e.to_string())),
        };
        io::Write::write_all(&mut out, &buf[..n]).map_err(io_err)?;
    }
    run_as.chown(path)?;
    Ok(None)
}

/// The input for `format`, and the staged copy it reads from (if any),
/// which must outlive the restore.
pub fn open_input<'a>(
    source: &'a dyn Storage,
    backup: &'a Backup,
    kind: Kind,
    format: Format,
) -> Result<(Input<'a>, Option<tempfile::TempDir>), InputError> {
    let local = source.local_path(&backup.key);
    if matches!(format, Format::PgToc | Format::MariadbBackup) {
        // pg_restore reads a directory dump's files by name, so one from an
        // object store is staged (the one format that cannot be streamed).
        return match local {
            Some(p) => Ok((Input::Path(p), None)),
            None => stage_directory(source, backup).map(|d| {
                let path = d.path().join("dump");
                (Input::Path(path), Some(d))
            }),
        };
    }
    if matches!(format, Format::PgCustom | Format::PgTar)
        && kind.compression.is_none()
        && let Some(p) = local
    {
        return Ok((Input::Path(p), None));
    }
    let member = backup.members.first().ok_or(InputError::NoFiles)?;
    let opened = source
        .open(member)
        .map_err(|source| InputError::Open { what: None, source })?;
    let reader = opened.reader;
    let decoded: Box<dyn Read + Send + 'a> = match kind.compression {
        None => reader,
        Some(c) => crate::inspect::decompress(c, reader).map_err(InputError::Decoder)?,
    };
    Ok((Input::Stream(decoded), None))
}

/// Copies a directory-format dump's files into a scratch dir (named like
/// the instances' dirs, so a crashed run's copy is swept too), removed when
/// the returned guard drops.
fn stage_directory(source: &dyn Storage, backup: &Backup) -> Result<tempfile::TempDir, InputError> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("{DIR_PREFIX}{}-stage-", std::process::id()))
        .tempdir()
        .map_err(InputError::StagingDir)?;
    let root = dir.path().join("dump");
    let at = |what: String| {
        move |source| InputError::Open {
            what: Some(what),
            source,
        }
    };
    std::fs::create_dir_all(&root).map_err(at(root.display().to_string()))?;
    for m in &backup.members {
        let rel = m
            .key
            .strip_prefix(&format!("{}/", backup.key))
            .unwrap_or(m.file_name());
        if rel.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(InputError::UnsafeName(m.key.clone()));
        }
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|source| InputError::Open { what: None, source })?;
        }
        let mut out = std::fs::File::create(&path).map_err(at(path.display().to_string()))?;
        let mut opened = source.open(m).map_err(at(m.key.clone()))?;
        io::copy(&mut opened.reader, &mut out).map_err(at(m.key.clone()))?;
    }
    Ok(dir)
}
