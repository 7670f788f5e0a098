//! The chain's anchor outside the table: after every append, the newest run
//! this machine recorded (id and hash) is written to a small file beside the
//! history (for a database history, under the data directory, named after
//! its redacted URL). The hash chain alone cannot show that its newest
//! records were deleted, or that the whole file was emptied and started
//! again; the anchor can, as long as it is kept where the history's
//! tamperer cannot also edit it (keep a copy of the reported head too:
//! `history verify --expect-head`).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Anchor {
    /// The newest run this machine appended.
    pub run_id: i64,
    pub hash: String,
}

/// Where the anchor of `location` lives.
pub fn path_for(location: &Path) -> PathBuf {
    let text = location.to_string_lossy();
    if super::is_url(&text) {
        use sha2::Digest;
        let id = hex::encode(sha2::Sha256::digest(
            crate::redact::redact(&text).as_bytes(),
        ));
        let base = super::default_location()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        return base.join("anchors").join(format!("{}.anchor", &id[..16]));
    }
    let mut name = location
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".anchor");
    location.with_file_name(name)
}

/// The anchor, if one was ever written; an unreadable one is an error, not
/// "none" (a tamperer would otherwise just corrupt it).
pub fn read(location: &Path) -> std::io::Result<Option<Anchor>> {
    let path = path_for(location);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces the anchor atomically (a unique temp file, then a rename), so
/// concurrent appenders never leave half of one.
pub fn write(location: &Path, anchor: &Anchor) -> std::io::Result<()> {
    let path = path_for(location);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(&serde_json::to_vec(anchor).map_err(std::io::Error::other)?)?;
    tmp.as_file().sync_all()?;
    tmp.persist(&path).map_err(|e| e.error)?;
    Ok(())
}
