//! The run lock: held for the whole of `backproof run`, so that a second run
//! against the same history exits 2 instead of racing the first. The OS drops
//! the lock when the process dies, so a crash leaves no stale lock behind.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot create {}: {source}", dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open lock {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another backproof run holds {}; not starting a second one", path.display())]
    Held { path: PathBuf },
    #[error("cannot lock {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    pub fn acquire(path: &Path) -> Result<RunLock, LockError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| LockError::CreateDir {
                dir: dir.to_path_buf(),
                source,
            })?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|source| LockError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Held {
                path: path.to_path_buf(),
            }),
            Err(std::fs::TryLockError::Error(source)) => Err(LockError::Lock {
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

/// The lock file that goes with a history location.
pub fn lock_path(history: &Path) -> PathBuf {
    let text = history.to_string_lossy();
    if crate::history::is_url(&text) {
        // A database history: runs on this host serialise on a lock file
        // named after it (the history's own table lock orders appends).
        use sha2::Digest;
        let id = hex::encode(sha2::Sha256::digest(text.as_bytes()));
        return std::env::temp_dir().join(format!("backproof-history-{}.lock", &id[..16]));
    }
    let mut name = history
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".lock");
    history.with_file_name(name)
}

/// A fleet run's shard: shards on one host run side by side, but one shard
/// of one fleet run never twice at once.
pub fn shard_lock_path(history: &Path, group: &str, shard: crate::shard::Shard) -> PathBuf {
    use sha2::Digest;
    let id = hex::encode(sha2::Sha256::digest(format!("{group}\n{}", shard.index)));
    let base = lock_path(history);
    let mut name = base
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".shard-{}", &id[..16]));
    base.with_file_name(name)
}
