//! Where backups live. An [`Artifact`] is one stored file or object; a source
//! lists them and opens them for reading. Only local directories exist yet;
//! S3 joins behind the same shape (list with size and time, read, read range).

pub mod local;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use local::LocalSource;

/// One stored file, as listed by its source.
#[derive(Clone, Debug, Serialize)]
pub struct Artifact {
    /// Path relative to the source root, `/`-separated: the name manifests use.
    pub key: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
}

impl Artifact {
    /// The last path component.
    pub fn file_name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or(&self.key)
    }

    /// The directory part of the key, "" at the root.
    pub fn dir(&self) -> &str {
        match self.key.rfind('/') {
            Some(i) => &self.key[..i],
            None => "",
        }
    }
}

/// Why a source could not be listed: the audit cannot run on it (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("cannot read {location}: {reason}")]
pub struct SourceError {
    pub location: String,
    pub reason: String,
}
